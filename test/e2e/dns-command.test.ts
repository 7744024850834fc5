// `portico dns`: the real CLI against the real test DNS server, over each transport.
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDnsServer, type TestDnsServer } from "../helpers/dns-server.js";
import { runCli } from "../helpers/portico.js";

let server: TestDnsServer;
let dir: string;
let caFile: string;

beforeAll(async () => {
  server = await startDnsServer();
  server.set("api.test", "A", ["10.0.0.1", "10.0.0.2"], 30);
  server.set(
    "_http._tcp.api.test",
    "SRV",
    [{ priority: 10, weight: 5, port: 8080, target: "a.api.test" }],
    60,
  );
  server.set("www.test", "CNAME", "api.test", 120);
  dir = mkdtempSync(join(tmpdir(), "portico-dnscli-"));
  caFile = join(dir, "ca.pem");
  writeFileSync(caFile, server.ca);
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("portico dns", () => {
  it.each(["udp", "tcp", "tls", "https"] as const)(
    "prints the answer over %s with TTLs, server and time",
    async (transport) => {
      const url = server.urls[transport];
      const { code, stdout } = await runCli(["dns", "api.test", "A", "--server", url, "--ca", caFile]);
      expect(code).toBe(0);
      expect(stdout).toContain(`;; server ${url}`);
      expect(stdout).toMatch(
        new RegExp(`2 record\\(s\\) from ${url.replace(/[.?/]/g, "\\$&")} over ${transport} in [\\d.]+ ms`),
      );
      expect(stdout).toContain("api.test.\t30\tIN\tA\t10.0.0.1");
      expect(stdout).toContain("api.test.\t30\tIN\tA\t10.0.0.2");
    },
  );

  it("prints SRV records and CNAME chains", async () => {
    const srv = await runCli(["dns", "_http._tcp.api.test", "srv", "--server", server.urls.udp]);
    expect(srv.stdout).toContain("_http._tcp.api.test.\t60\tIN\tSRV\t10 5 8080 a.api.test.");
    const www = await runCli(["dns", "www.test", "--server", server.urls.udp]);
    expect(www.stdout).toContain("www.test.\t120\tIN\tCNAME\tapi.test.");
    expect(www.stdout).toContain("api.test.\t30\tIN\tA\t10.0.0.1");
  });

  it("asks several servers side by side; one failing does not fail the others", async () => {
    // A UDP port the OS gave us and that nothing listens on any more.
    const socket = createSocket("udp4");
    socket.bind(0, "127.0.0.1");
    await once(socket, "listening");
    const closed = `udp://127.0.0.1:${socket.address().port}`;
    socket.close();
    const { code, stdout } = await runCli([
      "dns",
      "api.test",
      "--server",
      server.urls.tcp,
      "--server",
      closed,
      "--server",
      server.urls.https,
      "--ca",
      caFile,
      "--timeout",
      "300ms",
    ]);
    expect(code).toBe(0);
    const sections = stdout.split(";; server ").slice(1);
    expect(sections).toHaveLength(3);
    expect(sections[0]).toContain("over tcp");
    expect(sections[1]).toMatch(new RegExp(`^${closed}\\n;; (TIMEOUT|NETWORK): `));
    expect(sections[2]).toContain("over https");
  });

  it("exits 1 with the error code when the name does not exist, 2 on bad usage", async () => {
    const missing = await runCli(["dns", "missing.test", "--server", server.urls.udp]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain(";; NXDOMAIN: missing.test does not exist");
    // A dangling alias names the target that is missing, not the name asked.
    server.set("dangling.test", "CNAME", "gone.test", 60);
    const dangling = await runCli(["dns", "dangling.test", "--server", server.urls.udp]);
    expect(dangling.code).toBe(1);
    expect(dangling.stdout).toContain(
      ";; NXDOMAIN: dangling.test is an alias (CNAME) of gone.test: gone.test does not exist (NXDOMAIN from",
    );
    const bad = await runCli(["dns", "api.test", "MX"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("usage: portico dns NAME [A|AAAA|SRV|CNAME]");
    const badUrl = await runCli(["dns", "api.test", "--server", "ftp://1.2.3.4"]);
    expect(badUrl.code).toBe(1);
    expect(badUrl.stdout).toContain("unknown scheme 'ftp://'");
  });

  it("answers localhost from the hosts file without any server", async () => {
    const { code, stdout } = await runCli(["dns", "localhost"]);
    expect(code).toBe(0);
    expect(stdout).toContain("from the hosts file");
    expect(stdout).toContain("localhost.\t5\tIN\tA\t127.0.0.1");
  });
});
