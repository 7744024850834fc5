/** The one interface every transport (UDP, TCP, DoT, DoH) implements. */
import type { Response } from "../message.js";
import type { Question, TransportKind } from "../types.js";

/** Counters a transport bumps for events the resolver cannot see. */
export interface TransportEvents {
  /** An answer that did not match the query (wrong ID, question or source) was dropped. */
  onSpoofed(): void;
}

/** Sends one question to one nameserver and returns its matching response. */
export interface Transport {
  readonly kind: TransportKind;
  /**
   * Ask `question`; resolve with the response that answers it, or reject with a DnsError
   * (TIMEOUT after `timeoutMs`, NETWORK, MALFORMED). The rcode is the caller's business.
   */
  exchange(question: Question, timeoutMs: number): Promise<Response>;
  /** Close connections; pending exchanges reject. */
  close(): Promise<void>;
}

/** Where a transport connects, with the TLS material for the encrypted ones. */
export interface Endpoint {
  /** The URL as written, used in messages and stats. */
  url: string;
  /** Host without brackets (IP address or name). */
  host: string;
  port: number;
  /** DoH: the request path (default `/dns-query`). */
  path: string;
  /** TLS: the name the certificate is verified against (default: the host). */
  servername?: string;
  /** TLS: PEM CA certificates to trust instead of the system's. */
  ca?: string | Buffer;
  /** TLS: PEM client certificate and key (mTLS). */
  cert?: string | Buffer;
  key?: string | Buffer;
}
