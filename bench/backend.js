// A minimal keep-alive backend for benchmarks, run as its own process so it does not share
// an event loop with the load generator. Prints its port on stdout once listening.
import http from "node:http";

const body = Buffer.from("hello from the bench backend\n");
const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on("SIGTERM", () => process.exit(0));
