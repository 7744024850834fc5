/**
 * Active health checks, in the master: once per peer and interval for the whole instance,
 * never once per worker (nginx Plus `health_check`, HAProxy `check inter rise fall`). Every
 * peer of an upstream with `health` is checked, whether written as an IP or found through
 * DNS (A/AAAA or SRV): the peers come from the same peer table the workers get. State is
 * keyed by upstream name and peer address, so it survives a reload (a peer down before is
 * down after, without waiting for `fall` new failures); a peer that leaves is forgotten.
 *
 * Events: `change` (some peer went up or down; `down()` has the new state); `checked`
 * (upstream name, passed: boolean) after every check.
 */
import { EventEmitter } from "node:events";
import http from "node:http";
import https from "node:https";
import type { Config, HealthCheck, Upstream, UpstreamTls } from "../config/types.js";
import type { Logger } from "../observability/logger.js";
import { tlsConnectOptions } from "./peer.js";
import { type PeerSpec, type PeerTable, upstreamPeers } from "./peer-table.js";

/** Most of a check's body that is read (and matched against `body`). */
const BODY_LIMIT = 64 * 1024;

interface Checked {
  upstream: string;
  spec: PeerSpec;
  check: HealthCheck;
  /** The upstream's TLS: checks go over HTTPS, verified as requests are. */
  tls: UpstreamTls | undefined;
  /** Undefined until the first check of a `checked_first` peer. */
  up: boolean | undefined;
  passes: number;
  failures: number;
  timer?: NodeJS.Timeout;
  /** Why the last check failed. */
  last?: string;
  /** How many checks were sent (for tests and the status page). */
  sent: number;
}

export class HealthChecker extends EventEmitter {
  private readonly peers = new Map<string, Checked>();
  private log: Logger;
  private stopped = false;

  constructor(log: Logger) {
    super();
    this.log = log;
  }

  setLogger(log: Logger): void {
    this.log = log;
  }

  /**
   * Check the peers of every upstream with `health` in `configs` (the live generations, the
   * newest last: its settings win) under `table`. New peers start checking at once.
   */
  update(configs: readonly Config[], table: PeerTable): void {
    const wanted = new Map<string, { upstream: Upstream; spec: PeerSpec }>();
    for (const config of configs) {
      for (const upstream of Object.values(config.upstreams)) {
        if (!upstream.health) continue;
        for (const spec of upstreamPeers(upstream, table).peers) {
          wanted.set(`${upstream.name} ${spec.key}`, { upstream, spec });
        }
      }
    }
    let changed = false;
    for (const [key, checked] of this.peers) {
      if (wanted.has(key)) continue;
      clearTimeout(checked.timer);
      this.peers.delete(key);
      if (checked.up !== true) changed = true;
    }
    for (const [key, { upstream, spec }] of wanted) {
      const check = upstream.health as HealthCheck;
      const existing = this.peers.get(key);
      if (existing) {
        existing.check = check;
        existing.spec = spec;
        existing.tls = upstream.tls;
        continue;
      }
      const trusted = check.newPeers === "trusted";
      const checked: Checked = {
        upstream: upstream.name,
        spec,
        check,
        tls: upstream.tls,
        up: trusted ? true : undefined,
        passes: 0,
        failures: 0,
        sent: 0,
      };
      this.peers.set(key, checked);
      if (!trusted) changed = true;
      this.schedule(checked, 0);
    }
    if (changed) this.emit("change");
  }

  /** Peers that get no traffic (down, or not checked yet), by upstream name. */
  down(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const checked of this.peers.values()) {
      if (checked.up === true) continue;
      const list = out[checked.upstream] ?? [];
      list.push(checked.spec.key);
      out[checked.upstream] = list;
    }
    return out;
  }

  /** What the checks of `peer` of `upstream` found: undefined when it is not checked. */
  state(
    upstream: string,
    peer: string,
  ): { up: boolean | undefined; last?: string; sent: number } | undefined {
    const checked = this.peers.get(`${upstream} ${peer}`);
    return checked && { up: checked.up, last: checked.last, sent: checked.sent };
  }

  /** Checks sent to `peer` (`ip:port`) of `upstream` so far. */
  sentTo(upstream: string, peer: string): number {
    return this.peers.get(`${upstream} ${peer}`)?.sent ?? 0;
  }

  /** Resolves once every peer had its first check, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while ([...this.peers.values()].some((c) => c.up === undefined) && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  stop(): void {
    this.stopped = true;
    for (const checked of this.peers.values()) clearTimeout(checked.timer);
  }

  private schedule(checked: Checked, delay: number): void {
    if (this.stopped) return;
    const jitter = checked.check.jitter > 0 ? Math.random() * checked.check.jitter : 0;
    checked.timer = setTimeout(() => void this.run(checked), delay + jitter);
    checked.timer.unref();
  }

  private async run(checked: Checked): Promise<void> {
    checked.sent++;
    const failure = await probe(checked.spec, checked.check, checked.tls);
    // The peer left (or the checker stopped) while the check ran.
    if (this.stopped || this.peers.get(`${checked.upstream} ${checked.spec.key}`) !== checked) return;
    this.record(checked, failure);
    this.emit("checked", checked.upstream, failure === undefined);
    this.schedule(checked, checked.check.interval);
  }

  private record(checked: Checked, failure: string | undefined): void {
    const { rise, fall } = checked.check;
    const name = `peer ${checked.spec.key} of ${checked.upstream}`;
    if (failure === undefined) {
      checked.failures = 0;
      checked.passes++;
      if (checked.up !== true && (checked.up === undefined || checked.passes >= rise)) {
        checked.up = true;
        const why = checked.passes === 1 ? "its check passed" : `${checked.passes} checks passed`;
        this.log.info({ upstream: checked.upstream, peer: checked.spec.key }, `${name} up: ${why}`);
        this.emit("change");
      }
      return;
    }
    checked.passes = 0;
    checked.failures++;
    checked.last = failure;
    if (checked.up === undefined || (checked.up && checked.failures >= fall)) {
      const first = checked.up === undefined;
      checked.up = false;
      const why = first ? "its first check failed" : `${checked.failures} failed checks`;
      this.log.warn(
        { upstream: checked.upstream, peer: checked.spec.key },
        `${name} down: ${why}, last: ${failure}`,
      );
      this.emit("change");
    }
  }
}

/** One check of `peer`: undefined when it passed, else why it failed. */
function probe(
  peer: PeerSpec,
  check: HealthCheck,
  tls: UpstreamTls | undefined,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (why: string | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(why);
    };
    const port = check.port ?? peer.port;
    const req = (tls ? https : http).request({
      ...(tls ? tlsConnectOptions(tls, peer.name) : {}),
      host: peer.host,
      port,
      method: check.method,
      path: check.path,
      agent: false,
      headers: { host: check.host ?? peer.key, "user-agent": "portico-health-check", connection: "close" },
    });
    const timer = setTimeout(() => finish(`no answer within ${check.timeout} ms`), check.timeout);
    req.on("error", (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      if (!check.status.some(([lo, hi]) => status >= lo && status <= hi)) {
        finish(String(status));
        return;
      }
      if (check.body === undefined) {
        finish(undefined);
        return;
      }
      const pattern = new RegExp(check.body);
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (body.length < BODY_LIMIT) body += chunk;
      });
      res.on("end", () =>
        finish(
          pattern.test(body.slice(0, BODY_LIMIT))
            ? undefined
            : `${status}, body does not match /${check.body}/`,
        ),
      );
      res.on("error", (err) => finish(err.message));
    });
    req.end();
  });
}
