/** `/etc/resolv.conf` (resolv.conf(5)): nameservers, search list, ndots, timeout, attempts, rotate. */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";

export interface ResolvConf {
  /** Nameserver URLs (`udp://IP:53`). */
  nameservers: string[];
  search: string[];
  ndots: number;
  /** Seconds per attempt. */
  timeout: number;
  attempts: number;
  rotate: boolean;
}

/** resolv.conf(5) defaults: timeout 5 s, 2 attempts, ndots 1. */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], ndots: 1, timeout: 5, attempts: 2, rotate: false };
  for (const raw of text.split("\n")) {
    const [keyword, ...args] = raw
      .replace(/[#;].*/, "")
      .trim()
      .split(/\s+/);
    if (keyword === "nameserver" && args[0]) {
      const ip = args[0].replace(/%.*$/, "");
      if (isIP(ip)) conf.nameservers.push(`udp://${isIP(ip) === 6 ? `[${ip}]` : ip}:53`);
    } else if (keyword === "search" || keyword === "domain") {
      // The last of `search` and `domain` wins, as in glibc.
      conf.search = args.map((d) => d.toLowerCase().replace(/\.$/, "")).filter(Boolean);
    } else if (keyword === "options") {
      for (const option of args) {
        const [name, value] = option.split(":");
        const n = Number(value);
        if (name === "ndots" && Number.isInteger(n)) conf.ndots = Math.min(n, 15);
        else if (name === "timeout" && Number.isInteger(n) && n > 0) conf.timeout = Math.min(n, 30);
        else if (name === "attempts" && Number.isInteger(n) && n > 0) conf.attempts = Math.min(n, 5);
        else if (name === "rotate") conf.rotate = true;
      }
    }
  }
  return conf;
}

/** Read and parse a resolv.conf; a missing file gives the defaults with no nameserver. */
export function readResolvConf(path = "/etc/resolv.conf"): ResolvConf {
  try {
    return parseResolvConf(readFileSync(path, "utf8"));
  } catch {
    return parseResolvConf("");
  }
}
