/**
 * The hosts file (`/etc/hosts`), consulted before any nameserver, re-read when it changes
 * (its modification time is checked at most once per `checkIntervalMs`).
 */
import { readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";

interface HostEntry {
  A: string[];
  AAAA: string[];
}

/** Parse hosts-file text: `address name [aliases...]`, `#` comments. */
export function parseHosts(text: string): Map<string, HostEntry> {
  const hosts = new Map<string, HostEntry>();
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [address, ...names] = line.split(/\s+/);
    const family = isIP(address ?? "");
    if (!address || family === 0) continue;
    for (const name of names) {
      const key = name.toLowerCase().replace(/\.$/, "");
      const entry = hosts.get(key) ?? { A: [], AAAA: [] };
      hosts.set(key, entry);
      const list = family === 4 ? entry.A : entry.AAAA;
      if (!list.includes(address)) list.push(address);
    }
  }
  return hosts;
}

export class HostsFile {
  private hosts = new Map<string, HostEntry>();
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(
    readonly path: string,
    private readonly checkIntervalMs = 1000,
  ) {
    this.refresh(Date.now());
  }

  /** Addresses of `name` (canonical form) for A or AAAA; undefined when the file does not name it. */
  lookup(name: string, type: "A" | "AAAA", now: number): string[] | undefined {
    if (now - this.checkedAt >= this.checkIntervalMs) this.refresh(now);
    const entry = this.hosts.get(name);
    if (!entry) return undefined;
    return entry[type];
  }

  private refresh(now: number): void {
    this.checkedAt = now;
    try {
      const { mtimeMs } = statSync(this.path);
      if (mtimeMs === this.mtimeMs) return;
      this.mtimeMs = mtimeMs;
      this.hosts = parseHosts(readFileSync(this.path, "utf8"));
    } catch {
      // No hosts file (or unreadable): the nameservers answer everything.
      this.mtimeMs = -1;
      this.hosts = new Map();
    }
  }
}
