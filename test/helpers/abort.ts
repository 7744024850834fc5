/** A client that reads the first chunk of a response and then destroys its connection. */
import http from "node:http";

/** GET `url`, wait for the first body chunk, destroy the socket; resolves once closed. */
export function getFirstChunkThenAbort(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.once("data", () => {
        req.destroy();
      });
    });
    req.on("close", () => resolve());
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "ECONNRESET" && err.message !== "socket hang up") reject(err);
    });
  });
}
