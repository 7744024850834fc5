import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatIssue, loadConfig, parseConfig } from "../../src/config/load.js";

const shippedPath = fileURLToPath(new URL("../../conf/portico.yaml", import.meta.url));

/** The smallest valid config, plus extra top-level lines. */
const minimal = (...extra: string[]) =>
  [
    ...extra,
    "servers:",
    "  - listen: 8080",
    "    routes:",
    "      - path: /",
    "        return: { status: 204 }",
  ].join("\n");

describe("the shipped conf/portico.yaml", () => {
  it("is valid: no issue at all", () => {
    const result = parseConfig(readFileSync(shippedPath, "utf8"), "conf/portico.yaml");
    expect(result.issues).toEqual([]);
    expect(result.config?.servers[0]?.listen).toEqual([
      { host: "127.0.0.1", port: 8080, text: "127.0.0.1:8080", tls: false, h2c: false },
      { host: "127.0.0.1", port: 8443, text: "127.0.0.1:8443 tls", tls: true, h2c: false },
    ]);
    expect(result.config?.servers[0]?.tls?.auto).toBe(true);
    expect(Object.keys(result.config?.upstreams ?? {})).toEqual(["demo"]);
  });

  it("loads from disk with an absolute Config.file and positions as given", () => {
    const result = loadConfig(shippedPath);
    expect(result.config?.file).toBe(shippedPath);
    expect(result.config?.servers[0]?.position).toEqual({ file: shippedPath, line: 64, col: 5 });
    expect(result.config?.servers[0]?.routes[2]?.position).toEqual({ file: shippedPath, line: 77, col: 9 });
  });
});

