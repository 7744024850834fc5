// The minimal proxy that `npm run bench` measures Portico against: a node:http server and an
// undici Pool (connections capped) driven by `pool.dispatch` with an undici 7 handler object.
// It strips hop-by-hop headers, pauses the upstream when res.write() returns false and resumes
// on 'drain', and aborts the upstream request when the client goes. No routing, no logs.
// Usage: node bench/peers/undici-proxy.js UPSTREAM_PORT; prints its own port on stdout.
import http from "node:http";
import { Pool } from "undici";

const HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
const strip = (headers) => {
  const out = {};
  for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
  return out;
};
const pool = new Pool(`http://127.0.0.1:${process.argv[2]}`, { connections: 128, pipelining: 1 });

const server = http.createServer((req, res) => {
  let controller;
  const onDrain = () => controller?.resume();
  const onClose = () => {
    if (!res.writableFinished && controller && !controller.aborted)
      controller.abort(new Error("client gone"));
  };
  res.on("drain", onDrain);
  res.on("close", onClose);
  const done = () => {
    res.off("drain", onDrain);
    res.off("close", onClose);
  };
  const hasBody =
    req.headers["content-length"] !== undefined || req.headers["transfer-encoding"] !== undefined;
  pool.dispatch(
    { method: req.method, path: req.url, headers: strip(req.headers), body: hasBody ? req : null },
    {
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(_c, status, headers, message) {
        if (status >= 200) res.writeHead(status, message || undefined, strip(headers));
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) c.pause();
      },
      onResponseEnd() {
        done();
        res.end();
      },
      onResponseError(_c, err) {
        done();
        if (res.headersSent) res.destroy(err);
        else res.writeHead(502, { "content-length": 0 }).end();
      },
    },
  );
});
server.keepAliveTimeout = 75_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`${server.address().port}\n`));
process.on("SIGTERM", () => process.exit(0));
