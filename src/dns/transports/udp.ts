/**
 * DNS over UDP (RFC 1035 §4.2.1) with the RFC 5452 defences: a random ID and a fresh socket
 * (so a random source port) for every query, and an answer accepted only when it comes from
 * the nameserver's address and port and carries our ID and question. Anything else is dropped
 * and counted; the real answer can still arrive. A truncated answer is returned as is: the
 * nameserver layer retries it over TCP.
 */
import { createSocket, type Socket } from "node:dgram";
import { isIPv6 } from "node:net";
import { DnsError } from "../errors.js";
import { answersQuestion, decodeResponse, encodeQuery, type Response, randomId } from "../message.js";
import type { Question } from "../types.js";
import type { Endpoint, Transport, TransportEvents } from "./transport.js";

export class UdpTransport implements Transport {
  readonly kind = "udp" as const;
  /** Pending exchanges by socket, so close() can settle them. */
  private readonly open = new Map<Socket, (err: Error) => void>();

  constructor(
    private readonly endpoint: Endpoint,
    private readonly events: TransportEvents,
  ) {}

  exchange(question: Question, timeoutMs: number): Promise<Response> {
    const { host, port, url } = this.endpoint;
    const id = randomId();
    const query = encodeQuery(question, id);
    const socket = createSocket(isIPv6(host) ? "udp6" : "udp4");
    return new Promise<Response>((resolve, reject) => {
      const finish = (err: Error | undefined, response?: Response) => {
        if (!this.open.delete(socket)) return;
        clearTimeout(timer);
        socket.close();
        if (err) reject(err);
        else resolve(response as Response);
      };
      const timer = setTimeout(
        () =>
          finish(
            new DnsError(
              "TIMEOUT",
              `${url}: no answer for ${question.name} ${question.type} within ${timeoutMs} ms`,
              {
                ...question,
                server: url,
              },
            ),
          ),
        timeoutMs,
      );
      this.open.set(socket, finish);
      socket.on("error", (cause) =>
        finish(new DnsError("NETWORK", `${url}: ${cause.message}`, { ...question, server: url, cause })),
      );
      socket.on("message", (bytes, from) => {
        // RFC 5452 §9.1: only the nameserver's own address and port may answer.
        if (from.port !== port || from.address !== host) {
          this.events.onSpoofed();
          return;
        }
        let response: Response;
        try {
          response = decodeResponse(bytes, url);
        } catch (err) {
          if (bytes.length >= 2 && bytes.readUInt16BE(0) !== id) this.events.onSpoofed();
          else finish(err as Error);
          return;
        }
        if (response.id !== id || !answersQuestion(response, question)) {
          this.events.onSpoofed();
          return;
        }
        finish(undefined, response);
      });
      // No callback: without one Node tries a synchronous send first (uv_udp_try_send), and a
      // failure is emitted as 'error', handled above.
      socket.send(query, port, host);
    });
  }

  async close(): Promise<void> {
    for (const finish of [...this.open.values()])
      finish(new DnsError("NETWORK", `${this.endpoint.url}: resolver closed`));
  }
}
