// The benchmarks' backend, run as its own process so it does not share an event loop with
// the load generator: a keep-alive node:http server with fixed bodies and a Content-Length,
// `/1k` -> 1 KiB, `/256k` -> 256 KiB, any other path -> a short text line (bench:reload).
// Prints its port (picked by the OS) on stdout once listening.
import http from "node:http";

const bodies = new Map([
  ["/1k", Buffer.alloc(1024, "a")],
  ["/256k", Buffer.alloc(256 * 1024, "b")],
]);
const other = Buffer.from("hello from the bench backend\n");

const server = http.createServer((req, res) => {
  req.resume();
  const body = bodies.get(req.url) ?? other;
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
