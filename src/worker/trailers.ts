/**
 * Requests with trailers (a chunked or HTTP/2 body announced by a `Trailer` header, e.g.
 * gRPC-web or checksums sent after a streamed upload). undici cannot send request trailers,
 * so these few requests go to their peer through node:http on a connection of their own,
 * and the trailers follow the body; the response is relayed as it comes (with its own
 * trailers when the client asked for them). They are not retried: their body is a stream.
 */
import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import type { Peer } from "../upstream/peer.js";
import { classifyUpstreamError } from "./errors.js";
import type { CompiledEdits, HeaderList } from "./headers.js";
import type { Exchange, HandlerContext } from "./proxy.js";
import { hostPort } from "./tunnel.js";

/** Send `x` to `peer` with node:http, its body from `body` and its trailers after it. */
export function forwardWithTrailers(
  ctx: HandlerContext,
  x: Exchange,
  peer: Peer,
  path: string,
  headers: HeaderList,
  body: Readable,
  responseEdits: CompiledEdits,
): void {
  const { host, port } = hostPort(peer.address);
  const options = {
    host,
    port,
    method: x.req.method,
    path,
    headers: [...withoutLength(headers), "transfer-encoding", "chunked"],
    agent: false,
    setHost: false,
    timeout: ctx.timeouts.upstreamHeader,
  };
  const request = peer.tls ? https.request({ ...options, ...peer.tls }) : http.request(options);
  peer.inFlight++;
  let done = false;
  const finish = () => {
    if (!done) {
      done = true;
      peer.inFlight--;
    }
  };
  request.on("timeout", () =>
    request.destroy(
      Object.assign(new Error(`${peer.address} did not answer in time`), { code: "UND_ERR_HEADERS_TIMEOUT" }),
    ),
  );
  request.on("error", (err) => {
    finish();
    x.upstreamFailed(classifyUpstreamError(err, peer.address), peer.address);
  });
  request.on("response", (response) => {
    response.once("end", finish);
    x.relay(response, peer.address, responseEdits);
  });
  body.on("data", (chunk: Buffer) => {
    if (!request.write(chunk)) body.pause();
  });
  request.on("drain", () => body.resume());
  body.once("end", () => {
    const trailers = x.req.trailers;
    if (trailers && Object.keys(trailers).length > 0) request.addTrailers(trailers);
    request.end();
  });
  body.once("error", (err) => request.destroy(err));
}

/** The headers without Content-Length: the body goes chunked, so its trailers can follow. */
function withoutLength(headers: HeaderList): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== "content-length") out.push(headers[i] as string, headers[i + 1] as string);
  }
  return out;
}
