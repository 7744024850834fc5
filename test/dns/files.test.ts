import { describe, expect, it } from "vitest";
import { parseHosts, parseNameserverUrl, parseResolvConf } from "../../src/dns/index.js";

describe("resolv.conf", () => {
  it("reads nameservers, search, ndots, timeout, attempts and rotate", () => {
    const conf = parseResolvConf(
      "# comment\nnameserver 10.0.0.53\nnameserver fd00::53\nnameserver not-an-ip\ndomain corp.test\nsearch Svc.Test. other.test\noptions ndots:2 timeout:3 attempts:4 rotate\n",
    );
    expect(conf).toEqual({
      nameservers: ["udp://10.0.0.53:53", "udp://[fd00::53]:53"],
      search: ["svc.test", "other.test"],
      ndots: 2,
      timeout: 3,
      attempts: 4,
      rotate: true,
    });
  });

  it("has glibc's defaults", () => {
    expect(parseResolvConf("")).toEqual({
      nameservers: [],
      search: [],
      ndots: 1,
      timeout: 5,
      attempts: 2,
      rotate: false,
    });
  });
});

describe("hosts file", () => {
  it("maps names and aliases to both families, ignoring comments", () => {
    const hosts = parseHosts(
      "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# 1.2.3.4 ignored\n10.0.0.1 App.Test app # x\n",
    );
    expect(hosts.get("localhost")).toEqual({ A: ["127.0.0.1"], AAAA: ["::1"] });
    expect(hosts.get("app.test")).toEqual({ A: ["10.0.0.1"], AAAA: [] });
    expect(hosts.get("ignored")).toBeUndefined();
  });
});

describe("nameserver URLs", () => {
  it("parses each transport with its default port", () => {
    expect(parseNameserverUrl("10.0.0.1")).toMatchObject({ kind: "udp", host: "10.0.0.1", port: 53 });
    expect(parseNameserverUrl("tcp://[::1]:5353")).toMatchObject({ kind: "tcp", host: "::1", port: 5353 });
    expect(parseNameserverUrl("tls://dns.example?servername=x.example")).toMatchObject({
      kind: "tls",
      port: 853,
      servername: "x.example",
    });
    expect(parseNameserverUrl("https://dns.example")).toMatchObject({
      kind: "https",
      port: 443,
      path: "/dns-query",
    });
  });

  it("refuses what it cannot use, saying what to write", () => {
    expect(() => parseNameserverUrl("ftp://1.2.3.4")).toThrow(/unknown scheme 'ftp:\/\/'/);
    expect(() => parseNameserverUrl("udp://dns.example")).toThrow(/needs an IP address/);
    expect(() => parseNameserverUrl("nonsense")).toThrow(/a bare name is not a nameserver/);
  });
});
