/**
 * A tiny raw HTTP/2 client for tests that must send requests node:http2's client refuses to send
 * (malformed header blocks, content-length mismatches, connection-specific headers...). It speaks
 * just enough of RFC 9113 for one request on stream 1, and decodes the response header block with a
 * complete HPACK decoder (RFC 7541: static and dynamic tables, Huffman), since servers index and
 * Huffman-code their responses however they like. Header names and values travel as latin1 bytes,
 * so a test can put any octet (\0, \r, obs-text) on the wire.
 */
import net from "node:net";
import tls from "node:tls";

export interface RawH2Options {
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default true: TLS with ALPN h2, certificate not verified. False: cleartext h2c with prior knowledge. */
  tls?: boolean;
  /** TLS SNI; default `host` when it is a name (SNI may not carry an IP address). */
  servername?: string;
  /** header block in order, sent exactly as given (no lower-casing, no validation): pseudo-headers included by the caller */
  headers: Array<[string, string]>;
  /** DATA frames to send after HEADERS (each one frame); END_STREAM on the last one, or on HEADERS when none */
  data?: Buffer[];
  /** Default 3000. */
  timeoutMs?: number;
}

export interface RawH2Result {
  /** :status of the final response, when one came (a 1xx is replaced by the response that follows). */
  status?: number;
  /** Response headers (pseudo-headers included) and trailers; repeated names joined with ", ". */
  headers?: Record<string, string>;
  body: Buffer;
  /** RST_STREAM error code received for stream 1. */
  rstCode?: number;
  /** GOAWAY error code received. */
  goawayCode?: number;
  /** Connection closed (or reset) by the server before we finished. */
  closed: boolean;
}

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
// Frame types and flags, RFC 9113 §6.
const [DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION] = [
  0, 1, 3, 4, 6, 7, 8, 9,
];
const [END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY] = [0x1, 0x1, 0x4, 0x8, 0x20];
/** SETTINGS_MAX_FRAME_SIZE default (RFC 9113 §6.5.2); we never advertise more, nor assume the peer did. */
const MAX_FRAME = 16384;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** RFC 7541 §5.1 integer with an N-bit prefix; `high` holds the representation's pattern bits. */
function encodeInt(value: number, prefixBits: number, high: number): number[] {
  const max = 2 ** prefixBits - 1;
  if (value < max) return [high | value];
  const out = [high | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) | 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

/** §6.2.2 literal without indexing, new name, both strings raw (H=0): no table state, no Huffman. */
function encodeHeaderBlock(headers: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(Buffer.from([0x00]));
    for (const s of [name, value]) {
      const bytes = Buffer.from(s, "latin1");
      parts.push(Buffer.from(encodeInt(bytes.length, 7, 0)), bytes);
    }
  }
  return Buffer.concat(parts);
}

// RFC 7541 Appendix A, "name value" split at the first space (only entry 16's value holds a space).
const STATIC: Array<[string, string]> = (
  ":authority|:method GET|:method POST|:path /|:path /index.html|:scheme http|:scheme https|:status 200|" +
  ":status 204|:status 206|:status 304|:status 400|:status 404|:status 500|accept-charset|" +
  "accept-encoding gzip, deflate|accept-language|accept-ranges|accept|access-control-allow-origin|age|" +
  "allow|authorization|cache-control|content-disposition|content-encoding|content-language|" +
  "content-length|content-location|content-range|content-type|cookie|date|etag|expect|expires|from|host|" +
  "if-match|if-modified-since|if-none-match|if-range|if-unmodified-since|last-modified|link|location|" +
  "max-forwards|proxy-authenticate|proxy-authorization|range|referer|refresh|retry-after|server|" +
  "set-cookie|strict-transport-security|transfer-encoding|user-agent|vary|via|www-authenticate"
)
  .split("|")
  .map((e) => {
    const sp = e.indexOf(" ");
    return sp < 0 ? [e, ""] : [e.slice(0, sp), e.slice(sp + 1)];
  });

// Appendix B is a canonical Huffman code, so the code lengths alone (symbol 0..256, "a" = 5 bits
// ... "z" = 30 bits) rebuild it: codes of one length are consecutive, in symbol order.
const HUFF_LENGTHS =
  "isxxxxxxxtzxxzxxxxxxxxzxxxxxxxxxbffhibdgffdgdbbbaaabbbbbbbcdkbhfibccccccccccccccccccccccdc" +
  "dioijbkabababbbaccbbbabcbaabccccckgjixprpprrrsrssssststtrstssssqrsrsstrqprrssqsrrtqrssqqrq" +
  "srssprrrsrrsvvporsruvvvwwvtuoqvwwvwtqqvvxwwwptpqrqqsrruuttvsvwvvwwwwwxwwwwwvz";
