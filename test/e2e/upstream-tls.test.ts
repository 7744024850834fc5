/**
 * End-to-end: TLS to upstreams. A backend with a self-signed certificate works when its CA
 * is given in tls.ca, and is refused (502, a log line naming the certificate error) when it
 * is not; mutual TLS; server_name for SNI and verification; portico check on verify: false.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { type CertPair, generateCert } from "../helpers/certs.js";
import { request } from "../helpers/http.js";
import { type Portico, runCli, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), "portico-utls-"));
  cleanup.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function write(d: string, name: string, text: string): string {
  const file = join(d, name);
  writeFileSync(file, text);
  return file;
}

/** An HTTPS backend answering with the SNI it got and whether the client showed a trusted certificate. */
async function httpsBackend(pair: CertPair, opts: https.ServerOptions = {}): Promise<{ port: number }> {
  const server = https.createServer({ ...pair, ...opts }, (req, res) => {
    const socket = req.socket as TLSSocket;
    res.end(JSON.stringify({ sni: socket.servername ?? null, client: socket.authorized }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanup.push(() => new Promise((r) => server.close(r)));
  return { port: (server.address() as AddressInfo).port };
}

async function portico(address: string, tls: string): Promise<Portico> {
  const p = await startPortico(`
workers: 2
upstreams:
  app:
    tls: ${tls}
    servers: [{ address: "${address}" }]
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: app }]
`);
  cleanup.push(() => p.stop());
  return p;
}

describe("TLS to upstreams", () => {
  it("works with a self-signed CA given in tls.ca, and answers 502 naming the certificate error without it", async () => {
    const d = dir();
    const pair = await generateCert();
    const backend = await httpsBackend(pair);
    const ca = write(d, "ca.pem", pair.cert);
    const ok = await portico(`127.0.0.1:${backend.port}`, `{ ca: ${ca} }`);
    const res = await request(ok.url());
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ sni: false, client: false });

    const untrusted = await portico(`127.0.0.1:${backend.port}`, "{}");
    expect((await request(untrusted.url())).status).toBe(502);
    const line = await untrusted.waitForLine((l) => l.code === "PRT_ERR_UPSTREAM_TLS");
    expect(line.msg).toMatch(
      /TLS to 127\.0\.0\.1:\d+ failed: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/,
    );
  });

  it("sends server_name as SNI and verifies the certificate against it", async () => {
    const d = dir();
    const pair = await generateCert({ commonName: "api.test", altNames: ["api.test"] });
    const backend = await httpsBackend(pair);
    const ca = write(d, "ca.pem", pair.cert);
    const p = await portico(`127.0.0.1:${backend.port}`, `{ ca: ${ca}, server_name: api.test }`);
    const res = await request(p.url());
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ sni: "api.test", client: false });
    // The same certificate checked as the IP address fails: it does not name 127.0.0.1.
    const wrong = await portico(`127.0.0.1:${backend.port}`, `{ ca: ${ca} }`);
    expect((await request(wrong.url())).status).toBe(502);
    const line = await wrong.waitForLine((l) => l.code === "PRT_ERR_UPSTREAM_TLS");
    expect(line.msg).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
  });

  it("presents a client certificate to an upstream that requires one (mTLS)", async () => {
    const d = dir();
    const server = await generateCert();
    const client = await generateCert({ commonName: "portico-client" });
    const backend = await httpsBackend(server, {
      requestCert: true,
      rejectUnauthorized: true,
      ca: client.cert,
    });
    const ca = write(d, "ca.pem", server.cert);
    const cert = write(d, "client.pem", client.cert);
    const key = write(d, "client.key", client.key);
    const p = await portico(`127.0.0.1:${backend.port}`, `{ ca: ${ca}, cert: ${cert}, key: ${key} }`);
    const res = await request(p.url());
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ sni: false, client: true });
    const anonymous = await portico(`127.0.0.1:${backend.port}`, `{ ca: ${ca} }`);
    expect((await request(anonymous.url())).status).toBe(502);
  });

  it("portico check warns about verify: false and refuses a cert without its key", async () => {
    const d = dir();
    const pair = await generateCert();
    const cert = write(d, "c.pem", pair.cert);
    const file = write(
      d,
      "portico.yaml",
      [
        "upstreams:",
        "  a:",
        "    tls: { verify: false }",
        "    servers: [{ address: 10.0.0.5:443 }]",
        "  b:",
        `    tls: { cert: ${cert} }`,
        "    servers: [{ address: 10.0.0.6:443 }]",
        "servers:",
        "  - listen: 8080",
        "    routes: [{ path: /, upstream: a }, { path: /b, upstream: b }]",
        "",
      ].join("\n"),
    );
    const out = await runCli(["check", "-c", file]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(
      `${file}:3:20: warning: tls.verify: false accepts any certificate from the peers, so anyone on the path can read and change this traffic; give the peers' CA with tls.ca instead`,
    );
    expect(out.stderr).toContain(
      `${file}:6:12: tls.cert needs tls.key: a client certificate goes with its private key`,
    );
  });
});
