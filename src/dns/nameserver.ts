/**
 * A nameserver: its URL parsed into an endpoint, its transport (plus TCP for truncated UDP
 * answers), its circuit breaker and its counters.
 */
import { isIP } from "node:net";
import { type BreakerOptions, type BreakerState, CircuitBreaker } from "./breaker.js";
import { DnsError } from "./errors.js";
import type { Response } from "./message.js";
import { isHostName } from "./names.js";
import { HttpsTransport } from "./transports/https.js";
import { StreamTransport } from "./transports/stream.js";
import type { Endpoint, Transport, TransportEvents } from "./transports/transport.js";
import { DEFAULT_UDP_QUERIES_PER_SOCKET, UdpTransport } from "./transports/udp.js";
import type { Question, TransportKind } from "./types.js";

const DEFAULT_PORTS: Record<TransportKind, number> = { udp: 53, tcp: 53, tls: 853, https: 443 };

/** TLS material for `tls://` and `https://` nameservers (PEM). */
export interface TlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** Counters per nameserver. */
export interface NameserverStats {
  url: string;
  /** Queries sent (a TCP retry after truncation counts again). */
  sent: number;
  /** Answers received, whatever their rcode. */
  answered: number;
  /** Answers by rcode (`NOERROR`, `NXDOMAIN`, `SERVFAIL`, ...). */
  rcodes: Record<string, number>;
  timeouts: number;
  /** Connection and TLS failures. */
  networkErrors: number;
  /** Undecodable answers. */
  malformed: number;
  /** Answers dropped because ID, question or source did not match (RFC 5452). */
  spoofed: number;
  /** Truncated UDP answers retried over TCP. */
  truncated: number;
  /** Sum and maximum of answer latency, ms. */
  latencyMsTotal: number;
  latencyMsMax: number;
  breaker: BreakerState;
}

/** The nameserver forms the DNS layer understands, for messages. */
export const NAMESERVER_FORMS =
  "udp://IP[:port], tcp://IP[:port], tls://host[:port][?servername=NAME], https://host[:port][/path], or a bare IP (udp, port 53)";

/** What is wrong with a nameserver URL (or bare IP), or undefined when it is valid: the one check for the CLI, the config and the resolver. */
export function nameserverProblem(text: string): string | undefined {
  if (isIP(text) !== 0) return undefined;
  // The URL parser refuses a port above 65535 as "Invalid URL": say what is actually wrong.
  const port = /^[a-z]+:\/\/(?:\[[^\]]*\]|[^/?#:@]*):(\d+)(?:[/?#]|$)/i.exec(text)?.[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    return `port ${port} is out of range: use 1-65535`;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    const ipAndPort = /^(?:\[([^\]]*)\]|([^:]*)):\d+$/.exec(text);
    if (ipAndPort && isIP(ipAndPort[1] ?? ipAndPort[2] ?? "") !== 0) {
      return `a bare IP address takes no port: write udp://${text}`;
    }
    if (isHostName(text)) {
      return `a bare name is not a nameserver: give its IP address, or write tls://${text} or https://${text}/dns-query`;
    }
    return "it is neither a URL nor an IP address";
  }
  const scheme = url.protocol.slice(0, -1);
  if (!["udp", "tcp", "tls", "https"].includes(scheme)) return `unknown scheme '${scheme}://'`;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (host === "") return "the host is missing";
  if ((scheme === "udp" || scheme === "tcp") && isIP(host) === 0) {
    return `${scheme}:// needs an IP address, not a name ('${host}'): a name would need DNS to find DNS; use tls:// or https:// for a named nameserver`;
  }
  if (isIP(host) === 0 && !isHostName(host)) return `'${host}' is not a host name or IP address`;
  if (url.username !== "" || url.password !== "") return "a user name or password is not allowed";
  if (url.hash !== "") return "a '#fragment' is not allowed";
  if (scheme !== "https" && url.pathname !== "" && url.pathname !== "/") {
    return `a path ('${url.pathname}') is only allowed with https://`;
  }
  for (const [key, value] of url.searchParams) {
    if (key !== "servername") return `unknown parameter '${key}': only ?servername=NAME is understood`;
    if (scheme === "udp" || scheme === "tcp") return "?servername= only applies to tls:// and https://";
    if (!isHostName(value)) return `servername '${value}' is not a host name`;
  }
  return undefined;
}

/**
 * Parse a nameserver URL: `udp://IP[:port]`, `tcp://…`, `tls://host[:port]`, `https://host[:port]/path`.
 * A bare IP address means UDP port 53. `?servername=NAME` sets the TLS name to verify.
 * Anything else is a NO_NAMESERVERS DnsError saying what is wrong and what to write.
 */
