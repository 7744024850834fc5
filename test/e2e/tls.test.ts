/**
 * End-to-end: TLS termination with real clients (node:tls, node:https, node:http2, curl
 * when installed) against the real `portico start`: protocol versions, SNI, session
 * resumption across workers, ALPN, tls: auto, https_redirect and HSTS, certificates on
 * reload, and what `portico check` says about bad certificate files.
 */
import { execFile } from "node:child_process";
import type { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { type Backend, startBackend } from "../helpers/backend.js";
import { type CertPair, generateCert } from "../helpers/certs.js";
import { request } from "../helpers/http.js";
import { type Portico, runCli, startPortico } from "../helpers/portico.js";

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backend(name = "app"): Promise<Backend> {
  const b = await startBackend(name);
  cleanup.push(() => b.close());
  return b;
}

async function portico(yaml: string): Promise<Portico> {
  const p = await startPortico(yaml);
  cleanup.push(() => p.stop());
  return p;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "portico-tls-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Write a certificate for `names` into `dir` as NAME.pem / NAME.key; returns the paths. */
async function certFiles(dir: string, name: string, names: string[], days = 30) {
  const pair = await generateCert({ commonName: names[0], altNames: names, days });
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  writeFileSync(cert, pair.cert);
  writeFileSync(key, pair.key);
  return { cert, key, pair };
}

/** The port of the bound listen address whose text ends with `tls`. */
function tlsPort(p: Portico): number {
  const found = p.bound.find((b) => b.listen.endsWith(" tls"));
  if (!found) throw new Error("no tls address bound");
  return found.port;
}

interface Handshake {
  protocol: string | null;
  subject: string;
  reused: boolean;
  session?: Buffer;
  alpn: string | false | null;
}

/** One TLS handshake; resolves with what was negotiated, rejects when the server refuses it. */
function handshake(port: number, opts: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...opts });
    socket.once("secureConnect", () => {
      const cert = socket.getPeerX509Certificate();
      const result: Handshake = {
        protocol: socket.getProtocol(),
        subject: cert ? (cert.subjectAltName ?? cert.subject) : "",
        reused: socket.isSessionReused(),
        alpn: socket.alpnProtocol,
      };
      socket.destroy();
      resolve(result);
    });
    socket.once("error", reject);
  });
}

/**
 * A TLS connection that sends one HTTP/1.1 request with `requestId` and resolves with the
 * session it got (TLS 1.3 tickets arrive after the handshake) and whether it was resumed.
 */
