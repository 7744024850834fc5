/**
 * The peer table: what the master's discovery learned from DNS, as it is pushed to workers
 * (plain JSON, versioned), and the one function both sides use to turn it into an upstream's
 * peers. The master logs the diffs it computes with it; workers apply the same diffs.
 */
import { isIPv6 } from "node:net";
import type { AddressFamily, Upstream, UpstreamServer } from "../config/types.js";

/** The addresses a name resolved to (per its family setting). */
export interface ResolvedName {
  addresses: string[];
  /** Smallest TTL of the records behind `addresses`, seconds (for logs). */
  ttl: number;
  /** Why there are no addresses (for a 503 body and the logs), when there are none. */
  reason?: string;
}

/** One peer of an SRV service: a target's address with the record's port, weight and priority. */
export interface ServicePeer {
  address: string;
  port: number;
  weight: number;
  priority: number;
  /** The SRV target name it came from. */
  target: string;
}

/** The peers an SRV name resolved to. */
export interface ResolvedService {
  peers: ServicePeer[];
  ttl: number;
  reason?: string;
}

/** A versioned snapshot of everything discovered, keyed by `nameKey` and `serviceKey`. */
export interface PeerTable {
  version: number;
  names: Record<string, ResolvedName>;
  services: Record<string, ResolvedService>;
  /** Peers (`ip:port`) active health checks took out, by upstream name (added by the master). */
  down?: Record<string, string[]>;
}

/** Table key of a name resolved for a family. */
export function nameKey(host: string, family: AddressFamily): string {
  return `${family} ${host}`;
}

/** Table key of an SRV name resolved for a family. */
export function serviceKey(service: string, family: AddressFamily): string {
  return `${family} ${service}`;
}

/** One peer an upstream should have. */
export interface PeerSpec {
  /** `ip:port` (`[ip]:port` for IPv6): the peer's identity across tables. */
  key: string;
  host: string;
  port: number;
  weight: number;
  /** SRV priority (lower is preferred); 0 for `address` servers. */
  priority: number;
  /** The DNS name it was found by (the address's host, or the SRV target): TLS's SNI. */
  name?: string;
  /** Where it came from (the first server that lists it), for the status page. */
  origin?: PeerOrigin;
}

/** Where one peer of an upstream came from. */
export interface PeerOrigin {
  kind: "address" | "name" | "service";
  /** The configured address, the DNS name, or the SRV name. */
  name: string;
  /** SRV: the record, `priority weight port target`. */
  record?: string;
}

/** `ip:port`, brackets around IPv6. */
export function peerKey(host: string, port: number): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** Where a server's peers come from, for logs and 503 bodies. */
export function serverLabel(server: UpstreamServer): string {
  return server.kind === "service" ? server.service : server.text;
}

/**
 * The peers of `upstream` under `table`, and why servers contribute none. A peer listed by
 * two servers is kept once, with the larger weight and the lower priority.
 */
export function upstreamPeers(
  upstream: Upstream,
  table: PeerTable,
): { peers: PeerSpec[]; missing: string[] } {
  const byKey = new Map<string, PeerSpec>();
  const missing: string[] = [];
  const add = (
    host: string,
    port: number,
    weight: number,
    priority: number,
    origin: PeerOrigin,
    name?: string,
  ) => {
    const key = peerKey(host, port);
    const seen = byKey.get(key);
    if (!seen) byKey.set(key, { key, host, port, weight: Math.max(1, weight), priority, name, origin });
    else {
      seen.weight = Math.max(seen.weight, weight);
      seen.priority = Math.min(seen.priority, priority);
    }
  };
  for (const server of upstream.servers) {
    if (server.kind === "address" && server.fixed) {
      add(server.host, server.port, server.weight, 0, { kind: "address", name: server.text });
    } else if (server.kind === "address") {
      const resolved = table.names[nameKey(server.host, upstream.dns.family)];
      if (!resolved?.addresses.length)
        missing.push(`${server.text}: ${resolved?.reason ?? "not resolved yet"}`);
      const origin: PeerOrigin = { kind: "name", name: server.host };
      for (const address of resolved?.addresses ?? [])
        add(address, server.port, server.weight, 0, origin, server.host);
    } else {
      const resolved = table.services[serviceKey(server.service, upstream.dns.family)];
      if (!resolved?.peers.length)
        missing.push(`${server.service}: ${resolved?.reason ?? "not resolved yet"}`);
      // RFC 2782: weight 0 means "only when nothing else"; balancers need >= 1, so 0 becomes 1.
      for (const p of resolved?.peers ?? []) {
        const record = `${p.priority} ${p.weight} ${p.port} ${p.target}`;
        add(
          p.address,
          p.port,
          p.weight,
          p.priority,
          { kind: "service", name: server.service, record },
          p.target,
        );
      }
    }
  }
  return { peers: [...byKey.values()], missing };
}
