/**
 * Header rules of a proxy, in one place: hop-by-hop headers (RFC 9110 §7.6.1) are removed
 * in both directions, with any header named in `Connection`; forwarding headers are added;
 * a route's `set`/`remove` edits are applied.
 *
 * Headers are built as flat `[name, value, name, value, ...]` arrays, which undici's
 * `dispatch` and Node's `writeHead` both take as they are: one array per message instead of
 * a copied header object and the edits applied to it. Each route's edits are compiled once
 * into a set of names to leave out and a list of values to add.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { HeaderEdits } from "../config/types.js";

/** A flat header list: names at even indexes, values after them. */
export type HeaderList = Array<string | string[]>;

/**
 * Headers that describe one connection, not the message. `expect` is answered by Node's
 * server itself (100-continue) and undici refuses it, so it stops here too.
 */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "transfer-encoding",
  "upgrade",
  "expect",
  "http2-settings",
];

/** Headers Portico sets itself on every forwarded request (a client's copy is replaced or appended to). */
const FORWARDING = [
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "forwarded",
  "x-request-id",
  "via",
];

/** One direction's header edits of a route, compiled for the request path. */
export interface CompiledEdits {
  /** Names never copied from the incoming message (hop-by-hop, set or removed by the route). */
  skip: ReadonlySet<string>;
  /** Names the route removes or sets: Portico's own forwarding headers give way to them. */
  overridden: ReadonlySet<string>;
  /** `[name, value, ...]` the route sets, appended last. */
  set: readonly string[];
}

/** Compile a route's edits for requests (`forwarding` true) or responses. */
export function compileEdits(edits: HeaderEdits, forwarding: boolean): CompiledEdits {
  const set: string[] = [];
  for (const name in edits.set) set.push(name, edits.set[name]);
  const skip = new Set([...HOP_BY_HOP, ...edits.remove, ...Object.keys(edits.set)]);
  if (forwarding) for (const name of FORWARDING) skip.add(name);
  return { skip, overridden: new Set([...edits.remove, ...Object.keys(edits.set)]), set };
}

/**
 * Headers named in a `Connection` header value (lower case), besides the usual
 * `keep-alive`/`close`, which are hop-by-hop anyway. Undefined in the common case.
 */
function connectionListed(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(",") : value;
  if (text.length <= 10) {
    const lower = text.toLowerCase();
    if (lower === "keep-alive" || lower === "close") return undefined;
  }
  const listed = new Set<string>();
  for (const part of text.split(",")) {
    const name = part.trim().toLowerCase();
    if (name) listed.add(name);
  }
  return listed;
}

/**
 * Copy `headers` (lower-case names, as Node and undici parse them) into `out`, without
 * hop-by-hop headers, those named in `Connection`, and those the edits skip.
 */
export function copyHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  edits: CompiledEdits,
  out: HeaderList,
): HeaderList {
  const listed = connectionListed(headers.connection);
  const skip = edits.skip;
  for (const name in headers) {
    const value = headers[name];
    // HTTP/2 pseudo-headers (`:path`, ...) never become HTTP/1.1 fields.
    if (value === undefined || skip.has(name) || listed?.has(name) || name.charCodeAt(0) === 58) continue;
    out.push(name, value);
  }
  return out;
}

/** The values of the forwarding headers of one request. */
export interface Forwarding {
  /** The address the connection came from, appended to `X-Forwarded-For`. */
  remote: string;
  /**
   * `remote` is a trusted proxy: its X-Forwarded-For is appended to and its
   * X-Forwarded-Proto, X-Forwarded-Host and Forwarded are kept. From anyone else they are
   * replaced (Forwarded is dropped): a client cannot make up where it came from.
   */
  trusted: boolean;
  proto: string;
  host: string;
  requestId: string;
  /** This instance's `Via` entry (`1.1 portico-xxxx`). */
  via: string;
}

/** The headers to send upstream: the client's, minus hop-by-hop, plus forwarding headers and the route's edits. */
export function upstreamRequestHeaders(
  headers: IncomingHttpHeaders,
  edits: CompiledEdits,
  fwd: Forwarding,
): HeaderList {
  const out = copyHeaders(headers, edits, []);
  const removed = edits.overridden;
  const trusted = fwd.trusted;
  if (!removed.has("x-forwarded-for")) {
    out.push("x-forwarded-for", trusted ? appendList(headers["x-forwarded-for"], fwd.remote) : fwd.remote);
  }
  if (!removed.has("x-forwarded-proto")) {
    out.push("x-forwarded-proto", (trusted && headers["x-forwarded-proto"]) || fwd.proto);
  }
  if (!removed.has("x-forwarded-host")) {
    const host = (trusted && headers["x-forwarded-host"]) || fwd.host;
    if (host) out.push("x-forwarded-host", host);
  }
  const forwarded = headers.forwarded;
  if (trusted && forwarded !== undefined && !removed.has("forwarded")) out.push("forwarded", forwarded);
  if (!removed.has("x-request-id")) out.push("x-request-id", fwd.requestId);
  if (!removed.has("via")) out.push("via", appendList(headers.via, fwd.via));
  return appendSet(out, edits);
}

/** Append the route's `set` headers. */
export function appendSet(out: HeaderList, edits: CompiledEdits): HeaderList {
  const set = edits.set;
  for (let i = 0; i < set.length; i++) out.push(set[i]);
  return out;
}

/** Append `value` to a comma-separated header (X-Forwarded-For, Via). */
export function appendList(existing: string | string[] | undefined, value: string): string {
  if (existing === undefined || existing === "") return value;
  return `${Array.isArray(existing) ? existing.join(", ") : existing}, ${value}`;
}
