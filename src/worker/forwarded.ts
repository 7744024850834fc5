/**
 * `trusted_proxies` (nginx's `set_real_ip_from` with `real_ip_recursive on`): a request from
 * a trusted address has its client taken from `X-Forwarded-For`, the last entry that is not
 * itself a trusted proxy; from anyone else the header is not believed (headers.ts replaces it).
 */
import { BlockList, isIP } from "node:net";
import type { Cidr } from "../config/units.js";

/** An IPv4 client of a dual-stack socket shows as `::ffff:a.b.c.d`. */
function unmapped(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

export class TrustedProxies {
  private readonly list = new BlockList();

  constructor(ranges: readonly Cidr[]) {
    for (const r of ranges) this.list.addSubnet(r.address, r.prefix, r.family);
  }

  /** True when `address` (a socket's remote address) is a trusted proxy. */
  trusts(address: string): boolean {
    const ip = unmapped(address);
    const version = isIP(ip);
    return version !== 0 && this.list.check(ip, version === 6 ? "ipv6" : "ipv4");
  }

  /**
   * The client behind trusted proxy `remote`: walking `X-Forwarded-For` from the right, the
   * first address that is not trusted (or the leftmost one when all are). A malformed entry
   * stops the walk: what is left of it was written by someone untrusted, so the last trusted
   * hop is the client.
   */
  clientOf(remote: string, xff: string | string[] | undefined): string {
    if (xff === undefined) return remote;
    const entries = (Array.isArray(xff) ? xff.join(",") : xff).split(",");
    let client = remote;
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = (entries[i] as string).trim();
      if (isIP(entry) === 0) break;
      client = entry;
      if (!this.trusts(entry)) break;
    }
    return client;
  }
}
