/**
 * A tiny demo app server for the out-of-the-box config: it answers with its own name and
 * echoes the request line and headers it received, so a newcomer sees balancing and the
 * forwarding headers Portico adds.
 */
import http from "node:http";

/** Start a demo backend on `host:port`; resolves once it listens. */
export function startDemoBackend(name: string, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const lines = [`demo backend: ${name}`, `${req.method} ${req.url} HTTP/${req.httpVersion}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    const body = `${lines.join("\n")}\n`;
    req.resume();
    req.on("end", () => {
      res.writeHead(200, {
        "content-type": "text/plain; charset=utf-8",
        "content-length": Buffer.byteLength(body),
        "x-backend": name,
      });
      res.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
