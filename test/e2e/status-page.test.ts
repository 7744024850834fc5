/**
 * End-to-end: the admin status page in a real headless Chromium, on a real Portico (2 workers)
 * with real backends and active health checks. The page shows both peers healthy, then, on its
 * own refresh (no reload), the one whose /healthz turned 500 as unhealthy while the other
 * stays healthy; traffic through the proxy draws the upstream's request chart; when /status
 * stops answering, a banner says so and the last data stays. A screenshot is left in
 * test/artifacts/status-page.png.
 *
 * Without Chromium (not installed and not installable) every test here is skipped with the
 * reason printed.
 */
import { mkdirSync } from "node:fs";
import type http from "node:http";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it, type TestContext } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { launchBrowser, prepareBrowser } from "../helpers/browser.js";
import { request } from "../helpers/http.js";
import { startPortico } from "../helpers/portico.js";

const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url));
/** How long the page may take to show a change (it polls every second; checks run every 200 ms). */
const SHOWN_WITHIN_MS = 15_000;

let browser: Browser | undefined;
let unavailable: string | undefined;
const cleanup: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  const prepared = await prepareBrowser();
  if (!prepared.ok) unavailable = prepared.reason;
  else {
    try {
      browser = await launchBrowser(prepared.tools);
      console.log(`status-page: ${prepared.tools.version} at ${prepared.tools.executablePath}`);
    } catch (err) {
      unavailable = `chromium at ${prepared.tools.executablePath} could not be launched: ${(err as Error).message}`;
    }
  }
  if (unavailable) console.warn(`status-page: SKIPPING every browser test: ${unavailable}`);
}, 600_000);
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await browser?.close();
});

function need(ctx: TestContext): Browser {
  if (!browser) return ctx.skip(`headless Chromium unavailable: ${unavailable}`);
  return browser;
}

/** A backend whose /healthz answers 200 while `healthy`, 500 otherwise. */
async function checked(name: string): Promise<{ backend: Backend; healthy: boolean }> {
  const state = { healthy: true } as { backend: Backend; healthy: boolean };
  const handler: http.RequestListener = (req, res) => {
    req.resume();
    if (req.url === "/healthz") {
      res.writeHead(state.healthy ? 200 : 500, { "content-length": 2 });
      res.end("hc");
      return;
    }
    res.end(name);
  };
  state.backend = await startBackend(name, handler);
  cleanup.push(() => state.backend.close());
  return state;
}

