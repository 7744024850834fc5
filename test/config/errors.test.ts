import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatIssue, parseConfig } from "../../src/config/load.js";

/** Checks YAML lines (line 1 first) and returns every issue as `t.yaml:LINE:COL: message`. */
function problems(...lines: string[]): string[] {
  const result = parseConfig(lines.join("\n"), "t.yaml");
  if (result.issues.some((i) => i.severity === "error")) expect(result.config).toBeUndefined();
  return result.issues.map(formatIssue);
}

const API_UPSTREAM = ["upstreams:", "  api:", "    servers:", "      - address: 10.0.0.5:8080"];

describe("operator-facing errors, with exact text and position", () => {
  it("misspelled key: names it and suggests the nearest valid key", () => {
    expect(
      problems(
        ...API_UPSTREAM,
        "servers:",
        "  - listen: 8080",
        "    routes:",
        "      - path: /",
        "        upstreem: api",
      ),
    ).toEqual([
      "t.yaml:8:9: route has no action: add one of 'upstream: NAME', 'return: {status: ...}' or 'redirect: {to: ...}'",
      "t.yaml:9:9: unknown key 'upstreem'; did you mean 'upstream'?",
    ]);
  });

  it("unknown key far from any valid one: lists the valid keys", () => {
    expect(problems("colour: blue", "servers: []")).toEqual([
      "t.yaml:1:1: unknown key 'colour'; valid keys are: 'workers', 'timeouts', 'log', 'limits', 'admin', 'trusted_proxies', 'pid_file', 'dns', 'http2', 'state_dir', 'upstreams', 'servers'",
      "t.yaml:2:10: servers must not be an empty list: write at least 1 entry",
    ]);
  });

  it("balance: hash without hash, hash without balance: hash, and a bad hash key", () => {
    const server = ["servers:", "  - listen: 8080", "    routes: [{ path: /, upstream: a }]"];
    expect(
      problems(
        "upstreams:",
        "  a:",
        "    balance: hash",
        "    servers: [{ address: 10.0.0.5:80 }]",
        ...server,
      ),
    ).toEqual([
      "t.yaml:3:14: balance: hash needs to know what to hash on: add 'hash: { key: client_ip }' (or uri, header:NAME, cookie:NAME)",
    ]);
    expect(
      problems(
        "upstreams:",
        "  a:",
        "    hash: { key: uri }",
        "    servers: [{ address: 10.0.0.5:80 }]",
        ...server,
      ),
    ).toEqual([
      "t.yaml:3:5: 'hash' only applies with 'balance: hash' (this upstream balances with round_robin): write balance: hash, or remove it",
    ]);
    // A balance of the wrong type gets the schema's message only (the fuzzer found "[object Object]").
    const wrongType = problems(
      "upstreams:",
      "  a:",
      "    balance: {}",
      "    hash: { key: uri }",
      "    servers: [{ address: 10.0.0.5:80 }]",
      ...server,
    );
    expect(wrongType.join("\n")).not.toContain("[object Object]");
    expect(wrongType.length).toBeGreaterThan(0);
    expect(
      problems(
        "upstreams:",
        "  a:",
        "    balance: hash",
        "    hash: { key: ip }",
        "    servers: [{ address: 10.0.0.5:80 }]",
        ...server,
      ),
    ).toEqual([
      "t.yaml:4:18: invalid hash key 'ip': write client_ip, uri, header:NAME or cookie:NAME (e.g. header:x-user-id)",
    ]);
  });

  it("undefined upstream: points at the value and suggests the nearest", () => {
    expect(
      problems(
        ...API_UPSTREAM,
        "servers:",
        "  - listen: 8080",
        "    routes:",
        "      - path: /",
        "        upstream: apii",
      ),
    ).toEqual(["t.yaml:9:19: upstream 'apii' is not defined; did you mean 'api'?"]);
    expect(
      problems(
        ...API_UPSTREAM,
        "servers:",
        "  - listen: 8080",
        "    routes:",
        "      - path: /",
        "        upstream: web",
      ),
    ).toEqual(["t.yaml:9:19: upstream 'web' is not defined; defined upstreams are: 'api'"]);
  });

  it("the same server name twice on one listen address: at the second, naming the first", () => {
    expect(
      problems(
        "servers:",
        "  - listen: 127.0.0.1:8080",
        "    server_names: [example.com]",
        "    routes: [{ path: /, return: { status: 200 } }]",
        "  - listen: [9090, '127.0.0.1:8080']",
        "    server_names: [www.example.com, Example.com]",
        "    routes: [{ path: /, return: { status: 200 } }]",
      ),
    ).toEqual([
      "t.yaml:6:37: server name 'Example.com' appears twice on 127.0.0.1:8080: the server at line 2 already uses it (line 3); a name may be used once per listen address",
    ]);
  });

  it("the same server name on different ports is fine", () => {
    expect(
      problems(
        "servers:",
        "  - { listen: 8080, server_names: [a.com], default: true, routes: [{ path: /, return: { status: 200 } }] }",
        "  - { listen: 8081, server_names: [a.com], default: true, routes: [{ path: /, return: { status: 200 } }] }",
      ),
    ).toEqual([]);
  });

  it("0.0.0.0:P beside [::]:P (dual-stack: the second cannot be bound)", () => {
    expect(
      problems(
        "servers:",
        "  - { listen: [80, '[::]:80'], routes: [{ path: /, return: { status: 200 } }] }",
        "  - { listen: '[::]:81', routes: [{ path: /, return: { status: 200 } }] }",
      ),
    ).toEqual([
      `t.yaml:2:16: 0.0.0.0:80 cannot be listened on beside [::]:80 (line 2): [::]:80 already accepts IPv4 connections too (dual-stack); keep only "[::]:80"`,
    ]);
  });

  it("two default servers on one listen address", () => {
    expect(
      problems(
        "servers:",
        "  - { listen: 8080, default: true, routes: [{ path: /, return: { status: 200 } }] }",
        "  - { listen: '0.0.0.0:8080', default: true, routes: [{ path: /, return: { status: 200 } }] }",
      ),
    ).toEqual([
      "t.yaml:3:40: two default servers on 0.0.0.0:8080: the server at line 2 is already the default; only one server per listen address may have 'default: true'",
    ]);
  });

  it("invalid regex: points at the value and includes the RegExp error", () => {
    const source = "^/img/(.*\\.png$";
    let jsError = "";
    try {
      new RegExp(source);
    } catch (error) {
      jsError = (error as Error).message;
    }
    expect(jsError).toContain("Unterminated group");
    expect(
      problems(
        "servers:",
        "  - listen: 8080",
        "    routes:",
        '      - regex: "^/img/(.*\\\\.png$"',
        "        return: { status: 404 }",
      ),
    ).toEqual([`t.yaml:4:16: invalid regex '^/img/(.*\\.png$': ${jsError}`]);
  });

  it("weight 0, negative, or not an integer", () => {
    expect(
      problems(
        "upstreams:",
        "  api:",
        "    servers:",
        "      - { address: 10.0.0.1:80, weight: 0 }",
        "      - { address: 10.0.0.2:80, weight: -2 }",
        "      - address: 10.0.0.3:80",
        "        weight: 1.5",
        "servers: [{ listen: 80, routes: [{ path: /, upstream: api }] }]",
      ),
    ).toEqual([
      "t.yaml:4:41: weight must be an integer >= 1 (got 0)",
      "t.yaml:5:41: weight must be an integer >= 1 (got -2)",
      "t.yaml:7:17: weight must be an integer >= 1 (got 1.5)",
    ]);
  });

  it("zero or two matchers and actions; strip_prefix and ignore_case out of place", () => {
    expect(
      problems(
        ...API_UPSTREAM,
        "servers:",
        "  - listen: 8080",
        "    routes:",
        "      - exact: /a",
        "        path: /a",
        "        upstream: api",
        "        return: { status: 200 }",
        "      - strip_prefix: true",
        "        ignore_case: true",
      ),
    ).toEqual([
      "t.yaml:9:9: route has more than one matcher ('exact', 'path'): keep exactly one and write a separate route for the other",
      "t.yaml:11:9: route has more than one action ('upstream', 'return'): keep exactly one and write a separate route for the other",
      "t.yaml:12:9: route has no matcher: add one of 'exact: /path', 'path: /prefix' or 'regex: ^/pattern'",
      "t.yaml:12:9: route has no action: add one of 'upstream: NAME', 'return: {status: ...}' or 'redirect: {to: ...}'",
      "t.yaml:12:9: strip_prefix only works on a route with both 'path: /prefix' and 'upstream: NAME'; remove it",
      "t.yaml:13:9: ignore_case only applies to 'regex' routes; remove it, or match with 'regex'",
    ]);
  });

  it("bad durations, sizes, listen and upstream addresses, status codes, levels", () => {
    expect(
      problems(
        "workers: 0",
        "timeouts: { connect: 5, shutdown: 5 sec }",
        "log: { level: debgu }",
        "upstreams:",
        "  api: { servers: [{ address: api.internal }] }",
        "servers:",
        "  - listen: [localhost:8080, 70000]",
        "    max_request_body: 10x",
        "    routes:",
        "      - exact: healthz",
        "        return: { status: 700 }",
        "      - path: /r",
        "        redirect: { to: /x, status: 200 }",
      ),
    ).toEqual([
      "t.yaml:1:10: workers must be an integer >= 1 or 'auto' (got 0)",
      "t.yaml:2:22: connect: duration '5' has no unit; add one, e.g. '5s' for seconds or '5ms' for milliseconds (units: ms, s, m, h, d)",
      "t.yaml:2:35: shutdown: invalid duration '5 sec': write a number followed by a unit (ms, s, m, h, d), e.g. 500ms, 5s, 1.5m, 1h",
      "t.yaml:3:15: level must be one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace' (got 'debgu'); did you mean 'debug'?",
      "t.yaml:5:31: invalid address 'api.internal': write host:port, e.g. 10.0.0.5:8080, api.internal:8080 or [::1]:8080",
      "t.yaml:7:14: invalid listen address 'localhost:8080': 'localhost' is a host name, but Portico binds IP addresses; use e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080",
      "t.yaml:7:30: invalid listen address '70000': port must be 0-65535",
      "t.yaml:8:23: max_request_body: invalid size '10x': write bytes, or a number followed by k, m or g (also kb, mb, gb), e.g. 512k, 10m, 1g",
      "t.yaml:10:16: path 'healthz' must start with '/', e.g. '/healthz'",
      "t.yaml:11:27: status must be an integer between 100 and 599 (got 700)",
      "t.yaml:13:37: status must be one of 301, 302, 303, 307, 308 (got 200)",
    ]);
  });

  it("limits, client timeouts and trusted_proxies", () => {
    expect(
      problems(
        "limits: { max_url: 8, max_header_size: 100, max_headers: 0, max_connectoins: 5 }",
        "timeouts: { client_header: 10 }",
        "trusted_proxies: [10.0.0.0/33, 10.0.0.300, 0.0.0.0/0]",
        "servers:",
        "  - listen: 8080",
        "    max_header_size: 512",
        "    routes: [{ path: /, return: { status: 200 } }]",
      ),
    ).toEqual([
      "t.yaml:1:20: max_url of 8 bytes is too small: use at least 16 bytes (default 8k)",
      "t.yaml:1:40: max_header_size of 100 bytes is too small: use at least 1024 bytes (default 32k)",
      "t.yaml:1:58: max_headers must be an integer between 1 and 10000 (got 0)",
      "t.yaml:1:61: unknown key 'max_connectoins'; did you mean 'max_connections'?",
      "t.yaml:2:28: client_header: duration '10' has no unit; add one, e.g. '10s' for seconds or '10ms' for milliseconds (units: ms, s, m, h, d)",
      "t.yaml:3:19: invalid address or CIDR range '10.0.0.0/33': write an IP address (10.0.0.1) or a range (10.0.0.0/8, fd00::/8); the prefix length must be 0-32",
      "t.yaml:3:32: invalid address or CIDR range '10.0.0.300': write an IP address (10.0.0.1) or a range (10.0.0.0/8, fd00::/8)",
      "t.yaml:3:44: warning: trusted_proxies '0.0.0.0/0' trusts every address: any client can then set its own address with X-Forwarded-For; list only your load balancers",
      "t.yaml:6:22: max_header_size of 512 bytes is too small: use at least 1024 bytes (default 32k)",
    ]);
  });

  it("invalid server names, header names and redirect variables", () => {
    expect(
      problems(
        "servers:",
        "  - listen: 8080",
        "    server_names: [ok.example, 'foo..bar', '*']",
        "    routes:",
        "      - path: /",
        "        redirect: { to: 'https://$hots$request_uri' }",
        "        response_headers: { set: { 'X Bad': v, X-Num: 5 }, remove: ['a:b'] }",
      ),
    ).toEqual([
      "t.yaml:3:32: invalid server name 'foo..bar': use an exact host name (example.com), a wildcard '*.example.com', or an IP address",
      "t.yaml:3:44: invalid server name '*': use an exact host name (example.com), a wildcard '*.example.com', or an IP address",
      "t.yaml:6:25: unknown variable '$hots' in redirect target; did you mean 'host'?",
      "t.yaml:7:36: invalid header name 'X Bad': use letters, digits and - (e.g. X-Forwarded-Proto), no spaces or colons",
      "t.yaml:7:55: header 'X-Num' must be a string (got 5); put the value in quotes",
      "t.yaml:7:69: invalid header name 'a:b': use letters, digits and - (e.g. X-Forwarded-Proto), no spaces or colons",
    ]);
  });

  it("missing required keys and wrong types", () => {
    expect(problems("workers: 2")).toEqual([
      "t.yaml:1:1: missing required key 'servers': the config needs a list of at least one server",
    ]);
    expect(problems("servers:", "  - server_names: [a.com]", "    routes: 5", "    default: yes")).toEqual([
      "t.yaml:2:5: server is missing required key 'listen'",
      "t.yaml:3:13: routes must be a list (got 5)",
      "t.yaml:4:14: default must be true or false (got 'yes')",
    ]);
  });
});

