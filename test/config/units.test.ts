import { describe, expect, it } from "vitest";
import {
  parseDuration,
  parseListenAddress,
  parseServiceName,
  parseSize,
  parseUpstreamAddress,
} from "../../src/config/units.js";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["5s", 5_000],
    ["1m", 60_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1.5s", 1_500],
    ["0.5m", 30_000],
    ["1m30s", 90_000],
    ["0s", 0],
    ["10S", 10_000],
  ])("parses %s as %d ms", (text, ms) => {
    expect(parseDuration(text)).toEqual({ ok: true, value: ms });
  });

  it("refuses a bare number and tells the operator to add a unit", () => {
    expect(parseDuration(5)).toEqual({
      ok: false,
      error:
        "duration '5' has no unit; add one, e.g. '5s' for seconds or '5ms' for milliseconds (units: ms, s, m, h, d)",
    });
    expect(parseDuration("30").ok).toBe(false);
  });

  it.each(["5 sec", "s", "", "5x", "-1s", "1.s", "5s5"])("refuses %j", (text) => {
    const parsed = parseDuration(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toContain("write a number followed by a unit");
  });
});

describe("parseSize", () => {
  it.each([
    [0, 0],
    [1024, 1024],
    ["1024", 1024],
    ["512k", 512 * 1024],
    ["512KB", 512 * 1024],
    ["10m", 10 * 1024 ** 2],
    ["10Mb", 10 * 1024 ** 2],
    ["1g", 1024 ** 3],
    ["1GB", 1024 ** 3],
    ["1.5k", 1536],
  ])("parses %j as %d bytes", (text, bytes) => {
    expect(parseSize(text)).toEqual({ ok: true, value: bytes });
  });

  it.each(["10x", "k", "1 0m", "-5", 1.5, -1])("refuses %j", (text) => {
    expect(parseSize(text).ok).toBe(false);
  });

  it("explains what a size looks like", () => {
    expect(parseSize("10x")).toEqual({
      ok: false,
      error:
        "invalid size '10x': write bytes, or a number followed by k, m or g (also kb, mb, gb), e.g. 512k, 10m, 1g",
    });
  });
});

describe("parseListenAddress", () => {
  it.each([
    ["127.0.0.1:8080", "127.0.0.1", 8080],
    ["[::1]:8443", "::1", 8443],
    ["8080", "0.0.0.0", 8080],
    [8080, "0.0.0.0", 8080],
    ["127.0.0.1:0", "127.0.0.1", 0],
    [0, "0.0.0.0", 0],
  ])("parses %j", (text, host, port) => {
    expect(parseListenAddress(text)).toEqual({ ok: true, value: { host, port, tls: false, h2c: false } });
  });

  it.each([
    ["127.0.0.1:8443 tls", { host: "127.0.0.1", port: 8443, tls: true, h2c: false }],
    ["[::1]:443  TLS", { host: "::1", port: 443, tls: true, h2c: false }],
    ["8081 h2c", { host: "0.0.0.0", port: 8081, tls: false, h2c: true }],
  ])("parses the flags of %j", (text, value) => {
    expect(parseListenAddress(text)).toEqual({ ok: true, value });
  });

  it("refuses an unknown flag with what an nginx operator meant", () => {
    expect(parseListenAddress("443 ssl")).toEqual({
      ok: false,
      error: "invalid listen address '443 ssl': unknown flag 'ssl': write 'tls' (nginx's 'ssl')",
    });
    expect(parseListenAddress("443 tls h2c")).toEqual({
      ok: false,
      error:
        "invalid listen address '443 tls h2c': 'tls' and 'h2c' exclude each other ('tls' addresses offer HTTP/2 by ALPN already)",
    });
  });

  it("refuses a host name: Portico binds addresses", () => {
    expect(parseListenAddress("localhost:8080")).toEqual({
      ok: false,
      error:
        "invalid listen address 'localhost:8080': 'localhost' is a host name, but Portico binds IP addresses; use e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080",
    });
  });

  it.each(["70000", "1.2.3.4:65536", "[nope]:80", "::1:80", "1.2.3.4", "[127.0.0.1]:80"])(
    "refuses %j",
    (text) => {
      expect(parseListenAddress(text).ok).toBe(false);
    },
  );
});

describe("parseUpstreamAddress", () => {
  it.each([
    ["10.0.0.5:8080", "10.0.0.5", 8080],
    ["api.internal:8080", "api.internal", 8080],
    ["localhost:9001", "localhost", 9001],
    ["[::1]:9001", "::1", 9001],
    ["_http._tcp.api.service.consul:80", "_http._tcp.api.service.consul", 80],
  ])("parses %j", (text, host, port) => {
    expect(parseUpstreamAddress(text)).toEqual({ ok: true, value: { host, port } });
  });

  it("requires a port", () => {
    expect(parseUpstreamAddress("api.internal")).toEqual({
      ok: false,
      error:
        "invalid address 'api.internal': write host:port, e.g. 10.0.0.5:8080, api.internal:8080 or [::1]:8080",
    });
  });

  it.each(["a:0", "a:65536", "bad host:80", "[api]:80", "-x.com:80", "10.0.0.256:80", "1234:80"])(
    "refuses %j",
    (text) => {
      expect(parseUpstreamAddress(text).ok).toBe(false);
    },
  );

  it("refuses a name ending in a numeric label: it is a mistyped IP, not a name that will resolve", () => {
    expect(parseUpstreamAddress("10.0.0.256:80")).toEqual({
      ok: false,
      error:
        "invalid address '10.0.0.256:80': '10.0.0.256' is not a valid IP address, and a host name cannot end in a numeric label",
    });
  });
});

describe("parseServiceName", () => {
  it.each([
    ["_http._tcp.api.internal", "_http._tcp.api.internal"],
    ["_HTTP._TCP.Api.Internal.", "_http._tcp.api.internal"],
    [" _sip._udp.example.com ", "_sip._udp.example.com"],
    ["_http-alt._tcp.my-svc.ns.svc.cluster.local", "_http-alt._tcp.my-svc.ns.svc.cluster.local"],
    ["_web._tcp.service.consul", "_web._tcp.service.consul"],
  ])("parses %j", (text, name) => {
    expect(parseServiceName(text)).toEqual({ ok: true, value: name });
  });

  it.each([
    "",
    "api.internal",
    "_http.api.internal",
    "_http._tcp",
    "_http._tcp.",
    "_http._sctp.api.internal",
    "http._tcp.api.internal",
    "_._tcp.api.internal",
    "_http-._tcp.api.internal",
    "_http._tcp.api..internal",
    "_http._tcp.10.0.0.1",
    `_http._tcp.${"a".repeat(64)}.internal`,
    `_http._tcp.${"a.".repeat(125)}internal`,
  ])("refuses %j", (text) => {
    const parsed = parseServiceName(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toContain("write an SRV name _service._proto.name");
  });
});