const huffLen = (sym: number) => HUFF_LENGTHS.charCodeAt(sym) - 92;
const HUFF_SYMS = [...Array(257).keys()].sort((a, b) => huffLen(a) - huffLen(b) || a - b);
const huffCount = new Array<number>(31).fill(0);
for (let s = 0; s < 257; s++) huffCount[huffLen(s)]++;
const huffFirst: number[] = [];
const huffOffset: number[] = [];
for (let len = 0, code = 0, offset = 0; len <= 30; len++) {
  huffFirst[len] = code;
  huffOffset[len] = offset;
  offset += huffCount[len];
  code = (code + huffCount[len]) * 2;
}

function huffmanDecode(bytes: Buffer): string {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      if (code - huffFirst[len] < huffCount[len]) {
        out.push(HUFF_SYMS[huffOffset[len] + code - huffFirst[len]]);
        code = 0;
        len = 0;
      }
    }
  }
  // Leftover bits are the EOS-prefix padding (§5.2).
  return Buffer.from(out.filter((s) => s < 256)).toString("latin1");
}

/** HPACK decoder state for one connection: the dynamic table outlives a header block (§2.3.2). */
class HpackDecoder {
  private dynamic: Array<[string, string]> = [];
  private max = 4096;

  private evict(): void {
    let size = this.dynamic.reduce((n, [k, v]) => n + k.length + v.length + 32, 0);
    while (size > this.max) {
      const [k, v] = this.dynamic.pop() as [string, string];
      size -= k.length + v.length + 32;
    }
  }

  decode(buf: Buffer): Array<[string, string]> {
    let i = 0;
    const int = (prefixBits: number): number => {
      const max = 2 ** prefixBits - 1;
      let value = buf[i++] & max;
      if (value < max) return value;
      for (let m = 1; ; m *= 128) {
        const b = buf[i++];
        value += (b & 127) * m;
        if (!(b & 128)) return value;
      }
    };
    const str = (): string => {
      const huffman = buf[i] & 0x80;
      const n = int(7);
      const bytes = buf.subarray(i, i + n);
      i += n;
      return huffman ? huffmanDecode(bytes) : bytes.toString("latin1");
    };
    const entry = (idx: number): [string, string] => {
      const e = idx <= STATIC.length ? STATIC[idx - 1] : this.dynamic[idx - STATIC.length - 1];
      if (!e) throw new Error(`HPACK index ${idx} out of range`);
      return e;
    };
    const out: Array<[string, string]> = [];
    while (i < buf.length) {
      const b = buf[i];
      // §6.1 indexed
      if (b & 0x80) out.push(entry(int(7)));
      else if (b & 0x40) {
        const idx = int(6); // §6.2.1 literal with incremental indexing
        const name = idx ? entry(idx)[0] : str();
        const field: [string, string] = [name, str()];
        out.push(field);
        this.dynamic.unshift(field);
        this.evict();
      } else if (b & 0x20) {
        this.max = int(5); // §6.3 dynamic table size update
        this.evict();
      } else {
        const idx = int(4); // §6.2.2 / §6.2.3 literal without indexing / never indexed
        const name = idx ? entry(idx)[0] : str();
        out.push([name, str()]);
      }
    }
    return out;
  }
}

/**
 * Send one request on stream 1 of a fresh connection and resolve (never hang) with whatever came back,
 * at END_STREAM, RST_STREAM, an error GOAWAY (or one not covering stream 1), close or timeout. Rejects
 * only when nothing at all came from the server (connection refused, TLS failure).
 */
