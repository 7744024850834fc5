/**
 * `portico explain`: the real CLI on real configs: exact, prefix, regex and wildcard
 * matches and which rule won, no match, and a pick among peers found through a real DNS
 * server on loopback, with health from a running master's admin listener.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Backend, closedPort, startBackend } from "../helpers/backend.js";
import { startDnsServer, type TestDnsServer } from "../helpers/dns-server.js";
import { type Portico, runCli, startPortico } from "../helpers/portico.js";

let dir: string;
let dns: TestDnsServer;
let app: Backend;
let dead: number;
const running: Portico[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "portico-explain-"));
  dns = await startDnsServer();
  app = await startBackend("app");
  dead = await closedPort();
  dns.set("api.test", "A", ["127.0.0.1", "127.0.0.9"], 30);
});

afterAll(async () => {
  for (const p of running) await p.stop();
  await app?.close();
  await dns?.close();
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, yaml: string): string {
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

const routing = () => `
upstreams:
  app: { servers: [{ address: 127.0.0.1:${app.port} }] }
servers:
  - listen: 127.0.0.1:8080
    server_names: [www.example.com, "*.example.com"]
    routes:
      - exact: /health
        return: { status: 200, body: "ok" }
      - regex: ^/v[0-9]+/items$
        upstream: app
      - path: /v1/
        upstream: app
        strip_prefix: true
        request_headers: { set: { x-api: "1" } }
      - path: /
        upstream: app
  - listen: 127.0.0.1:8080
    server_names: [other.test]
    default: true
    routes:
      - path: /only/
        upstream: app
`;

describe("portico explain", () => {
  it("an exact route wins over the prefixes that also match", async () => {
    const file = write("r.yaml", routing());
    const r = await runCli(["explain", "-c", file, "http://www.example.com:8080/health"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/why: exact server name 'www\.example\.com'/);
    expect(r.stdout).toMatch(/=> servers\[0\]\.routes\[0\]\s+exact \/health: exact match/);
    expect(r.stdout).toMatch(
      /servers\[0\]\.routes\[3\]\s+prefix \/: matches too, but a route tried before it won/,
    );
    expect(r.stdout).toContain("action: return 200");
  });

  it("a regex wins over a longer prefix; the longest prefix wins when no regex matches", async () => {
    const file = write("r.yaml", routing());
    const regex = await runCli(["explain", "-c", file, "http://www.example.com:8080/v1/items"]);
    expect(regex.code).toBe(0);
    expect(regex.stdout).toMatch(/=> servers\[0\]\.routes\[1\]\s+regex .*: the first regex in file order/);
    expect(regex.stdout).toMatch(/servers\[0\]\.routes\[2\]\s+prefix \/v1\/: matches too/);
    const prefix = await runCli([
      "explain",
      "-c",
      file,
      "http://www.example.com:8080/v1/users?id=7",
      "--method",
      "post",
      "--header",
      "X-Client: abc",
    ]);
    expect(prefix.code).toBe(0);
    expect(prefix.stdout).toMatch(
      /=> servers\[0\]\.routes\[2\]\s+prefix \/v1\/: the longest matching prefix/,
    );
    expect(prefix.stdout).toMatch(/servers\[0\]\.routes\[3\]\s+prefix \/: matches too/);
    // strip_prefix and the route's header edits show in what goes upstream.
    expect(prefix.stdout).toContain("  POST /users?id=7 HTTP/1.1");
    expect(prefix.stdout).toContain("  x-client: abc");
    expect(prefix.stdout).toContain("  x-api: 1");
    expect(prefix.stdout).toContain("  x-forwarded-for: 127.0.0.1");
    expect(prefix.stdout).toContain(`=> 127.0.0.1:${app.port}`);
  });

  it("a wildcard name, and the default server for an unknown host", async () => {
    const file = write("r.yaml", routing());
    const wild = await runCli(["explain", "-c", file, "http://api.example.com:8080/"]);
    expect(wild.code).toBe(0);
    expect(wild.stdout).toMatch(/why: wildcard '\*\.example\.com'/);
    const other = await runCli(["explain", "-c", file, "http://unknown.test:8080/only/x"]);
    expect(other.code).toBe(0);
    expect(other.stdout).toMatch(/why: no server name matches 'unknown\.test': the server marked default/);
    expect(other.stdout).toMatch(/=> servers\[1\]\.routes\[0\]/);
  });

  it("exits 1 with a clear message when nothing matches", async () => {
    const file = write("r.yaml", routing());
    const none = await runCli(["explain", "-c", file, "http://unknown.test:8080/nothing"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no route of other\.test matches \/nothing: Portico answers 404/);
    const port = await runCli(["explain", "-c", file, "http://www.example.com:9999/"]);
    expect(port.code).toBe(1);
    expect(port.stderr).toMatch(
      /no server listens on port 9999 without tls; the config listens on 127\.0\.0\.1:8080/,
    );
    const bad = await runCli(["explain", "-c", file, "not a url"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is not a URL/);
  });

  it("picks among peers found through DNS, skipping one the running master's checks took out", async () => {
    const yaml = `
workers: 1
admin: { listen: 127.0.0.1:0 }
dns: { nameservers: [${dns.urls.udp}] }
upstreams:
  api:
    servers: [{ address: "api.test:${app.port}" }, { address: "127.0.0.1:${dead}" }]
    health: { path: /, interval: 200ms, timeout: 500ms, rise: 1, fall: 1 }
servers:
  - listen: 127.0.0.1:0
    routes: [{ path: /, upstream: api }]
`;
    const p = await startPortico(yaml);
    running.push(p);
    const ready = await p.waitForLine((l) => l.msg === "portico ready");
    const adminPort = (ready.admin as { port: number }).port;
    // explain reads the same file with the ports the master bound written in.
    const file = write(
      "dns.yaml",
      yaml
        .replace("listen: 127.0.0.1:0 }", `listen: 127.0.0.1:${adminPort} }`)
        .replace("- listen: 127.0.0.1:0", "- listen: 127.0.0.1:8081"),
    );
    const r = await runCli(["explain", "-c", file, "http://localhost:8081/x"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/health: from the running master/);
    expect(r.stdout).toMatch(
      new RegExp(
        `=> 127\\.0\\.0\\.1:${app.port}\\s+weight 1\\s+priority 0\\s+from DNS api\\.test\\s+healthy`,
      ),
    );
    expect(r.stdout).toMatch(
      new RegExp(`127\\.0\\.0\\.9:${app.port}\\s+weight 1\\s+priority 0\\s+from DNS api\\.test\\s+unhealthy`),
    );
    expect(r.stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:${dead}\\s+.*from configured address\\s+unhealthy`));
    expect(r.stdout).toContain(`pick: 127.0.0.1:${app.port}`);
  });
});
