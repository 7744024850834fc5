// UpstreamGroup: peer tables applied as diffs, SRV priority tiers, passive health. Pools are
// real undici Pools that never connect here (no request is sent).
import { afterEach, describe, expect, it } from "vitest";
import type { Timeouts, Upstream } from "../../src/config/types.js";
import type { PeerTable } from "../../src/upstream/peer-table.js";
import { UpstreamGroup } from "../../src/upstream/upstream-group.js";

const timeouts: Timeouts = {
  connect: 1000,
  upstreamHeader: 1000,
  upstreamBody: 1000,
  clientKeepalive: 1000,
  upstreamKeepalive: 1000,
  shutdown: 1000,
  drainGrace: 1000,
  workerStart: 1000,
  tunnelIdle: 3_600_000,
  clientHeader: 10_000,
  clientBody: 60_000,
};
const position = { file: "t.yaml", line: 1, col: 1 };

function upstream(servers: Upstream["servers"]): Upstream {
  return {
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
    servers,
    maxConnectionsPerPeer: 4,
    dns: { family: "ipv4", removeAfter: 1000 },
  };
}

function table(version: number, names: PeerTable["names"], services: PeerTable["services"] = {}): PeerTable {
  return { version, names, services };
}

const groups: UpstreamGroup[] = [];
afterEach(async () => {
  await Promise.all(groups.splice(0).map((g) => g.close()));
});

function group(u: Upstream, t: PeerTable): UpstreamGroup {
  const g = new UpstreamGroup(u, timeouts, t);
  groups.push(g);
  return g;
}

describe("UpstreamGroup", () => {
  it("applies a new table as a diff and keeps the peers that stay", () => {
    const u = upstream([
      {
        kind: "address",
        host: "api.test",
        port: 8080,
        fixed: false,
        weight: 2,
        text: "api.test:8080",
        position,
      },
      { kind: "address", host: "10.0.0.9", port: 80, fixed: true, weight: 1, text: "10.0.0.9:80", position },
    ]);
    const g = group(u, table(1, { "ipv4 api.test": { addresses: ["10.0.0.1", "10.0.0.2"], ttl: 30 } }));
    expect(g.peers.map((p) => `${p.address}/${p.weight}`).sort()).toEqual([
      "10.0.0.1:8080/2",
      "10.0.0.2:8080/2",
      "10.0.0.9:80/1",
    ]);
    const kept = g.peers.find((p) => p.address === "10.0.0.2:8080");
    const change = g.apply(table(2, { "ipv4 api.test": { addresses: ["10.0.0.2", "10.0.0.3"], ttl: 30 } }));
    expect(change).toEqual({ added: ["10.0.0.3:8080"], removed: ["10.0.0.1:8080"] });
    expect(g.peers.find((p) => p.address === "10.0.0.2:8080")).toBe(kept);
  });

  it("says why it has no peer", () => {
    const u = upstream([
      {
        kind: "address",
        host: "gone.test",
        port: 80,
        fixed: false,
        weight: 1,
        text: "gone.test:80",
        position,
      },
    ]);
    const g = group(
      u,
      table(1, { "ipv4 gone.test": { addresses: [], ttl: 0, reason: "gone.test: NXDOMAIN (A)" } }),
    );
    expect(g.pick()).toBeUndefined();
    expect(g.missing).toEqual(["gone.test:80: gone.test: NXDOMAIN (A)"]);
  });

  it("sends traffic to the lowest SRV priority with an available peer, and fails over", () => {
    const u = upstream([
      { kind: "service", service: "_http._tcp.api.test", text: "_http._tcp.api.test", position },
    ]);
    const srv = (priority: number, port: number) => ({
      address: "10.0.0.1",
      port,
      weight: 1,
      priority,
      target: "t.test",
    });
    const g = group(
      u,
      table(
        1,
        {},
        { "ipv4 _http._tcp.api.test": { peers: [srv(20, 2001), srv(10, 1001), srv(10, 1002)], ttl: 30 } },
      ),
    );
    const picks = () => new Set(Array.from({ length: 6 }, () => g.pick()?.address));
    expect(picks()).toEqual(new Set(["10.0.0.1:1001", "10.0.0.1:1002"]));
    for (const p of g.peers) if (p.priority === 10) p.markFailed(60_000);
    expect(picks()).toEqual(new Set(["10.0.0.1:2001"]));
    // Everything down: try anyway rather than refuse (nginx), skipping what this request tried.
    for (const p of g.peers) p.markFailed(60_000);
    const first = g.pick();
    expect(first).toBeDefined();
    const tried = new Set(first ? [first] : []);
    const second = g.pick(tried);
    expect(second).toBeDefined();
    expect(second).not.toBe(first);
    expect(g.pick(new Set(g.peers))).toBeUndefined();
  });
});