export function rawH2Request(opts: RawH2Options): Promise<RawH2Result> {
  const host = opts.host ?? "127.0.0.1";
  const servername = opts.servername ?? (net.isIP(host) ? undefined : host);
  const socket =
    opts.tls === false
      ? net.connect({ host, port: opts.port })
      : tls.connect({ host, port: opts.port, ALPNProtocols: ["h2"], rejectUnauthorized: false, servername });
  const result: RawH2Result = { body: Buffer.alloc(0), closed: false };
  const body: Buffer[] = [];
  const hpack = new HpackDecoder();
  let pending = Buffer.alloc(0);
  let block: Buffer[] | undefined; // header block being assembled from HEADERS + CONTINUATION
  let blockEnds = false; // END_STREAM flag of the HEADERS frame that opened `block`
  let received = false;
  let done = false; // nothing touches `result` once the promise has settled

  return new Promise<RawH2Result>((resolve, reject) => {
    const timer = setTimeout(() => finish(), opts.timeoutMs ?? 3000);
    function finish(err?: Error): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      result.body = Buffer.concat(body);
      if (err) reject(err);
      else resolve(result);
    }
    function onHeaderBlock(fields: Array<[string, string]>): void {
      const status = fields.find(([k]) => k === ":status");
      // A new :status opens a (final or interim) response; fields without one are trailers.
      if (status && (result.status === undefined || result.status < 200)) {
        result.status = Number(status[1]);
        result.headers = {};
      }
      result.headers ??= {};
      for (const [k, v] of fields) result.headers[k] = k in result.headers ? `${result.headers[k]}, ${v}` : v;
    }
    function onFrame(type: number, flags: number, stream: number, payload: Buffer): void {
      if (type === SETTINGS && !(flags & ACK)) socket.write(frame(SETTINGS, ACK, 0));
      else if (type === PING && !(flags & ACK)) socket.write(frame(PING, ACK, 0, payload));
      else if (type === GOAWAY) {
        result.goawayCode = payload.readUInt32BE(4);
        // A graceful GOAWAY that still covers stream 1 lets its response finish.
        if (result.goawayCode !== 0 || (payload.readUInt32BE(0) & 0x7fffffff) < 1) finish();
      } else if (stream !== 1) return;
      else if (type === RST_STREAM) {
        result.rstCode = payload.readUInt32BE(0);
        finish();
      } else if (type === DATA || type === HEADERS) {
        const pad = flags & PADDED ? payload[0] : 0;
        let start = flags & PADDED ? 1 : 0;
        if (type === HEADERS && flags & PRIORITY) start += 5;
        const content = payload.subarray(start, payload.length - pad);
        if (type === DATA) {
          body.push(content);
          // Give the credit back at once (connection and stream) so a large body never stalls.
          const credit = Buffer.alloc(4);
          credit.writeUInt32BE(payload.length);
          if (payload.length > 0)
            socket.write(
              Buffer.concat([frame(WINDOW_UPDATE, 0, 0, credit), frame(WINDOW_UPDATE, 0, 1, credit)]),
            );
          if (flags & END_STREAM) finish();
          return;
        }
        block = [content];
        blockEnds = (flags & END_STREAM) !== 0;
      } else if (type === CONTINUATION && block) block.push(payload);
      else return;
      if (block && flags & END_HEADERS) {
        try {
          onHeaderBlock(hpack.decode(Buffer.concat(block)));
        } catch (err) {
          finish(err as Error); // an undecodable block must fail the test, not crash the runner
          return;
        }
        block = undefined;
        if (blockEnds) finish();
      }
    }

    socket.on("data", (chunk: Buffer) => {
      received = true;
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const len = pending.readUIntBE(0, 3);
        if (pending.length < 9 + len) break;
        const payload = pending.subarray(9, 9 + len);
        const [type, flags, stream] = [pending[3], pending[4], pending.readUInt32BE(5) & 0x7fffffff];
        pending = pending.subarray(9 + len);
        onFrame(type, flags, stream, payload);
      }
    });
    socket.on("close", () => {
      if (!done) result.closed = true;
      finish();
    });
    // A reset after the server answered is a result (closed); failing to connect at all is an error.
    socket.on("error", (err) => {
      if (!done) result.closed = true;
      finish(received ? undefined : err);
    });

    const data = opts.data ?? [];
    const hpackBlock = encodeHeaderBlock(opts.headers);
    const out = [PREFACE, frame(SETTINGS, 0, 0)];
    // A block larger than the default max frame size continues in CONTINUATION frames (§6.10).
    for (let off = 0; off === 0 || off < hpackBlock.length; off += MAX_FRAME) {
      const last = off + MAX_FRAME >= hpackBlock.length;
      const flags = (last ? END_HEADERS : 0) | (off === 0 && data.length === 0 ? END_STREAM : 0);
      out.push(
        frame(off === 0 ? HEADERS : CONTINUATION, flags, 1, hpackBlock.subarray(off, off + MAX_FRAME)),
      );
    }
    for (const [n, d] of data.entries()) out.push(frame(DATA, n === data.length - 1 ? END_STREAM : 0, 1, d));
    socket.write(Buffer.concat(out));
  });
}