/** The `valid forms` tail of every nameserver message. */
const NAMESERVER_FORMS =
  "valid forms are udp://IP[:port], tcp://IP[:port], tls://host[:port][?servername=NAME], https://host[:port][/path], or a bare IP (udp, port 53)";

const SERVE_API = "servers: [{ listen: 80, routes: [{ path: /, upstream: api }] }]";

describe("upstream servers: address or service", () => {
  it("neither or both of address and service", () => {
    expect(
      problems(
        "upstreams:",
        "  api:",
        "    servers:",
        "      - weight: 2",
        "      - { address: api.internal:80, service: _http._tcp.api.internal }",
        "      - {}",
        SERVE_API,
      ),
    ).toEqual([
      "t.yaml:4:9: upstream server needs exactly one of 'address: host:port' or 'service: _http._tcp.name'",
      "t.yaml:5:37: upstream server needs exactly one of 'address: host:port' or 'service: _http._tcp.name', not both: write them as two servers",
      "t.yaml:6:9: upstream server needs exactly one of 'address: host:port' or 'service: _http._tcp.name'",
    ]);
  });

  it("a weight on a service, even the default one written out", () => {
    expect(
      problems(
        "upstreams:",
        "  api:",
        "    servers:",
        "      - service: _http._tcp.api.internal",
        "        weight: 1",
        "      - { service: _http._tcp.web.internal }",
        SERVE_API,
      ),
    ).toEqual([
      "t.yaml:5:9: weight does not apply to a 'service' server: SRV records carry their own weights; remove it",
    ]);
  });

  it("a service that is not an SRV name _service._proto.name", () => {
    const tail = "write an SRV name _service._proto.name, e.g. _http._tcp.api.internal";
    expect(
      problems(
        "upstreams:",
        "  api:",
        "    servers:",
        "      - service: http._tcp.api.internal",
        "      - service: _http._sctp.api.internal",
        "      - service: _http._tcp",
        "      - service: _http._tcp.api..internal",
        "      - service: _-http._tcp.api.internal",
        SERVE_API,
      ),
    ).toEqual([
      `t.yaml:4:18: invalid service 'http._tcp.api.internal': 'http' is not a service label (an underscore, then letters, digits and '-'); ${tail}`,
      `t.yaml:5:18: invalid service '_http._sctp.api.internal': the protocol label must be _tcp or _udp (got '_sctp'); ${tail}`,
      `t.yaml:6:18: invalid service '_http._tcp': the domain name is missing; ${tail}`,
      `t.yaml:7:18: invalid service '_http._tcp.api..internal': 'api..internal' is not a valid domain name; ${tail}`,
      `t.yaml:8:18: invalid service '_-http._tcp.api.internal': '_-http' is not a service label (an underscore, then letters, digits and '-'); ${tail}`,
    ]);
  });

  it("an address whose host looks like a mistyped IP", () => {
    expect(problems("upstreams:", "  api:", "    servers: [{ address: 10.0.0.256:80 }]", SERVE_API)).toEqual([
      "t.yaml:3:26: invalid address '10.0.0.256:80': '10.0.0.256' is not a valid IP address, and a host name cannot end in a numeric label",
    ]);
  });

  it("unknown and misspelled keys in a server and in the upstream's dns overrides", () => {
    expect(
      problems(
        "upstreams:",
        "  api:",
        "    dns: { family: ipv5, remove_afer: 10s }",
        "    servers: [{ adress: api.internal:80 }, { service: _http._tcp.x.internal, wieght: 2 }]",
        SERVE_API,
      ),
    ).toEqual([
      "t.yaml:3:20: family must be one of 'ipv4', 'ipv6', 'any', 'prefer_ipv4', 'prefer_ipv6' (got 'ipv5'); did you mean 'ipv4'?",
      "t.yaml:3:26: unknown key 'remove_afer'; did you mean 'remove_after'?",
      "t.yaml:4:15: upstream server needs exactly one of 'address: host:port' or 'service: _http._tcp.name'",
      "t.yaml:4:17: unknown key 'adress'; did you mean 'address'?",
      "t.yaml:4:78: unknown key 'wieght'; did you mean 'weight'?",
    ]);
  });
});

