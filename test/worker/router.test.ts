import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { HostRouter, normalizeHost, parseTarget } from "../../src/worker/router.js";

function router(yaml: string): HostRouter {
  const { config, issues } = parseConfig(yaml, "test.yaml");
  if (!config) throw new Error(issues.map((i) => i.message).join("\n"));
  return new HostRouter(config.servers);
}

const SERVERS = `
servers:
  - listen: 127.0.0.1:8080
    server_names: [example.com]
    routes:
      - exact: /exact
        return: { status: 200, body: exact }
      - path: /static/
        return: { status: 200, body: static-prefix }
      - path: /static/img/
        return: { status: 200, body: longer-prefix }
      - regex: "\\\\.php$"
        return: { status: 200, body: regex }
      - path: /
        return: { status: 200, body: root }
  - listen: 127.0.0.1:8080
    server_names: ["*.example.com"]
    routes: [{ path: /, return: { status: 200, body: wildcard } }]
  - listen: 127.0.0.1:8080
    server_names: ["*.eu.example.com"]
    routes: [{ path: /, return: { status: 200, body: eu-wildcard } }]
  - listen: 127.0.0.1:8080
    server_names: [fallback.test]
    default: true
    routes: [{ path: /, return: { status: 200, body: default } }]
`;

function body(r: HostRouter, host: string | undefined, path: string): string | undefined {
  const action = r.serverFor(host).match(path)?.route.action;
  return action?.kind === "return" ? action.body : undefined;
}

describe("host routing", () => {
  const r = router(SERVERS);
  it("prefers an exact name, then the longest wildcard, then the default server", () => {
    expect(body(r, "example.com", "/x")).toBe("root");
    expect(body(r, "EXAMPLE.com:8080", "/x")).toBe("root");
    expect(body(r, "example.com.", "/x")).toBe("root");
    expect(body(r, "shop.example.com", "/x")).toBe("wildcard");
    expect(body(r, "a.eu.example.com", "/x")).toBe("eu-wildcard");
    expect(body(r, "other.test", "/x")).toBe("default");
    expect(body(r, undefined, "/x")).toBe("default");
  });

  it("falls back to the first server when none is marked default", () => {
    const first = router(`
servers:
  - { listen: 127.0.0.1:8080, server_names: [a.test], routes: [{ path: /, return: { status: 200, body: a } }] }
  - { listen: 127.0.0.1:8080, server_names: [b.test], routes: [{ path: /, return: { status: 200, body: b } }] }
`);
    expect(body(first, "zzz.test", "/")).toBe("a");
  });
});

describe("path routing", () => {
  const r = router(SERVERS);
  it("matches exact, then regex, then the longest prefix", () => {
    expect(body(r, "example.com", "/exact")).toBe("exact");
    expect(body(r, "example.com", "/exact/more")).toBe("root");
    expect(body(r, "example.com", "/static/index.php")).toBe("regex");
    expect(body(r, "example.com", "/static/img/logo.png")).toBe("longer-prefix");
    expect(body(r, "example.com", "/static/app.js")).toBe("static-prefix");
    expect(body(r, "example.com", "/")).toBe("root");
  });
});

describe("request targets", () => {
  const path = (t: string) => {
    const parsed = parseTarget(t);
    return typeof parsed === "string" ? `refused: ${parsed}` : parsed.path;
  };

  it("splits the query and keeps the target as received", () => {
    expect(parseTarget("/a/../b?x=/../1")).toEqual({
      path: "/b",
      query: "?x=/../1",
      origin: "/a/../b?x=/../1",
      authority: undefined,
    });
  });

  it("decodes, removes dot segments and merges slashes, as nginx's $uri", () => {
    expect(path("/a/b")).toBe("/a/b");
    expect(path("/a/../b")).toBe("/b");
    expect(path("/a/%2e%2e/b")).toBe("/b");
    expect(path("/a/%2E./b")).toBe("/b");
    expect(path("//a//b")).toBe("/a/b");
    expect(path("/%61dmin")).toBe("/admin");
    expect(path("/x%2F..%2Fadmin")).toBe("/admin");
    expect(path("/a/./b/.")).toBe("/a/b/");
    expect(path("/a/b/..")).toBe("/a/");
    expect(path("/caf%C3%A9")).toBe("/café");
  });

  it("refuses targets that climb above the root or are malformed", () => {
    expect(path("/../etc/passwd")).toMatch(/^refused: .*climbs above the root/);
    expect(path("/a/%2e%2e/%2e%2e/b")).toMatch(/climbs above the root/);
    expect(path("/a%zz")).toMatch(/malformed percent-encoding/);
    expect(path("/a%00b")).toMatch(/NUL/);
    expect(path("*")).toMatch(/not a path or an http\(s\) URL/);
    expect(path("http://user@a.test/")).toMatch(/user information/);
  });

  it("takes the authority of an absolute-form target", () => {
    expect(parseTarget("http://A.test:8080/x/../y?q")).toEqual({
      path: "/y",
      query: "?q",
      origin: "/x/../y?q",
      authority: "A.test:8080",
    });
    expect(parseTarget("https://a.test")).toMatchObject({ path: "/", origin: "/", authority: "a.test" });
    expect(parseTarget("http://a.test?q")).toMatchObject({ path: "/", query: "?q", origin: "/?q" });
  });

  it("normalizes Host values", () => {
    expect(normalizeHost("Example.COM:80")).toBe("example.com");
    expect(normalizeHost("[::1]:8080")).toBe("[::1]");
  });
});
