/**
 * HTTP/1.1 over a raw socket, for requests no well-behaved client would send (smuggling
 * vectors, oversized heads, slow clients). Every socket is destroyed by its deadline.
 */
import net from "node:net";

export interface RawResult {
  /** Everything the server sent. */
  text: string;
  /** Status codes of the responses in `text`, in order. */
  statuses: number[];
  /** The server closed the connection before the deadline. */
  closed: boolean;
  /** ms from the first byte sent to the close (or the deadline). */
  ms: number;
}

/**
 * The status codes of the responses in a raw byte stream, read one after the other: status
 * line, header, then a Content-Length or chunked body (1xx, 204 and 304 have none).
 */
export function statusesOf(text: string): number[] {
  const statuses: number[] = [];
  let at = 0;
  while (at < text.length) {
    const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(text.slice(at));
    const end = text.indexOf("\r\n\r\n", at);
    if (!m || end < 0) break;
    const status = Number(m[1]);
    statuses.push(status);
    const head = text.slice(at, end).toLowerCase();
    at = end + 4;
    if (status < 200 || status === 204 || status === 304) continue;
    const length = /\r\ncontent-length: *(\d+)/.exec(head);
    if (length) {
      at += Number(length[1]);
    } else if (/\r\ntransfer-encoding: *chunked/.test(head)) {
      for (;;) {
        const line = text.indexOf("\r\n", at);
        if (line < 0) return statuses;
        const size = Number.parseInt(text.slice(at, line), 16);
        at = line + 2;
        if (size === 0) {
          const trailerEnd = text.indexOf("\r\n\r\n", at - 2);
          at = trailerEnd < 0 ? text.length : trailerEnd + 4;
          break;
        }
        at += size + 2;
      }
    } else {
      break; // a body up to the close
    }
  }
  return statuses;
}

/**
 * Send `data` (a string or chunks written `gapMs` apart) and collect the answer until the
 * server closes the connection or `deadlineMs` passes.
 */
export function rawRequest(
  port: number,
  data: string | Buffer | Array<string | Buffer>,
  opts: { deadlineMs?: number; gapMs?: number } = {},
): Promise<RawResult> {
  const chunks = Array.isArray(data) ? data : [data];
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    const received: Buffer[] = [];
    const begun = performance.now();
    let closed = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(deadline);
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(received).toString("latin1");
      resolve({ text, statuses: statusesOf(text), closed, ms: performance.now() - begun });
    };
    const deadline = setTimeout(finish, opts.deadlineMs ?? 2000);
    socket.on("data", (chunk) => received.push(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      closed = true;
      finish();
    });
    let i = 0;
    const writeNext = () => {
      if (socket.destroyed || i >= chunks.length) return;
      socket.write(chunks[i++] as string | Buffer);
      if (i < chunks.length) timer = setTimeout(writeNext, opts.gapMs ?? 0);
    };
    socket.once("connect", writeNext);
  });
}