function requestOverTls(
  port: number,
  requestId: string,
  opts: tls.ConnectionOptions = {},
): Promise<{ reused: boolean; session: Buffer | undefined; status: string }> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    let data = "";
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...opts });
    socket.on("session", (s: Buffer) => {
      session = s;
    });
    socket.once("secureConnect", () => {
      socket.write(
        `GET / HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n`,
      );
    });
    socket.on("data", (d) => (data += d));
    socket.once("end", () => {
      resolve({ reused: socket.isSessionReused(), session, status: data.split("\r\n")[0] ?? "" });
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

function serverYaml(app: Backend, certs: { cert: string; key: string }, extra = ""): string {
  return `
workers: 1
upstreams:
  app: { servers: [{ address: ${app.address} }] }
servers:
  - listen: ["127.0.0.1:0 tls"]
    tls: { certificates: [{ cert: ${certs.cert}, key: ${certs.key} }] }
${extra}
    routes:
      - path: /
        upstream: app
`;
}

describe("TLS termination", () => {
  it("accepts TLS 1.2 and 1.3 and refuses TLS 1.0 and 1.1 (which the client really offers)", async () => {
    const dir = tempDir();
    const files = await certFiles(dir, "site", ["localhost"]);
    const p = await portico(serverYaml(await backend(), files));
    const port = tlsPort(p);
    expect((await handshake(port, { minVersion: "TLSv1.2", maxVersion: "TLSv1.2" })).protocol).toBe(
      "TLSv1.2",
    );
    expect((await handshake(port, { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" })).protocol).toBe(
      "TLSv1.3",
    );

    // Self-check: this client does offer TLS 1.0 and 1.1 (a server that allows them accepts it).
    const legacy = { ciphers: "DEFAULT@SECLEVEL=0" };
    const old = tls.createServer({ ...files.pair, ...legacy, minVersion: "TLSv1" }, (s) => s.end());
    await new Promise<void>((r) => old.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => old.close(r)));
    const oldPort = (old.address() as { port: number }).port;
    for (const version of ["TLSv1", "TLSv1.1"] as const) {
      const offered = { ...legacy, minVersion: version, maxVersion: version };
      expect((await handshake(oldPort, offered)).protocol).toBe(version);
      await expect(handshake(port, offered)).rejects.toThrow(/protocol version|unsupported protocol|alert/i);
    }
  });

  it("picks the certificate by SNI: exact names, a wildcard, a server's second certificate, the default for an unknown name and for no SNI", async () => {
    const dir = tempDir();
    const a = await certFiles(dir, "a", ["a.test"]);
    const b = await certFiles(dir, "b", ["b.test"]);
    const w = await certFiles(dir, "w", ["*.w.test"]);
    const c1 = await certFiles(dir, "c1", ["c.test"]);
    const c2 = await certFiles(dir, "c2", ["c2.test"]);
    const d = await certFiles(dir, "d", ["default.test"]);
    const app = await backend();
    const server = (names: string, certs: Array<{ cert: string; key: string }>, isDefault = false) => `
  - listen: ["127.0.0.1:0 tls"]
    server_names: ${names}
    default: ${isDefault}
    tls: { certificates: [${certs.map((c) => `{ cert: ${c.cert}, key: ${c.key} }`).join(", ")}] }
    routes: [{ path: /, upstream: app }]`;
    const p = await portico(`
workers: 1
upstreams:
  app: { servers: [{ address: ${app.address} }] }
servers:${server("[a.test]", [a])}${server("[b.test]", [b])}${server('["*.w.test"]', [w])}${server("[c.test, c2.test]", [c1, c2])}${server("[default.test]", [d], true)}
`);
    const port = tlsPort(p);
    const subject = async (servername?: string) =>
      (await handshake(port, servername ? { servername } : {})).subject;
    expect(await subject("a.test")).toBe("DNS:a.test");
    expect(await subject("B.TEST")).toBe("DNS:b.test");
    expect(await subject("x.w.test")).toBe("DNS:*.w.test");
    expect(await subject("c.test")).toBe("DNS:c.test");
    expect(await subject("c2.test")).toBe("DNS:c2.test");
    expect(await subject("unknown.test")).toBe("DNS:default.test");
    expect(await subject()).toBe("DNS:default.test");
  });

  it("resumes a TLS 1.2 and a TLS 1.3 session on another worker than the one that made it", async () => {
    const dir = tempDir();
    const files = await certFiles(dir, "site", ["localhost"]);
    const p = await portico(serverYaml(await backend(), files).replace("workers: 1", "workers: 2"));
    const port = tlsPort(p);
    const pidOf = async (id: string) =>
      (await p.waitForLine((l) => l.requestId === id && typeof l.status === "number")).pid as number;
    for (const version of ["TLSv1.2", "TLSv1.3"] as const) {
      const first = await requestOverTls(port, `${version}-first`, { maxVersion: version });
      expect(first.status).toBe("HTTP/1.1 200 OK");
      expect(first.reused).toBe(false);
      expect(first.session).toBeDefined();
      const maker = await pidOf(`${version}-first`);
      // Stop the worker that made the session: the kernel hands the next connection to the other.
      process.kill(maker, "SIGSTOP");
      try {
        const second = await requestOverTls(port, `${version}-second`, {
          maxVersion: version,
          session: first.session,
        });
        expect(second.status).toBe("HTTP/1.1 200 OK");
        expect(second.reused).toBe(true);
        const other = await pidOf(`${version}-second`);
        expect(other).not.toBe(maker);
        expect(p.workers).toContain(other);
      } finally {
        process.kill(maker, "SIGCONT");
      }
    }
  });

  it("offers h2 and http/1.1 by ALPN on one port, and proxies both to an HTTP/1.1 backend", async () => {
    const dir = tempDir();
    const files = await certFiles(dir, "site", ["localhost"]);
    const app = await backend();
    const p = await portico(serverYaml(app, files));
    const port = tlsPort(p);
    expect((await handshake(port, { ALPNProtocols: ["h2", "http/1.1"] })).alpn).toBe("h2");
    expect((await handshake(port, { ALPNProtocols: ["http/1.1"] })).alpn).toBe("http/1.1");

    const h1 = await new Promise<{ version: string; body: string }>((resolve, reject) => {
      const req = https.get(
        {
          host: "127.0.0.1",
          port,
          path: "/one",
          servername: "localhost",
          rejectUnauthorized: false,
          headers: { host: "localhost" },
        },
        (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve({ version: res.httpVersion, body }));
        },
      );
      req.on("error", reject);
    });
    expect(h1.version).toBe("1.1");
    expect(JSON.parse(h1.body)).toMatchObject({
      url: "/one",
      headers: { host: "localhost", "x-forwarded-proto": "https" },
    });

    const session = http2.connect(`https://127.0.0.1:${port}`, {
      rejectUnauthorized: false,
      servername: "localhost",
    });
    cleanup.push(() => session.close());
    const h2 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const stream = session.request({ ":path": "/two?x=1", ":authority": "localhost:8443" });
      let status = 0;
      let body = "";
      stream.on("response", (h) => (status = Number(h[":status"])));
      stream.on("data", (d) => (body += d));
      stream.on("end", () => resolve({ status, body }));
      stream.on("error", reject);
    });
    expect(h2.status).toBe(200);
    const echo = JSON.parse(h2.body) as {
      url: string;
      headers: Record<string, string>;
      rawHeaders: string[];
    };
    expect(echo.url).toBe("/two?x=1");
    // :authority became Host; no pseudo-header crossed to HTTP/1.1.
    expect(echo.headers.host).toBe("localhost:8443");
    expect(echo.rawHeaders.filter((_, i) => i % 2 === 0).some((name) => name.startsWith(":"))).toBe(false);
  });

  it("works with curl over HTTP/2 and HTTP/1.1 when curl is installed", async (ctx) => {
    const curl = await new Promise<boolean>((r) => execFile("curl", ["--version"], (err) => r(!err)));
    if (!curl) {
      ctx.skip("curl is not installed");
      return;
    }
    const dir = tempDir();
    const files = await certFiles(dir, "site", ["localhost"]);
    const p = await portico(serverYaml(await backend(), files));
    const port = tlsPort(p);
    const run = (flag: string) =>
      new Promise<string>((resolve, reject) =>
        execFile(
          "curl",
          [
            "-sk",
            flag,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "--resolve",
            `localhost:${port}:127.0.0.1`,
            `https://localhost:${port}/`,
          ],
          (err, stdout) => (err ? reject(err) : resolve(stdout)),
        ),
      );
    expect(await run("--http2")).toBe("2 200");
    expect(await run("--http1.1")).toBe("1.1 200");
  });

  it("tls: auto makes a certificate on first start, names the server in it, and reuses it on restart", async () => {
    const state = tempDir();
    const app = await backend();
    const yaml = `
workers: 1
state_dir: ${state}
upstreams:
  app: { servers: [{ address: ${app.address} }] }
servers:
  - listen: ["127.0.0.1:0 tls"]
    server_names: [dev.test]
    tls: auto
    routes: [{ path: /, upstream: app }]
`;
    const fingerprint = async (p: Portico) => {
      const socket = tls.connect({
        host: "127.0.0.1",
        port: tlsPort(p),
        servername: "dev.test",
        rejectUnauthorized: false,
      });
      await new Promise((r) => socket.once("secureConnect", r));
      const cert = socket.getPeerX509Certificate() as X509Certificate;
      socket.destroy();
      return cert;
    };
    const first = await startPortico(yaml);
    const made = await first.waitForLine((l) => typeof l.msg === "string" && l.msg.startsWith("tls: auto"));
    expect(made.created).toBe(true);
    expect(made.msg).toMatch(/self-signed development certificate .*use real certificates in production/);
    const cert1 = await fingerprint(first);
    expect(cert1.subjectAltName).toContain("DNS:dev.test");
    expect(cert1.subjectAltName).toContain("DNS:localhost");
    expect(cert1.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(cert1.checkHost("dev.test")).toBe("dev.test");
    // Logged once, by the master, not once per worker.
    expect(
      first.lines.filter((l) => typeof l.msg === "string" && l.msg.startsWith("tls: auto")),
    ).toHaveLength(1);
    await first.stop();

    const second = await startPortico(yaml);
    cleanup.push(() => second.stop());
    const reused = await second.waitForLine(
      (l) => typeof l.msg === "string" && l.msg.startsWith("tls: auto"),
    );
    expect(reused.created).toBe(false);
    expect((await fingerprint(second)).fingerprint256).toBe(cert1.fingerprint256);
  });

  it("https_redirect answers plain requests with a 308 to https keeping host, path and query; HSTS only over TLS", async () => {
    const dir = tempDir();
    const files = await certFiles(dir, "site", ["localhost", "shop.test"]);
    const app = await backend();
    const p = await portico(`
workers: 1
upstreams:
  app: { servers: [{ address: ${app.address} }] }
servers:
  - listen: [127.0.0.1:0, "127.0.0.2:0 tls"]
    server_names: [shop.test]
    https_redirect: true
    hsts: { max_age: 2d, include_subdomains: true }
    tls: { certificates: [{ cert: ${files.cert}, key: ${files.key} }] }
    routes: [{ path: /, upstream: app }]
`);
    const plain = p.bound.find((b) => !b.listen.endsWith("tls"))?.port;
    const res = await request(`http://127.0.0.1:${plain}/a/b?c=1&d=2`, {
      headers: { host: "Shop.Test:8080" },
    });
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe(`https://shop.test:${tlsPort(p)}/a/b?c=1&d=2`);
    expect(res.headers["strict-transport-security"]).toBeUndefined();
    expect(app.requests).toBe(0);

    const secure = await new Promise<{ status: number; hsts: unknown }>((resolve, reject) => {
      https
        .get(
          {
            host: "127.0.0.2",
            port: tlsPort(p),
            path: "/",
            servername: "shop.test",
            rejectUnauthorized: false,
            headers: { host: "shop.test" },
          },
          (r) => {
            r.resume();
            r.on("end", () =>
              resolve({ status: r.statusCode ?? 0, hsts: r.headers["strict-transport-security"] }),
            );
          },
        )
        .on("error", reject);
    });
    expect(secure).toEqual({ status: 200, hsts: "max-age=172800; includeSubDomains" });
  });

  it("serves a certificate swapped on reload, and keeps the old one when the new one is broken", async () => {
    const dir = tempDir();
    const files = await certFiles(dir, "site", ["old.test"]);
    const p = await portico(serverYaml(await backend(), files));
    const port = tlsPort(p);
    expect((await handshake(port)).subject).toBe("DNS:old.test");

    const renewed: CertPair = await generateCert({ commonName: "new.test", altNames: ["new.test"] });
    writeFileSync(files.cert, renewed.cert);
    writeFileSync(files.key, renewed.key);
    process.kill(p.pid, "SIGHUP");
    await p.waitForLine((l) => l.msg === "reload complete");
    expect((await handshake(port)).subject).toBe("DNS:new.test");

    // A key that belongs to another certificate: the reload fails and new.test keeps serving.
    const other = await generateCert({ commonName: "other.test", altNames: ["other.test"] });
    writeFileSync(files.key, other.key);
    process.kill(p.pid, "SIGHUP");
    const failed = await p.waitForLine((l) => typeof l.msg === "string" && l.msg.startsWith("reload failed"));
    expect(failed.msg).toMatch(/a certificate cannot be used/);
    const why = p.lines.find(
      (l) => typeof l.msg === "string" && l.msg.includes("does not belong to the certificate"),
    );
    expect(why?.msg).toMatch(
      /portico\.yaml:\d+:\d+: the private key in '.*site\.key' does not belong to the certificate in '.*site\.pem'/,
    );
    expect((await handshake(port)).subject).toBe("DNS:new.test");
  });

  it("portico check reports a missing file, a key of another certificate and an expired certificate with their positions", async () => {
    const dir = tempDir();
    const good = await certFiles(dir, "good", ["good.test"]);
    const other = await certFiles(dir, "other", ["other.test"]);
    const expired = await generateCert({ commonName: "old.test", altNames: ["old.test"], days: -1 });
    writeFileSync(join(dir, "expired.pem"), `${expired.cert}\n${expired.key}`);
    const file = join(dir, "portico.yaml");
    writeFileSync(
      file,
      [
        "servers:",
        '  - listen: ["127.0.0.1:8443 tls"]',
        "    tls:",
        "      certificates:",
        "        - { cert: missing.pem, key: good.key }",
        "        - { cert: good.pem, key: other.key }",
        "        - { cert: expired.pem }",
        `        - { cert: ${good.cert}, key: ${good.key} }`,
        "    routes: [{ path: /, return: { status: 204 } }]",
        "",
      ].join("\n"),
    );
    void other;
    const out = await runCli(["check", "-c", file]);
    expect(out.code).toBe(1);
    const lines = out.stderr.trim().split("\n");
    expect(lines[0]).toBe(
      `${file}:5:11: cannot read cert file '${join(dir, "missing.pem")}': no such file or directory`,
    );
    expect(lines[1]).toBe(
      `${file}:6:11: the private key in '${join(dir, "other.key")}' does not belong to the certificate in '${join(dir, "good.pem")}' (CN=good.test)`,
    );
    expect(lines[2]).toMatch(
      new RegExp(
        `^${file}:7:11: warning: the certificate in '${join(dir, "expired.pem")}' expired on .*: clients will refuse it; renew it$`,
      ),
    );
    expect(lines[3]).toBe(`portico: ${file}: 2 errors; configuration invalid`);
  });

  it("portico check explains TLS mistakes in the config itself", async () => {
    const dir = tempDir();
    const file = join(dir, "portico.yaml");
    writeFileSync(
      file,
      [
        "servers:",
        '  - listen: ["127.0.0.1:8443 tls", "127.0.0.1:8080 ssl"]',
        "    https_redirect: true",
        "    routes: [{ path: /, return: { status: 204 } }]",
        "  - listen: [127.0.0.1:8443]",
        "    tls: auto",
        "    routes: [{ path: /, return: { status: 204 } }]",
        "",
      ].join("\n"),
    );
    const out = await runCli(["check", "-c", file]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(
      `${file}:2:36: invalid listen address '127.0.0.1:8080 ssl': unknown flag 'ssl': write 'tls' (nginx's 'ssl')`,
    );
    expect(out.stderr).toContain(
      `${file}:2:14: listen '127.0.0.1:8443 tls' is a TLS address, but this server has no certificates: add 'tls: { certificates: [{ cert: FILE, key: FILE }] }' (or 'tls: auto' for development) to the server`,
    );
    expect(out.stderr).toContain(
      `${file}:3:5: https_redirect redirects requests on plain addresses, but every listen address of this server is 'tls': remove it, or add a plain address`,
    );
    expect(out.stderr).toContain(
      `${file}:5:14: 127.0.0.1:8443 is 'plain' here but 'tls' at line 2: one address is TLS, h2c or plain for every server on it; write the same flag on both`,
    );
    expect(out.stderr).toContain(
      `${file}:6:5: warning: this server has 'tls' but none of its listen addresses has the 'tls' flag, so its certificates are not used`,
    );
  });
});
