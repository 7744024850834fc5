/**
 * Regression guard for the bug every Node proxy ships: a client that goes away mid-response
 * must abort the upstream request (the backend sees its connection close), and after 200
 * such aborts the next request is still served (http-proxy hangs for good after 64, when
 * its agent's sockets are all stuck on abandoned responses).
 */
import type http from "node:http";
import { afterAll, beforeAll, expect, it } from "vitest";
import { getFirstChunkThenAbort } from "../helpers/abort.js";
import { type Backend, startBackend } from "../helpers/backend.js";
import { request } from "../helpers/http.js";
import { type Portico, startPortico } from "../helpers/portico.js";

let backend: Backend;
let portico: Portico;
/** Responses the backend saw closed before it could finish them. */
let abandoned = 0;
const open = new Set<http.ServerResponse>();

beforeAll(async () => {
  backend = await startBackend("stream", (req, res) => {
    req.resume();
    if (req.url === "/fast") return void res.end("fast");
    // Send a first chunk, then nothing more until the client has gone.
    open.add(res);
    res.writeHead(200, { "content-type": "text/plain" });
    res.write("first chunk\n");
    res.on("close", () => {
      open.delete(res);
      if (!res.writableFinished) abandoned++;
    });
  });
  portico = await startPortico(`
workers: 2
upstreams: { stream: { max_connections: 64, servers: [{ address: ${backend.address} }] } }
servers: [{ listen: "127.0.0.1:0", routes: [{ path: /, upstream: stream }] }]
`);
});

afterAll(async () => {
  for (const res of open) res.destroy();
  expect(await portico?.stop()).toBe(0);
  await backend?.close();
});

it("aborts the upstream request when the client disconnects mid-response", async () => {
  const before = abandoned;
  await getFirstChunkThenAbort(`${portico.url()}/stream`);
  await waitFor(() => abandoned === before + 1);
  expect(abandoned).toBe(before + 1);
  expect(open.size).toBe(0);
});

it("still serves the next request after 200 aborts in a row", async () => {
  const before = abandoned;
  for (let i = 0; i < 200; i++) await getFirstChunkThenAbort(`${portico.url()}/stream/${i}`);
  await waitFor(() => abandoned === before + 200);
  expect(abandoned).toBe(before + 200);
  expect(open.size).toBe(0);
  const res = await request(`${portico.url()}/fast`);
  expect(res.status).toBe(200);
  expect(res.body.toString()).toBe("fast");
  // Every aborted upstream request took its socket down with it: none is left stuck.
  expect(backend.sockets.size).toBeLessThanOrEqual(2 * 64);
  const gone = () => portico.accessLines().filter((l) => l.status === 499).length;
  await waitFor(() => gone() >= 201);
  expect(gone()).toBeGreaterThanOrEqual(201);
});

/** Poll a condition the backend updates asynchronously; gives up after 10 s and lets the assertion fail. */
async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
}
