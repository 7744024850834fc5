/**
 * DNS over HTTPS (RFC 8484): each query is a POST of the wire message to the server's URL
 * (`application/dns-message`), through one undici pool per nameserver (keep-alive, HTTP/2 when
 * the server offers it). The ID is 0 as §4.1 recommends; the question is still checked.
 */
import { TLSSocket } from "node:tls";
import { buildConnector, Pool } from "undici";
import { DnsError } from "../errors.js";
import { answersQuestion, decodeResponse, encodeQuery, type Response } from "../message.js";
import type { Question } from "../types.js";
import { watchHandshake } from "./plain-probe.js";
import type { Endpoint, Transport, TransportEvents } from "./transport.js";

const MEDIA_TYPE = "application/dns-message";

export class HttpsTransport implements Transport {
  readonly kind = "https" as const;
  private readonly pool: Pool;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly events: TransportEvents,
  ) {
    const { host, port, servername, ca, cert, key } = endpoint;
    const origin = `https://${host.includes(":") ? `[${host}]` : host}:${port}`;
    const connector = buildConnector({ servername, ca, cert, key, allowH2: true });
    this.pool = new Pool(origin, {
      connections: 4,
      allowH2: true,
      keepAliveTimeout: 10_000,
      // undici's own connector, with the handshake watched for a plain DNS port.
      connect: (options, callback) => {
        // Typed as void, but undici's connector returns the socket it is connecting.
        const socket: unknown = connector(options, callback);
        if (socket instanceof TLSSocket) watchHandshake(socket, endpoint, "https");
      },
    });
  }

  async exchange(question: Question, timeoutMs: number): Promise<Response> {
    const { url, path } = this.endpoint;
    const context = { ...question, server: url };
    const signal = AbortSignal.timeout(timeoutMs);
    let bytes: Buffer;
    try {
      const res = await this.pool.request({
        method: "POST",
        path,
        headers: { "content-type": MEDIA_TYPE, accept: MEDIA_TYPE },
        body: encodeQuery(question, 0),
        signal,
      });
      bytes = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode !== 200) {
        throw new DnsError("NETWORK", `${url}: HTTP ${res.statusCode} from the DoH server`, context);
      }
      const type = String(res.headers["content-type"] ?? "");
      if (!type.startsWith(MEDIA_TYPE)) {
        throw new DnsError(
          "MALFORMED",
          `${url}: answer has content-type '${type}', not ${MEDIA_TYPE}`,
          context,
        );
      }
    } catch (err) {
      if (err instanceof DnsError) throw err;
      if ((err as Error).cause instanceof DnsError) throw (err as Error).cause;
      if (signal.aborted) {
        throw new DnsError(
          "TIMEOUT",
          `${url}: no answer for ${question.name} ${question.type} within ${timeoutMs} ms`,
          context,
        );
      }
      throw new DnsError("NETWORK", `${url}: ${(err as Error).message}`, { ...context, cause: err });
    }
    const response = decodeResponse(bytes, url);
    if (!answersQuestion(response, question, bytes)) {
      this.events.onSpoofed();
      throw new DnsError("MALFORMED", `${url}: the answer is for another question`, context);
    }
    return response;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
