/** Types shared by the DNS layer's modules and its callers. */
import type { DnsError } from "./errors.js";

/** Record types the resolver answers. */
export type QueryType = "A" | "AAAA" | "SRV" | "CNAME";

/** Transports, written as the scheme of a nameserver URL. */
export type TransportKind = "udp" | "tcp" | "tls" | "https";

/** An A or AAAA record. `ttl` in seconds. */
export interface AddressRecord {
  type: "A" | "AAAA";
  name: string;
  ttl: number;
  address: string;
}

/** An SRV record (RFC 2782). `ttl` in seconds. */
export interface SrvRecord {
  type: "SRV";
  name: string;
  ttl: number;
  priority: number;
  weight: number;
  port: number;
  target: string;
}

/** A CNAME record. `ttl` in seconds. */
export interface CnameRecord {
  type: "CNAME";
  name: string;
  ttl: number;
  target: string;
}

export type DnsRecord = AddressRecord | SrvRecord | CnameRecord;

/** Where an answer came from. */
export interface AnswerSource {
  /** `hosts`: the hosts file; `cache`: the resolver's cache; `nameserver`: a query just now. */
  kind: "hosts" | "cache" | "nameserver";
  /** The nameserver URL that gave the answer (also for cached answers). */
  server?: string;
  /** The transport that carried it (`tcp` after a truncated UDP answer). */
  transport?: TransportKind;
}

/** The result of `resolve(name, type)`. */
export interface DnsAnswer {
  /** The name asked (lower case, no trailing dot; after search-list expansion). */
  name: string;
  type: QueryType;
  /** The records of the type asked, at the end of any CNAME chain. Never empty. */
  records: DnsRecord[];
  /** The CNAME records followed from `name` to the records, in order. */
  cnames: CnameRecord[];
  /** Seconds the answer stays valid from now: the smallest TTL of chain and records, clamped. */
  ttl: number;
  source: AnswerSource;
  /** True when every nameserver failed and this is an expired answer served per RFC 8767. */
  stale: boolean;
  /** A stale answer: how long ago it expired, ms. */
  staleForMs?: number;
  /** A stale answer: why the last refresh failed (its `details.failures` name every server). */
  failure?: DnsError;
}

/** A question as sent on the wire. */
export interface Question {
  name: string;
  type: QueryType;
}
