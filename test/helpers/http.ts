/**
 * A plain HTTP/1.1 client for tests (node:http), returning status, headers and the whole body.
 * Each call uses its own connection unless an agent is given.
 */
import http from "node:http";

/** A finished response. */
export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json: <T>() => T;
}

/** Options for `request`. */
export interface RequestOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: string | Buffer;
  agent?: http.Agent | false;
}

/** Send one request and read the whole response. */
export function request(url: string, opts: RequestOptions = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: opts.method ?? "GET", headers: opts.headers, agent: opts.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: <T>() => JSON.parse(body.toString()) as T,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}