describe("the dns section", () => {
  it("nameservers that are not one of the valid forms", () => {
    expect(
      problems(
        "dns:",
        "  nameservers:",
        "    - udp://dns.example",
        "    - tcp://dns.example:53",
        "    - dns.example",
        "    - 10.0.0.53:53",
        "    - ftp://10.0.0.53",
        "    - udp://10.0.0.53:70000",
        "    - udp://10.0.0.53/dns-query",
        "    - tls://dns.example?sni=dns.example",
        "    - udp://10.0.0.53?servername=dns.example",
        "    - tls://",
        "    - 'https://user:secret@dns.example/dns-query'",
        "    - 'not a nameserver'",
        "servers: [{ listen: 80, routes: [{ path: /, return: { status: 200 } }] }]",
      ),
    ).toEqual([
      `t.yaml:3:7: invalid nameserver 'udp://dns.example': udp:// needs an IP address, not a name ('dns.example'): a name would need DNS to find DNS; use tls:// or https:// for a named nameserver; ${NAMESERVER_FORMS}`,
      `t.yaml:4:7: invalid nameserver 'tcp://dns.example:53': tcp:// needs an IP address, not a name ('dns.example'): a name would need DNS to find DNS; use tls:// or https:// for a named nameserver; ${NAMESERVER_FORMS}`,
      `t.yaml:5:7: invalid nameserver 'dns.example': a bare name is not a nameserver: give its IP address, or write tls://dns.example or https://dns.example/dns-query; ${NAMESERVER_FORMS}`,
      `t.yaml:6:7: invalid nameserver '10.0.0.53:53': a bare IP address takes no port: write udp://10.0.0.53:53; ${NAMESERVER_FORMS}`,
      `t.yaml:7:7: invalid nameserver 'ftp://10.0.0.53': unknown scheme 'ftp://'; ${NAMESERVER_FORMS}`,
      `t.yaml:8:7: invalid nameserver 'udp://10.0.0.53:70000': port 70000 is out of range: use 1-65535; ${NAMESERVER_FORMS}`,
      `t.yaml:9:7: invalid nameserver 'udp://10.0.0.53/dns-query': a path ('/dns-query') is only allowed with https://; ${NAMESERVER_FORMS}`,
      `t.yaml:10:7: invalid nameserver 'tls://dns.example?sni=dns.example': unknown parameter 'sni': only ?servername=NAME is understood; ${NAMESERVER_FORMS}`,
      `t.yaml:11:7: invalid nameserver 'udp://10.0.0.53?servername=dns.example': ?servername= only applies to tls:// and https://; ${NAMESERVER_FORMS}`,
      `t.yaml:12:7: invalid nameserver 'tls://': the host is missing; ${NAMESERVER_FORMS}`,
      `t.yaml:13:7: invalid nameserver 'https://user:secret@dns.example/dns-query': a user name or password is not allowed; ${NAMESERVER_FORMS}`,
      `t.yaml:14:7: invalid nameserver 'not a nameserver': it is neither a URL nor an IP address; ${NAMESERVER_FORMS}`,
    ]);
  });

  it("accepts every valid nameserver form", () => {
    expect(
      problems(
        "dns:",
        "  nameservers:",
        "    - 10.0.0.53",
        "    - '2001:db8::53'",
        "    - udp://10.0.0.53:5353",
        "    - 'tcp://[2001:db8::53]:53'",
        "    - tls://dns.example",
        "    - tls://10.0.0.53:853?servername=dns.example",
        "    - https://dns.example/dns-query",
        "    - https://dns.example:8443",
        "servers: [{ listen: 80, routes: [{ path: /, return: { status: 200 } }] }]",
      ),
    ).toEqual([]);
  });

  it("max_ttl shorter than min_ttl, at the key written; zero min_ttl and timeout; attempts out of range", () => {
    const serve = "servers: [{ listen: 80, routes: [{ path: /, return: { status: 200 } }] }]";
    expect(problems("dns:", "  min_ttl: 10m", "  max_ttl: 5m", serve)).toEqual([
      "t.yaml:3:12: max_ttl (5m) is shorter than min_ttl (10m): max_ttl must be at least min_ttl",
    ]);
    expect(problems("dns: { min_ttl: 2h }", serve)).toEqual([
      "t.yaml:1:17: max_ttl (1h, the default) is shorter than min_ttl (2h): max_ttl must be at least min_ttl",
    ]);
    expect(problems("dns: { min_ttl: 0s, timeout: 0ms, attempts: 6, stale_max: 1 }", serve)).toEqual([
      "t.yaml:1:17: min_ttl must be longer than 0: it is also the shortest interval between two refreshes of a name (e.g. 1s)",
      "t.yaml:1:30: timeout must be longer than 0, e.g. 2s",
      "t.yaml:1:45: attempts must be an integer between 1 and 5 (got 6)",
      "t.yaml:1:59: stale_max: duration '1' has no unit; add one, e.g. '1s' for seconds or '1ms' for milliseconds (units: ms, s, m, h, d)",
    ]);
    expect(problems("dns: { retry_max: 200ms }", serve)).toEqual([
      "t.yaml:1:19: retry_max must be at least 1s: it bounds the wait between two tries of a failing name, and shorter would hammer a nameserver that is down (got 200ms)",
    ]);
  });

  it("an unknown key in dns gets the nearest valid key", () => {
    expect(
      problems(
        "dns: { nameserver: [10.0.0.53] }",
        "servers: [{ listen: 80, routes: [{ path: /, return: { status: 200 } }] }]",
      ),
    ).toEqual(["t.yaml:1:8: unknown key 'nameserver'; did you mean 'nameservers'?"]);
  });

  describe("TLS files", () => {
    let dir = "";
    const serve = "servers: [{ listen: 80, routes: [{ path: /, return: { status: 200 } }] }]";
    /** Checks the lines as the file `dir/conf/p.yaml` and returns the issues. */
    const problemsIn = (...lines: string[]) =>
      parseConfig([...lines, serve].join("\n"), join(dir, "conf", "p.yaml")).issues.map((i) =>
        formatIssue({ ...i, file: "p.yaml" }),
      );

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "portico-config-"));
      mkdirSync(join(dir, "conf", "certs"), { recursive: true });
      const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
      writeFileSync(join(dir, "conf", "certs", "ca.pem"), pem);
      writeFileSync(join(dir, "conf", "certs", "client.pem"), pem);
      writeFileSync(join(dir, "conf", "certs", "client.der"), Buffer.from([0x30, 0x82, 0x01, 0x0a]));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("cert without key and key without cert", () => {
      expect(problemsIn("dns:", "  nameservers: [tls://dns.example]", "  cert: certs/client.pem")).toEqual([
        "p.yaml:3:3: cert needs key: a client certificate goes with its private key; add 'key: PATH'",
      ]);
      expect(problemsIn("dns:", "  nameservers: [tls://dns.example]", "  key: certs/client.pem")).toEqual([
        "p.yaml:3:3: key needs cert: a private key goes with its client certificate; add 'cert: PATH'",
      ]);
    });

    it("a file that cannot be read, or is not PEM, names the path tried (from the config file's folder)", () => {
      expect(
        problemsIn(
          "dns:",
          "  nameservers: [https://dns.example/dns-query]",
          "  ca: certs/missing.pem",
          "  cert: certs/client.der",
          `  key: ${join(dir, "conf", "certs")}`,
        ),
      ).toEqual([
        `p.yaml:3:7: cannot read ca file '${join(dir, "conf", "certs", "missing.pem")}': no such file or directory`,
        `p.yaml:4:9: cert file '${join(dir, "conf", "certs", "client.der")}' is not PEM: it has no '-----BEGIN ...' line`,
        `p.yaml:5:8: key file '${join(dir, "conf", "certs")}' is not a regular file`,
      ]);
    });

    it.skipIf(process.getuid?.() === 0)("a file without read permission", () => {
      const locked = join(dir, "conf", "certs", "locked.pem");
      writeFileSync(locked, "-----BEGIN CERTIFICATE-----\n");
      chmodSync(locked, 0o000);
      expect(problemsIn("dns:", "  nameservers: [tls://dns.example]", "  ca: certs/locked.pem")).toEqual([
        `p.yaml:3:7: cannot read ca file '${locked}': permission denied`,
      ]);
    });

    it("TLS files without a tls:// or https:// nameserver are a warning", () => {
      const result = parseConfig(
        ["dns:", "  ca: certs/ca.pem", serve].join("\n"),
        join(dir, "conf", "p.yaml"),
      );
      expect(result.config?.dns.ca).toBe(join(dir, "conf", "certs", "ca.pem"));
      expect(result.issues.map((i) => formatIssue({ ...i, file: "p.yaml" }))).toEqual([
        "p.yaml:2:3: warning: ca has no effect: it is only used by tls:// and https:// nameservers, and without 'nameservers' the plain nameservers of /etc/resolv.conf are used",
      ]);
      expect(problemsIn("dns:", "  nameservers: [10.0.0.53]", "  ca: certs/ca.pem")).toEqual([
        "p.yaml:3:3: warning: ca has no effect: it is only used by tls:// and https:// nameservers, and 'nameservers' lists none",
      ]);
    });
  });
});

