import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
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
      { host: "127.0.0.1", port: 8080, text: "127.0.0.1:8080" },
    ]);
    expect(Object.keys(result.config?.upstreams ?? {})).toEqual(["demo"]);
  });

  it("loads from disk with an absolute Config.file and positions as given", () => {
    const result = loadConfig(shippedPath);
    expect(result.config?.file).toBe(shippedPath);
    expect(result.config?.servers[0]?.position).toEqual({ file: shippedPath, line: 29, col: 5 });
    expect(result.config?.servers[0]?.routes[2]?.position).toEqual({ file: shippedPath, line: 37, col: 9 });
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
      upstreamKeepalive: 4_000,
      shutdown: 30_000,
      drainGrace: 1_000,
      workerStart: 10_000,
    });
    expect(config?.log).toEqual({ level: "info", access: "stdout", error: "stderr" });
    expect(config?.upstreams).toEqual({});
    const server = config?.servers[0];
    expect(server?.listen).toEqual([{ host: "0.0.0.0", port: 8080, text: "8080" }]);
    expect(server?.exactNames).toEqual([]);
    expect(server?.wildcardNames).toEqual([]);
    expect(server?.isDefault).toBe(false);
    expect(server?.maxRequestBody).toBe(0);
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
      servers: [{ host: "api.internal", port: 8080, weight: 1, text: "api.internal:8080" }],
      maxConnectionsPerPeer: 256,
    });
    const server = config?.servers[0];
    expect(server?.listen.map((l) => [l.host, l.port])).toEqual([
      ["127.0.0.1", 0],
      ["::1", 0],
    ]);
    expect(server?.exactNames).toEqual(["example.com"]);
    expect(server?.wildcardNames).toEqual([".example.com"]);
    expect(server?.maxRequestBody).toBe(10 * 1024 * 1024);
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
    expect(config?.log).toEqual({ level: "info", access: "/etc/p/logs/access.log", error: "/var/log/p.log" });
  });

  it("resolves the pid file from the config file's folder, default portico.pid", () => {
    expect(parseConfig(minimal(""), "/etc/p/p.yaml").config?.pidFile).toBe("/etc/p/portico.pid");
    expect(parseConfig(minimal("pid_file: /run/portico.pid"), "/etc/p/p.yaml").config?.pidFile).toBe(
      "/run/portico.pid",
    );
  });
});

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
    expect(JSON.parse(JSON.stringify(config))).toStrictEqual(structuredClone(config));
    expect(JSON.parse(JSON.stringify(config))).toEqual(config);
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
