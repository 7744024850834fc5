/**
 * `rate_limit` in the config: the rate, key and store parsers, and what `portico check`
 * says (position and hint) about each bad value.
 */
import { describe, expect, it } from "vitest";
import { formatIssue, parseConfig } from "../../src/config/load.js";
import { parseRate, parseRateKey, parseStore } from "../../src/ratelimit/syntax.js";

const value = <T>(parsed: { ok: true; value: T } | { ok: false; error: string }): T => {
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
};
const error = (parsed: { ok: boolean; error?: string }): string => {
  if (parsed.ok) throw new Error("parsed, but should not have");
  return parsed.error as string;
};

describe("rate", () => {
  it("is per second or per minute, nginx's r/s and r/m too", () => {
    expect(value(parseRate("100/s"))).toBe(100);
    expect(value(parseRate("30/m"))).toBe(0.5);
    expect(value(parseRate("100r/s"))).toBe(100);
    expect(value(parseRate(" 6 r / m "))).toBe(0.1);
    expect(value(parseRate("0.5/s"))).toBe(0.5);
    expect(value(parseRate("10/min"))).toBeCloseTo(1 / 6);
  });

  it("refuses a bare number, another unit and zero, saying what to write", () => {
    expect(error(parseRate(100))).toBe(
      "rate '100' has no unit: write '100/s' for requests per second or '100/m' per minute",
    );
    expect(error(parseRate("100/h"))).toContain("(100/h is 1.6667/m)");
    expect(error(parseRate("fast"))).toContain("e.g. 100/s or 30/m");
    expect(error(parseRate("0/s"))).toContain("'return: { status: 429 }'");
  });
});

describe("key", () => {
  it("is client_ip or header:NAME (lower-cased)", () => {
    expect(value(parseRateKey("client_ip"))).toEqual({ kind: "client_ip" });
    expect(value(parseRateKey("header:X-Api-Key"))).toEqual({ kind: "header", name: "x-api-key" });
  });

  it("refuses anything else with the forms, and a near miss with its fix", () => {
    expect(error(parseRateKey("client-ip"))).toContain("did you mean 'client_ip'?");
    expect(error(parseRateKey("ip"))).toContain("did you mean 'client_ip'?");
    expect(error(parseRateKey("header:"))).toContain("is not a header name");
    expect(error(parseRateKey("header:a b"))).toContain("is not a header name");
    expect(error(parseRateKey("cookie:sid"))).toContain(
      "cookies, the URI and query arguments cannot be keys",
    );
  });
});

describe("store", () => {
  it("is local, redis://[user:password@]host[:port][/db] or unix:///path[?db=N]", () => {
    expect(value(parseStore("local"))).toEqual({ kind: "local" });
    expect(value(parseStore("redis://cache.internal:6380/2"))).toEqual({
      kind: "redis",
      redis: {
        url: "redis://cache.internal:6380",
        socketPath: undefined,
        database: 2,
        username: undefined,
        password: undefined,
        display: "redis://cache.internal:6380/2",
      },
    });
    const withAuth = value(parseStore("redis://portico:s%40cret@10.0.0.7"));
    expect(withAuth.kind === "redis" && withAuth.redis).toMatchObject({
      url: "redis://10.0.0.7",
      database: 0,
      username: "portico",
      password: "s@cret",
      display: "redis://portico:***@10.0.0.7/0",
    });
    expect(value(parseStore("unix:///run/redis/redis.sock?db=3&password=pw"))).toEqual({
      kind: "redis",
      redis: {
        url: undefined,
        socketPath: "/run/redis/redis.sock",
        database: 3,
        username: undefined,
        password: "pw",
        display: "unix:///run/redis/redis.sock?db=3",
      },
    });
  });

  it("refuses what cannot reach a Redis, saying why and the forms", () => {
    const cases: Array<[string, string]> = [
      ["redis", "it is neither 'local' nor a URL"],
      ["redis://", "the host is missing"],
      ["redis://h:6379/abc", "the database must be a number"],
      ["redis://h:99999", "not a well-formed URL"],
      ["redis://h?db=1", "takes no ?parameters"],
      ["rediss://h", "TLS to Redis (rediss://) is not supported yet"],
      ["memcached://h:11211", "unknown scheme 'memcached://'"],
      ["unix://run/redis.sock", "write three slashes"],
      ["unix:///run/redis.sock?pw=1", "unknown parameter 'pw'"],
      ["unix:///", "the socket path is missing"],
    ];
    for (const [text, why] of cases) {
      const message = error(parseStore(text));
      expect(message, text).toContain(why);
      expect(message, text).toContain("unix:///path/to/redis.sock");
    }
  });
});

describe("portico check", () => {
  const check = (rateLimit: string) =>
    parseConfig(
      `servers:
  - listen: 8080
    routes:
      - path: /
        return: { status: 200 }
        rate_limit: ${rateLimit}
`,
      "portico.yaml",
    );

  it("builds the limit with its defaults: burst 0, key client_ip, store local", () => {
    const { config, issues } = check("{ rate: 100/s }");
    expect(issues).toEqual([]);
    expect(config?.servers[0]?.routes[0]?.rateLimit).toEqual({
      id: "servers[0].routes[0]",
      rate: 100,
      burst: 0,
      key: { kind: "client_ip" },
      store: "local",
    });
  });

  it("positions each bad value at the value, with its hint", () => {
    const { config, issues } = check('{ rate: 100, burst: -1, key: ip, store: "redis://cache:6379/x" }');
    expect(config).toBeUndefined();
    expect(issues.map(formatIssue)).toEqual([
      "portico.yaml:6:29: rate '100' has no unit: write '100/s' for requests per second or '100/m' per minute",
      "portico.yaml:6:41: burst must be an integer >= 0 (got -1)",
      "portico.yaml:6:50: invalid rate_limit key 'ip': write client_ip (each client address, after trusted_proxies) or header:NAME (e.g. header:x-api-key); did you mean 'client_ip'?",
      "portico.yaml:6:61: invalid rate_limit store 'redis://cache:6379/x': the database must be a number, e.g. /0 (got 'x') (a store is local (this instance), redis://[user:password@]host[:port][/db] or unix:///path/to/redis.sock[?db=N])",
    ]);
  });

  it("names a misspelled key and a missing rate", () => {
    const { issues } = check("{ burst: 5, brust: 3 }");
    expect(issues.map((i) => i.message)).toEqual([
      "'rate_limit' is missing required key 'rate'",
      "unknown key 'brust'; did you mean 'burst'?",
    ]);
  });

  it("accepts a Redis store without reaching it (Redis down is a warning at run time)", () => {
    const { config, issues } = check(
      '{ rate: 10/m, key: "header:X-Api-Key", store: "redis://127.0.0.1:1/0" }',
    );
    expect(issues).toEqual([]);
    expect(config?.servers[0]?.routes[0]?.rateLimit?.store).toBe("redis://127.0.0.1:1/0");
  });
});