describe("YAML problems", () => {
  it("a syntax error has a position", () => {
    const result = parseConfig("servers:\n  - listen: 8080\n\troutes: []\n", "t.yaml");
    expect(result.config).toBeUndefined();
    expect(result.issues.map(formatIssue)).toEqual([
      "t.yaml:3:1: YAML syntax: tabs are not allowed as indentation",
    ]);
  });

  it("an unterminated flow list is reported where the parser gave up", () => {
    const [issue] = parseConfig("servers: [\n  1, 2\n", "t.yaml").issues;
    expect(issue).toMatchObject({ file: "t.yaml", line: 3, col: 1, severity: "error" });
    expect(issue?.message).toMatch(/^YAML syntax: /);
  });

  it("a duplicate key is an error at the second occurrence, and checking goes on", () => {
    expect(problems("workers: 2", "workers: 3", "servers: x")).toEqual([
      "t.yaml:2:1: duplicate key 'workers' (first at line 1); a key may appear only once in a mapping",
      "t.yaml:3:10: servers must be a list (got 'x')",
    ]);
  });

  it("a second YAML document is refused", () => {
    expect(problems("servers: []", "---", "workers: 2")).toEqual([
      "t.yaml:2:1: YAML syntax: the file holds more than one YAML document ('---'); a config is a single document",
    ]);
  });

  it("an unknown tag is a warning, reported beside the errors", () => {
    const result = parseConfig("workers: !num 2\nservers: []", "t.yaml");
    expect(result.issues.map(formatIssue)).toEqual([
      "t.yaml:1:10: warning: YAML syntax: unresolved tag: !num",
      "t.yaml:1:15: workers must be an integer >= 1 or 'auto' (got '2')",
      "t.yaml:2:10: servers must not be an empty list: write at least 1 entry",
    ]);
  });

  it("an empty file is one issue for the whole file", () => {
    expect(problems("# nothing but a comment")).toEqual([
      "t.yaml: the config file is empty: it needs at least a 'servers' list",
    ]);
  });
});