export function parseNameserverUrl(input: string, tls: TlsOptions = {}): Endpoint & { kind: TransportKind } {
  const problem = nameserverProblem(input);
  if (problem !== undefined) {
    throw new DnsError(
      "NO_NAMESERVERS",
      `nameserver '${input}': ${problem}; valid forms are ${NAMESERVER_FORMS}`,
    );
  }
  const url = new URL(isIP(input) ? `udp://${input.includes(":") ? `[${input}]` : input}` : input);
  const kind = url.protocol.slice(0, -1) as TransportKind;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const servername = url.searchParams.get("servername") ?? undefined;
  return {
    kind,
    url: input,
    host,
    port: url.port ? Number(url.port) : DEFAULT_PORTS[kind],
    path: kind === "https" ? (url.pathname === "/" ? "/dns-query" : url.pathname) : "",
    servername,
    ...tls,
  };
}

/**
 * Told of every query and cache lookup, for metrics (the DNS layer keeps no metrics library).
 * `outcome` is the rcode of an answer (NOERROR, NXDOMAIN, SERVFAIL...) or the error code of a
 * query that got none (TIMEOUT, NETWORK, MALFORMED).
 */
export interface DnsObserver {
  query?(server: string, transport: TransportKind, outcome: string, ms: number): void;
  cache?(result: "hit" | "miss" | "stale"): void;
}

export class Nameserver {
  readonly url: string;
  readonly kind: TransportKind;
  readonly breaker: CircuitBreaker;
  private readonly transport: Transport;
  private tcpFallback: Transport | undefined;
  private readonly endpoint: Endpoint;
  private readonly counters: Omit<NameserverStats, "url" | "breaker">;
  private readonly events: TransportEvents;

  /** `udpQueriesPerSocket`: see ResolverOptions. */
  constructor(
    url: string,
    tls: TlsOptions = {},
    breaker: BreakerOptions = {},
    udpQueriesPerSocket = DEFAULT_UDP_QUERIES_PER_SOCKET,
    private readonly observer: DnsObserver = {},
  ) {
    const { kind, ...endpoint } = parseNameserverUrl(url, tls);
    this.url = url;
    this.kind = kind;
    this.endpoint = endpoint;
    this.breaker = new CircuitBreaker(breaker);
    this.counters = {
      sent: 0,
      answered: 0,
      rcodes: {},
      timeouts: 0,
      networkErrors: 0,
      malformed: 0,
      spoofed: 0,
      truncated: 0,
      latencyMsTotal: 0,
      latencyMsMax: 0,
    };
    this.events = { onSpoofed: () => this.counters.spoofed++ };
    this.transport =
      kind === "udp"
        ? new UdpTransport(endpoint, this.events, udpQueriesPerSocket)
        : kind === "https"
          ? new HttpsTransport(endpoint, this.events)
          : new StreamTransport(kind, endpoint, this.events);
  }

  /**
   * Ask one question; returns the response (any rcode) and the transport that carried it.
   * A truncated UDP answer is asked again over TCP (RFC 7766 §5).
   */
  async query(
    question: Question,
    timeoutMs: number,
  ): Promise<{ response: Response; transport: TransportKind }> {
    let transport = this.transport;
    let kind = this.kind;
    for (;;) {
      const started = this.sending();
      let response: Response;
      try {
        response = await transport.exchange(question, timeoutMs);
      } catch (err) {
        this.failed(err, kind, started);
        // A truncated UDP answer retried over TCP: say it was TCP that failed.
        if (kind !== this.kind && err instanceof DnsError)
          throw new DnsError(err.code, err.message, { ...err.details, transport: kind });
        throw err;
      }
      this.answered(response, started, kind);
      if (kind !== "udp" || !response.flag_tc) return { response, transport: kind };
      this.counters.truncated++;
      this.tcpFallback ??= new StreamTransport("tcp", this.endpoint, this.events);
      transport = this.tcpFallback;
      kind = "tcp";
    }
  }

  /** Count a query about to be sent; returns its start time for the latency. */
  private sending(): number {
    this.counters.sent++;
    return performance.now();
  }

  private answered(response: Response, started: number, transport: TransportKind): void {
    const c = this.counters;
    const ms = performance.now() - started;
    c.answered++;
    c.latencyMsTotal += ms;
    if (ms > c.latencyMsMax) c.latencyMsMax = ms;
    const rcode = response.rcode ?? "NOERROR";
    c.rcodes[rcode] = (c.rcodes[rcode] ?? 0) + 1;
    this.observer.query?.(this.url, transport, rcode, ms);
  }

  private failed(err: unknown, transport: TransportKind, started: number): void {
    const c = this.counters;
    const code = err instanceof DnsError ? err.code : "NETWORK";
    this.observer.query?.(this.url, transport, code, performance.now() - started);
    if (code === "TIMEOUT") c.timeouts++;
    else if (code === "MALFORMED") c.malformed++;
    else c.networkErrors++;
  }

  stats(): NameserverStats {
    return {
      url: this.url,
      ...this.counters,
      rcodes: { ...this.counters.rcodes },
      breaker: this.breaker.state,
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.transport.close(), this.tcpFallback?.close()]);
  }
}