describe("defaults", () => {
  it("fills in every default", () => {
    const { config, issues } = parseConfig(minimal(), "d.yaml");
    expect(issues).toEqual([]);
    expect(config?.workers).toBe(availableParallelism());
    expect(config?.timeouts).toEqual({
      connect: 5_000,
      upstreamHeader: 60_000,
      upstreamBody: 60_000,
      clientKeepalive: 75_000,
      clientHeader: 10_000,
      clientBody: 60_000,
      upstreamKeepalive: 4_000,
      shutdown: 30_000,
      drainGrace: 1_000,
      workerStart: 10_000,
      tunnelIdle: 3_600_000,
    });
    expect(config?.http2).toEqual({ enabled: true, maxConcurrentStreams: 128, maxHeaderListSize: 32 * 1024 });
    expect(config?.stateDir).toBe(resolve(".portico"));
    expect(config?.log).toEqual({ level: "info", access: "stdout", error: "stderr", format: "auto" });
    // Not written = undefined, so that the resolver applies /etc/resolv.conf's values.
    expect(config?.dns).toStrictEqual({
      nameservers: undefined,
      timeout: undefined,
      attempts: undefined,
      minTtl: 1_000,
      maxTtl: 3_600_000,
      staleMax: 86_400_000,
      retryMax: 5000,
      family: "any",
      removeAfter: 30_000,
      ca: undefined,
      cert: undefined,
      key: undefined,
    });
    expect(config?.upstreams).toEqual({});
    const server = config?.servers[0];
    expect(server?.listen).toEqual([{ host: "0.0.0.0", port: 8080, text: "8080", tls: false, h2c: false }]);
    expect(server?.tls).toBeUndefined();
    expect(server?.httpsRedirect).toBe(false);
    expect(server?.hsts).toBeUndefined();
    expect(server?.exactNames).toEqual([]);
    expect(server?.wildcardNames).toEqual([]);
    expect(server?.isDefault).toBe(false);
    expect(server?.limits).toEqual({
      maxUrl: 8192,
      maxHeaderSize: 32768,
      maxHeaders: 100,
      maxRequestBody: 0,
    });
    expect(server?.routes[0]).toMatchObject({
      match: { kind: "prefix", path: "/" },
      action: { kind: "return", status: 204, body: "", contentType: "text/plain; charset=utf-8" },
      requestHeaders: { set: {}, remove: [] },
      responseHeaders: { set: {}, remove: [] },
    });
  });

  it("fills in upstream, redirect and regex defaults", () => {
    const text = [
      "upstreams:",
      "  api:",
      "    servers: [{ address: api.internal:8080 }]",
      "servers:",
      "  - listen: [127.0.0.1:0, '[::1]:0']",
      "    server_names: [Example.COM, '*.Example.com']",
      "    max_request_body: 10m",
      "    routes:",
      "      - regex: ^/img/.*\\.png$",
      "        ignore_case: true",
      "        redirect: { to: 'https://$host$request_uri' }",
      "      - path: /api/",
      "        upstream: api",
      "        strip_prefix: true",
      "        request_headers: { set: { X-Forwarded-Proto: https }, remove: [Cookie] }",
    ].join("\n");
    const { config, issues } = parseConfig(text, "u.yaml");
    expect(issues).toEqual([]);
    expect(config?.upstreams.api).toEqual({
      name: "api",
      balance: "round_robin",
      hash: undefined,
      tries: 3,
      retryOn: ["error", "timeout"],
      tryTimeout: 0,
      health: undefined,
      panicThreshold: 0.5,
      onAllDown: "panic",
      tls: undefined,
      slowStart: 0,
      passive: {
        maxFails: 1,
        failTimeout: 10_000,
        maxFailTimeout: 300_000,
        maxEjected: 0.5,
        on: ["error", "timeout"],
      },
      servers: [
        {
          kind: "address",
          host: "api.internal",
          port: 8080,
          fixed: false,
          weight: 1,
          text: "api.internal:8080",
          position: { file: "u.yaml", line: 3, col: 15 },
        },
      ],
      maxConnectionsPerPeer: 256,
      dns: { family: "any", removeAfter: 30_000 },
    });
    const server = config?.servers[0];
    expect(server?.listen.map((l) => [l.host, l.port])).toEqual([
      ["127.0.0.1", 0],
      ["::1", 0],
    ]);
    expect(server?.exactNames).toEqual(["example.com"]);
    expect(server?.wildcardNames).toEqual([".example.com"]);
    expect(server?.limits.maxRequestBody).toBe(10 * 1024 * 1024);
    expect(server?.routes[0]?.match).toEqual({
      kind: "regex",
      source: "^/img/.*\\.png$",
      caseInsensitive: true,
    });
    expect(server?.routes[0]?.action).toEqual({
      kind: "redirect",
      status: 302,
      to: "https://$host$request_uri",
    });
    expect(server?.routes[1]?.action).toEqual({ kind: "upstream", upstream: "api", stripPrefix: true });
    expect(server?.routes[1]?.requestHeaders).toEqual({
      set: { "x-forwarded-proto": "https" },
      remove: ["cookie"],
    });
  });

  it("builds the config when there are only warnings", () => {
    const { config, issues } = parseConfig(minimal("workers: !cpus auto"), "w.yaml");
    expect(issues.map((i) => i.severity)).toEqual(["warning"]);
    expect(config?.workers).toBe(availableParallelism());
  });

  it("resolves log file paths from the config file's folder", () => {
    const { config } = parseConfig(
      minimal("log: { access: logs/access.log, error: /var/log/p.log }"),
      "/etc/p/p.yaml",
    );
    expect(config?.log).toEqual({
      level: "info",
      access: "/etc/p/logs/access.log",
      error: "/var/log/p.log",
      format: "auto",
    });
  });

  it("resolves the pid file from the config file's folder, default portico.pid", () => {
    expect(parseConfig(minimal(""), "/etc/p/p.yaml").config?.pidFile).toBe("/etc/p/portico.pid");
    expect(parseConfig(minimal("pid_file: /run/portico.pid"), "/etc/p/p.yaml").config?.pidFile).toBe(
      "/run/portico.pid",
    );
  });
});

