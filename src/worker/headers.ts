/**
 * Header rules of a proxy, in one place: hop-by-hop headers (RFC 9110 §7.6.1) are removed
 * in both directions, with any header named in `Connection`; forwarding headers are added.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import type { HeaderEdits } from "../config/types.js";

/**
 * Headers that describe one connection, not the message. `expect` is answered by Node's
 * server itself (100-continue) and undici refuses it, so it stops here too.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
  "http2-settings",
]);

/** Headers named in a `Connection` header value (lower case). */
function connectionListed(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const listed = new Set<string>();
  for (const part of (Array.isArray(value) ? value.join(",") : value).split(",")) {
    const name = part.trim().toLowerCase();
    if (name) listed.add(name);
  }
  return listed;
}

/** Copy `headers` without hop-by-hop headers and those named in its `Connection` header. */
export function withoutHopByHop(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const listed = connectionListed(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || listed?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Apply a route's `set`/`remove` edits to a header object in place. */
export function applyEdits(
  headers: OutgoingHttpHeaders | Record<string, string | string[]>,
  edits: HeaderEdits,
) {
  for (const name of edits.remove) delete headers[name];
  for (const name in edits.set) headers[name] = edits.set[name];
}

/** Append `value` to a comma-separated header (X-Forwarded-For, Via). */
export function appendList(existing: string | string[] | undefined, value: string): string {
  if (existing === undefined || existing === "") return value;
  return `${Array.isArray(existing) ? existing.join(", ") : existing}, ${value}`;
}
