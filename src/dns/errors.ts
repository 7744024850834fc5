/**
 * Errors of the DNS layer. Every failure a caller can see is a `DnsError` with a stable code,
 * the name and type asked, and (when one was involved) the nameserver URL.
 */
import type { TransportKind } from "./types.js";

/** Stable error codes. */
export type DnsErrorCode =
  /** The name does not exist (rcode 3). Cached per RFC 2308. */
  | "NXDOMAIN"
  /** The name exists but has no record of the type asked. Cached per RFC 2308. */
  | "NODATA"
  /** The nameserver could not answer (rcode 2). */
  | "SERVFAIL"
  /** The nameserver refused to answer (rcode 5). */
  | "REFUSED"
  /** No answer within the timeout, on every attempt. */
  | "TIMEOUT"
  /** An answer that could not be decoded, or that does not answer the question. */
  | "MALFORMED"
  /** The connection to the nameserver failed (refused, reset, TLS verification, HTTP error). */
  | "NETWORK"
  /** A CNAME chain that loops or is longer than the limit. */
  | "CNAME_LOOP"
  /** The name asked is not a valid DNS name. */
  | "BAD_NAME"
  /** No nameserver is configured (and /etc/resolv.conf names none). */
  | "NO_NAMESERVERS";

/** Codes that mean "the server could not give an answer": try the next server, serve stale. */
export const SERVER_FAILURES: ReadonlySet<DnsErrorCode> = new Set([
  "SERVFAIL",
  "REFUSED",
  "TIMEOUT",
  "MALFORMED",
  "NETWORK",
]);

/** One nameserver's failure within a query: what went wrong, where, over which transport. */
export interface ServerFailure {
  server: string;
  transport: TransportKind;
  code: DnsErrorCode;
  /** What happened, without the server URL (e.g. `no answer within 2000 ms`). */
  detail: string;
  /** How many times in this query (attempt rounds). */
  count: number;
}

/** A DNS failure with a code; `message` says what and where. */
export class DnsError extends Error {
  override readonly name = "DnsError";
  constructor(
    readonly code: DnsErrorCode,
    message: string,
    readonly details: {
      name?: string;
      type?: string;
      server?: string;
      /** The transport that failed, when one server did (`tcp` for a truncated UDP answer retried). */
      transport?: TransportKind;
      /** NXDOMAIN/NODATA at the end of a CNAME chain: the name that is missing. */
      target?: string;
      /** When every nameserver failed: each one's failure, in the order they were asked. */
      failures?: ServerFailure[];
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }
}

/** Whether `err` is a DnsError (optionally with `code`). */
export function isDnsError(err: unknown, code?: DnsErrorCode): err is DnsError {
  return err instanceof DnsError && (code === undefined || err.code === code);
}

/**
 * `TIMEOUT from udp://10.0.0.53:53 over udp (no answer within 2000 ms, 2 times); NETWORK from
 * tls://dns.internal over tls (connect ECONNREFUSED 10.0.0.54:853)`: every server's failure.
 */
export function describeFailures(failures: readonly ServerFailure[]): string {
  return failures
    .map((f) => {
      const times = f.count > 1 ? `, ${f.count} times` : "";
      return `${f.code} from ${f.server} over ${f.transport} (${f.detail}${times})`;
    })
    .join("; ");
}
