/** DNS name syntax, shared by the DNS layer and the config that names nameservers and upstreams. */

/** Host name labels: letters, digits, `-` and `_` (SRV-style names), 1-63 characters each. */
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** True for a syntactically valid DNS host name (`api.internal`, `localhost`, `_svc.example`). */
export function isHostName(text: string): boolean {
  return HOSTNAME.test(text);
}

/** RFC 2782: an SRV target of `.` (canonical: empty) means there is no such service. */
export const NO_SERVICE = "the service is decidedly not available at this domain (RFC 2782)";

/** Whether SRV records say "no service": there are some, and every target is `.`. */
export function isNoService(records: ReadonlyArray<{ type: string; target?: string }>): boolean {
  return records.length > 0 && records.every((r) => r.type === "SRV" && r.target === "");
}
