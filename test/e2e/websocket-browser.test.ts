/**
 * End-to-end: a real browser's WebSocket through Portico. Headless Chromium loads a page
 * over HTTPS (ALPN h2), then opens a `wss://` WebSocket to the same origin: seeing
 * SETTINGS_ENABLE_CONNECT_PROTOCOL on the connection it already has, it sends an RFC 8441
 * extended CONNECT on it, which Portico turns into an HTTP/1.1 upgrade to a `ws` backend.
 * Text and binary messages are echoed, and the browser's close reaches the backend.
 *
 * Without Chromium (not installed and not installable) the test is skipped with the reason.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { startBackend } from "../helpers/backend.js";
import { launchBrowser, prepareBrowser } from "../helpers/browser.js";
import { generateCert } from "../helpers/certs.js";
import { startPortico } from "../helpers/portico.js";

let browser: Browser | undefined;
let unavailable: string | undefined;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  const prepared = await prepareBrowser();
  if (!prepared.ok) unavailable = prepared.reason;
  else {
    try {
      browser = await launchBrowser(prepared.tools);
    } catch (err) {
      unavailable = `chromium at ${prepared.tools.executablePath} could not be launched: ${(err as Error).message}`;
    }
  }
  if (unavailable) console.warn(`websocket-browser: SKIPPING: ${unavailable}`);
}, 600_000);
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await browser?.close();
});

/** What the page reports back: the echoes it got and how its socket closed. */
interface PageResult {
  text: string;
  binaryLength: number;
  binarySum: number;
  closeCode: number;
}

describe("a browser's WebSocket over HTTP/2", () => {
  it("Chromium opens it as an RFC 8441 stream of its HTTP/2 connection, and it echoes both ways", async (ctx) => {
    if (!browser) return ctx.skip(`headless Chromium unavailable: ${unavailable}`);
    const backend = await startBackend("app");
    const wss = new WebSocketServer({ server: backend.server });
    const upgrades: http.IncomingMessage[] = [];
    const closes: Array<{ code: number; reason: string }> = [];
    wss.on("connection", (ws, req) => {
      upgrades.push(req);
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on("close", (code, reason) => closes.push({ code, reason: reason.toString() }));
    });
    cleanup.push(async () => {
      for (const s of backend.sockets) s.destroy();
      await new Promise<void>((r) => wss.close(() => r()));
      await backend.close();
    });
    const dir = mkdtempSync(join(tmpdir(), "portico-ws-browser-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const pair = await generateCert();
    writeFileSync(join(dir, "cert.pem"), pair.cert);
    writeFileSync(join(dir, "key.pem"), pair.key);
    const p = await startPortico(`
workers: 1
upstreams:
  app: { servers: [{ address: ${backend.address} }] }
servers:
  - listen: "127.0.0.1:0 tls"
    tls: { certificates: [{ cert: ${join(dir, "cert.pem")}, key: ${join(dir, "key.pem")} }] }
    routes:
      - path: /page
        return: { status: 200, body: "<!doctype html><title>ws</title>", content_type: text/html }
      - path: /
        upstream: app
`);
    cleanup.push(() => p.stop());
    const origin = `https://127.0.0.1:${p.bound[0].port}`;
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    cleanup.push(() => context.close());
    const page = await context.newPage();
    const loaded = await page.goto(`${origin}/page`);
    expect(loaded?.status()).toBe(200);

    const result = await page.evaluate(
      (url) =>
        new Promise<PageResult>((resolve, reject) => {
          const ws = new WebSocket(url);
          ws.binaryType = "arraybuffer";
          const out = { text: "", binaryLength: 0, binarySum: 0, closeCode: 0 };
          const bytes = new Uint8Array(64 * 1024).map((_, i) => (i * 7) % 256);
          ws.onopen = () => ws.send("hello from the browser");
          ws.onmessage = (e) => {
            if (typeof e.data === "string") {
              out.text = e.data;
              ws.send(bytes);
              return;
            }
            const got = new Uint8Array(e.data as ArrayBuffer);
            out.binaryLength = got.length;
            out.binarySum = got.reduce((a, b) => (a + b) % 1_000_003, 0);
            ws.close(1000, "done");
          };
          ws.onclose = (e) => resolve({ ...out, closeCode: e.code });
          ws.onerror = () => reject(new Error("WebSocket error in the page"));
        }),
      `${origin.replace("https", "wss")}/chat`,
    );
    expect(result.text).toBe("hello from the browser");
    expect(result.binaryLength).toBe(64 * 1024);
    let sum = 0;
    for (let i = 0; i < 64 * 1024; i++) sum = (sum + ((i * 7) % 256)) % 1_000_003;
    expect(result.binarySum).toBe(sum);
    expect(result.closeCode).toBe(1000);

    // The backend got an HTTP/1.1 upgrade and the browser's close frame.
    expect(upgrades).toHaveLength(1);
    expect(upgrades[0].url).toBe("/chat");
    expect(upgrades[0].headers.origin).toBe(origin);
    await expect.poll(() => closes).toEqual([{ code: 1000, reason: "done" }]);
    // Portico's line for the tunnel: Chromium sent an extended CONNECT (RFC 8441), not an
    // HTTP/1.1 upgrade on a connection of its own (which would be GET with status 101).
    const line = await p.waitForLine((l) => l.path === "/chat" && typeof l.status === "number");
    expect(line).toMatchObject({ method: "CONNECT", status: 200, upstream: backend.address });
    expect(line.remote).toBe("127.0.0.1");
  });
});