describe("upstream servers and the dns section", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "portico-config-"));
    mkdirSync(join(dir, "certs"));
    for (const name of ["ca.pem", "client.pem", "client.key"]) {
      writeFileSync(join(dir, "certs", name), "-----BEGIN SOMETHING-----\nAAAA\n-----END SOMETHING-----\n");
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("normalizes addresses and services, with their positions", () => {
    const text = [
      "upstreams:",
      "  api:",
      "    servers:",
      "      - address: ' API.Internal.:8080 '",
      "        weight: 2",
      "      - address: '[2001:DB8::1]:9000'",
      "      - address: 10.0.0.5:80",
      "      - service: _HTTP._tcp.Api.Internal.",
      "servers: [{ listen: 80, routes: [{ path: /, upstream: api }] }]",
    ].join("\n");
    const { config, issues } = parseConfig(text, "s.yaml");
    expect(issues).toEqual([]);
    expect(config?.upstreams.api?.servers).toStrictEqual([
      {
        kind: "address",
        host: "api.internal",
        port: 8080,
        fixed: false,
        weight: 2,
        text: "API.Internal.:8080",
        position: { file: "s.yaml", line: 4, col: 9 },
      },
      {
        kind: "address",
        host: "2001:db8::1",
        port: 9000,
        fixed: true,
        weight: 1,
        text: "[2001:DB8::1]:9000",
        position: { file: "s.yaml", line: 6, col: 9 },
      },
      {
        kind: "address",
        host: "10.0.0.5",
        port: 80,
        fixed: true,
        weight: 1,
        text: "10.0.0.5:80",
        position: { file: "s.yaml", line: 7, col: 9 },
      },
      {
        kind: "service",
        service: "_http._tcp.api.internal",
        text: "_HTTP._tcp.Api.Internal.",
        position: { file: "s.yaml", line: 8, col: 9 },
      },
    ]);
  });

  it("fills every key of the dns section, with TLS files from the config file's folder", () => {
    const text = [
      "dns:",
      "  nameservers: [udp://10.0.0.53:53, ' 10.0.0.54 ', 'tls://dns.example:853?servername=dns.example']",
      "  timeout: 1500ms",
      "  attempts: 3",
      "  min_ttl: 5s",
      "  max_ttl: 10m",
      "  stale_max: 2h",
      "  retry_max: 3s",
      "  family: prefer_ipv6",
      "  remove_after: 1m",
      "  ca: certs/ca.pem",
      "  cert: certs/client.pem",
      `  key: ${join(dir, "certs", "client.key")}`,
      "upstreams:",
      "  api:",
      "    dns: { family: ipv4, remove_after: 10s }",
      "    servers: [{ address: api.internal:80 }]",
      "  web:",
      "    dns: { remove_after: 0s }",
      "    servers: [{ service: _http._tcp.web.internal }]",
      "  static:",
      "    servers: [{ address: 10.0.0.9:80 }]",
      "servers: [{ listen: 80, routes: [{ path: /, upstream: api }] }]",
    ].join("\n");
    const { config, issues } = parseConfig(text, join(dir, "p.yaml"));
    expect(issues).toEqual([]);
    expect(config?.dns).toStrictEqual({
      nameservers: ["udp://10.0.0.53:53", "10.0.0.54", "tls://dns.example:853?servername=dns.example"],
      timeout: 1_500,
      attempts: 3,
      minTtl: 5_000,
      maxTtl: 600_000,
      staleMax: 7_200_000,
      retryMax: 3_000,
      family: "prefer_ipv6",
      removeAfter: 60_000,
      ca: join(dir, "certs", "ca.pem"),
      cert: join(dir, "certs", "client.pem"),
      key: join(dir, "certs", "client.key"),
    });
    expect(config?.upstreams.api?.dns).toEqual({ family: "ipv4", removeAfter: 10_000 });
    expect(config?.upstreams.web?.dns).toEqual({ family: "prefer_ipv6", removeAfter: 0 });
    expect(config?.upstreams.static?.dns).toEqual({ family: "prefer_ipv6", removeAfter: 60_000 });
  });
});

/** A deep copy of plain data without the keys whose value is undefined (JSON drops them). */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([, child]) => child !== undefined)
      .map(([key, child]) => [key, withoutUndefined(child)]),
  );
}

describe("the Config object", () => {
  const { config } = loadConfig(shippedPath);

  it("is deep-frozen", () => {
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config?.servers[0]?.routes[0]?.action)).toBe(true);
    expect(Object.isFrozen(config?.upstreams.demo?.servers[1])).toBe(true);
    expect(() => {
      (config?.timeouts as { connect: number }).connect = 1;
    }).toThrow(TypeError);
  });

  it("survives a JSON round trip unchanged (it is sent over IPC)", () => {
    // Values not written (dns.nameservers, ...) are undefined, which JSON leaves out: the
    // receiver reads undefined all the same. Everything else must come back identical.
    const copy = JSON.parse(JSON.stringify(config));
    expect(copy).toStrictEqual(withoutUndefined(structuredClone(config)));
    expect(copy).toEqual(config);
  });
});

describe("loadConfig and formatIssue", () => {
  it("reports an unreadable file as one issue at line 0", () => {
    const result = loadConfig("conf/does-not-exist.yaml");
    expect(result.config).toBeUndefined();
    expect(result.issues.map(formatIssue)).toEqual([
      "conf/does-not-exist.yaml: cannot read config file: no such file or directory",
    ]);
  });

  it("formats positioned errors and warnings", () => {
    expect(formatIssue({ file: "a.yaml", line: 12, col: 7, message: "bad", severity: "error" })).toBe(
      "a.yaml:12:7: bad",
    );
    expect(formatIssue({ file: "a.yaml", line: 3, col: 1, message: "odd", severity: "warning" })).toBe(
      "a.yaml:3:1: warning: odd",
    );
  });

  it("keeps the file name as given in issues, and makes Config.file absolute", () => {
    const result = parseConfig(minimal("workers: 3"), "rel/p.yaml");
    expect(result.config?.file).toBe(resolve("rel/p.yaml"));
    expect(result.config?.workers).toBe(3);
    expect(parseConfig("servers: x", "rel/p.yaml").issues[0]?.file).toBe("rel/p.yaml");
  });
});