/** Start Portico with an admin listener; resolves with it and the admin's base URL. */
async function portico(servers: string, admin = "admin: { listen: 127.0.0.1:0 }") {
  const p = await startPortico(`
workers: 2
${admin}
upstreams:
  app:
    health: { path: /healthz, interval: 200ms, timeout: 500ms, rise: 1, fall: 1 }
    servers: ${servers}
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
  cleanup.push(() => p.stop());
  const ready = await p.waitForLine((l) => l.msg === "portico ready");
  const address = ready.admin as { address: string; port: number };
  return { p, admin: `http://127.0.0.1:${address.port}` };
}

/** A page that records its script errors; closed after the test. */
async function open(b: Browser, url: string, options: Parameters<Browser["newContext"]>[0] = {}) {
  const context = await b.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  cleanup.push(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(url);
  return { page, errors };
}

const row = (peer: string, health: string) =>
  `tr[data-upstream="app"][data-peer="${peer}"][data-health="${health}"]`;

/**
 * The `d` of the request chart's line for `app`, once it has a point with a rate above 0.
 * Waited for by selector: the page's CSP (no 'unsafe-eval') refuses waitForFunction's polling.
 */
async function requestChartLine(page: Page): Promise<string> {
  const chart = 'svg[data-chart="requests"][data-upstream="app"]:not([data-peak="0"])';
  await page.waitForSelector(chart, { timeout: SHOWN_WITHIN_MS });
  return (await page.locator(`${chart} path`).getAttribute("d")) ?? "";
}

describe("admin status page in headless Chromium", () => {
  it("shows both peers healthy, then the one failing its checks as unhealthy on its own refresh; traffic draws the chart; a failed fetch shows a banner and keeps the data", async (ctx) => {
    const b = need(ctx);
    const one = await checked("one");
    const two = await checked("two");
    const { p, admin } = await portico(
      `[{ address: ${one.backend.address} }, { address: ${two.backend.address} }]`,
    );
    const { page, errors } = await open(b, `${admin}/`);
    await page.waitForSelector(row(one.backend.address, "healthy"), { timeout: SHOWN_WITHIN_MS });
    await page.waitForSelector(row(two.backend.address, "healthy"), { timeout: SHOWN_WITHIN_MS });
    await page.waitForSelector('#banner[data-state="ok"]', { timeout: SHOWN_WITHIN_MS });
    // Both workers of the generation are listed.
    for (const pid of p.workers)
      await page.waitForSelector(`tr[data-pid="${pid}"]`, { timeout: SHOWN_WITHIN_MS });
    // Marks this document: a reload would lose it.
    await page.evaluate("window.__sameDocument = true");

    // Traffic: the rate between two polls is above 0, so the request chart has a line.
    for (let i = 0; i < 40; i++) expect((await request(p.url())).status).toBe(200);
    const line = await requestChartLine(page);
    console.log(`status-page: request chart line: ${line}`);
    expect(line).toMatch(/^M[0-9.]+ [0-9.]+/);

    // One peer fails its checks: the page shows it on its next refresh, the other stays healthy.
    two.healthy = false;
    await page.waitForSelector(row(two.backend.address, "unhealthy"), { timeout: SHOWN_WITHIN_MS });
    expect(await page.locator(row(one.backend.address, "healthy")).count()).toBe(1);
    expect(await page.evaluate("window.__sameDocument === true")).toBe(true);
    const status = (await request(`${admin}/status`)).json<{
      upstreams: Array<{ name: string; peers: Array<{ address: string; why?: string }> }>;
    }>();
    const why = status.upstreams
      .find((u) => u.name === "app")
      ?.peers.find((x) => x.address === two.backend.address)?.why;
    if (why)
      expect(await page.locator(`${row(two.backend.address, "unhealthy")} .why`).textContent()).toBeTruthy();
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}status-page.png`, fullPage: true });
    console.log(`status-page: screenshot in ${ARTIFACTS}status-page.png`);

    // /status stops answering: the banner says so, and the last data stays on the page.
    await p.stop();
    await page.waitForSelector('#banner[data-state="error"]', { timeout: SHOWN_WITHIN_MS });
    expect(await page.locator("#banner").textContent()).toMatch(/status fetch failed/);
    expect(await page.locator(row(one.backend.address, "healthy")).count()).toBe(1);
    expect(await page.locator(row(two.backend.address, "unhealthy")).count()).toBe(1);
    expect(errors).toEqual([]);
  });

  it("with an admin token, a browser logged in with HTTP Basic (the token as password) sees the page and its data", async (ctx) => {
    const b = need(ctx);
    const token = "status-page-token-0123456789";
    const one = await checked("one");
    const { admin } = await portico(
      `[{ address: ${one.backend.address} }]`,
      `admin: { listen: 127.0.0.1:0, token: ${token} }`,
    );
    const anonymous = await request(`${admin}/status`);
    expect(anonymous.status).toBe(401);
    const { page, errors } = await open(b, `${admin}/`, {
      httpCredentials: { username: "admin", password: token },
    });
    // The page's own fetches of `status` carry the credentials the browser logged in with.
    await page.waitForSelector(row(one.backend.address, "healthy"), { timeout: SHOWN_WITHIN_MS });
    await page.waitForSelector('#banner[data-state="ok"]', { timeout: SHOWN_WITHIN_MS });
    expect(errors).toEqual([]);
  });
});
