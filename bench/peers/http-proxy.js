// A peer for `npm run bench`: the `http-proxy` npm package (node-http-proxy) in front of the
// backend, with a keep-alive http.Agent (capped at 128 sockets) and X-Forwarded-* headers.
// http-proxy forwards the client's `Connection` header; it is removed from the request before
// http-proxy sees it, so that a client's `Connection: close` does not cost a new upstream
// connection too (as in the other proxies). (Removing it in a `proxyReq` listener throws
// ERR_HTTP_HEADERS_SENT when the request was already flushed to a reused socket.)
// Usage: node bench/peers/http-proxy.js UPSTREAM_PORT; prints its own port on stdout.
import http from "node:http";
import httpProxy from "http-proxy";

const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
const proxy = httpProxy.createProxyServer({
  target: `http://127.0.0.1:${process.argv[2]}`,
  agent,
  xfwd: true,
});
proxy.on("error", (_err, _req, res) => {
  if (res.headersSent || typeof res.writeHead !== "function") res.destroy();
  else res.writeHead(502, { "content-length": 0 }).end();
});

// The client's `Connection: close` is still honoured on the response (http-proxy copies the
// request's Connection header onto a response that has none).
const closing = new WeakSet();
proxy.on("proxyRes", (proxyRes, req) => {
  if (closing.has(req)) proxyRes.headers.connection = "close";
});

const server = http.createServer((req, res) => {
  if (/\bclose\b/i.test(req.headers.connection ?? "")) closing.add(req);
  delete req.headers.connection;
  proxy.web(req, res);
});
server.keepAliveTimeout = 75_000;
server.listen(0, "127.0.0.1", () => process.stdout.write(`${server.address().port}\n`));
process.on("SIGTERM", () => process.exit(0));
