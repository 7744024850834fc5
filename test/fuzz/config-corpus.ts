/**
 * Seed configs for the config fuzzer: the shipped ones (conf/*.yaml), the test fixtures
 * (test/fixtures/*.yaml), the configs the tests start Portico with (the YAML template literals
 * of test/**\/*.test.ts, interpolations filled with plausible values), and one config here that
 * uses most of the schema, so mutations reach every part of the loader.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A config touching most keys of the schema: valid as written. */
const RICH = `workers: 2
timeouts:
  connect: 2s
  upstream_header: 30s
  upstream_body: 1m
  client_keepalive: 75s
  upstream_keepalive: 4s
  shutdown: 10s
  tunnel_idle: 1h
log:
  level: warn
  access: off
  error: stderr
dns:
  nameservers: [udp://127.0.0.1:53, "tls://127.0.0.1:853?servername=dns.internal"]
  timeout: 2s
  attempts: 2
  min_ttl: 1s
  max_ttl: 1h
  stale_max: 1d
http2:
  enabled: true
  max_concurrent_streams: 100
  max_header_list_size: 16k
state_dir: .portico
upstreams:
  api:
    balance: hash
    hash: { key: "header:x-user-id" }
    servers:
      - address: 127.0.0.1:9001
        weight: 3
      - address: api.internal:8080
  web:
    balance: least_conn
    servers:
      - service: _http._tcp.web.internal
  static:
    balance: round_robin
    servers: [{ address: "10.0.0.5:80" }, { address: "[::1]:8080" }]
servers:
  - listen: [127.0.0.1:8080, "127.0.0.1:8443 tls", "127.0.0.1:8081 h2c"]
    server_names: [example.com, "*.example.com"]
    default: true
    tls: auto
    routes:
      - exact: /healthz
        return: { status: 200, body: "ok\\n" }
      - path: /api/
        upstream: api
        strip_prefix: true
        request_headers: { set: { x-via: portico }, remove: [x-debug] }
      - regex: "\\\\.(png|jpg)$"
        ignore_case: true
        upstream: static
        response_headers: { set: { cache-control: "max-age=60" } }
      - path: /old/
        redirect: { to: "https://$host/new$request_uri", status: 301 }
      - path: /
        upstream: web
  - listen: 127.0.0.1:9090
    server_names: [admin.test]
    routes:
      - path: /
        return: { status: 404 }
`;

/** `${...}` in a test's template literal, replaced by a value of the kind it stands for. */
function fill(expression: string): string {
  if (/address/i.test(expression)) return "127.0.0.1:9001";
  if (/port/i.test(expression)) return "9001";
  if (/dir|path|file|cert|key/i.test(expression)) return "/tmp/x";
  return "1";
}

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== "fuzz") out.push(...testFiles(path));
    else if (entry.isFile() && entry.name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

/** The YAML configs written as template literals in the tests. */
function testConfigs(): string[] {
  const out: string[] = [];
  for (const file of testFiles(join(ROOT, "test"))) {
    const text = readFileSync(file, "utf8");
    for (const match of text.matchAll(/`([^`]*)`/g)) {
      const body = match[1] ?? "";
      if (!body.includes("\n") || !/^\s*servers:/m.test(body)) continue;
      out.push(body.replace(/\$\{([^}]*)\}/g, (_, expression: string) => fill(expression)));
    }
  }
  return out;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir))
    .filter((name) => name.endsWith(".yaml") || name.endsWith(".yml"))
    .map((name) => readFileSync(join(ROOT, dir, name), "utf8"));
}

/** Every seed config, deduplicated. */
export function configCorpus(): string[] {
  return [...new Set([...yamlFiles("conf"), ...yamlFiles("test/fixtures"), RICH, ...testConfigs()])];
}
