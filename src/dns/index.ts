/**
 * Portico's DNS layer: a stub resolver over UDP, TCP, DNS over TLS and DNS over HTTPS with a
 * TTL cache that serves stale. Imports nothing of the proxy.
 */
export { type BreakerOptions, type BreakerState, CircuitBreaker } from "./breaker.js";
export {
  DnsError,
  type DnsErrorCode,
  describeFailures,
  isDnsError,
  type ServerFailure,
} from "./errors.js";
export { parseHosts } from "./hosts.js";
export { type LookupResult, lookupEach } from "./lookup.js";
export { isHostName, isNoService, NO_SERVICE } from "./names.js";
export {
  type DnsObserver,
  NAMESERVER_FORMS,
  type NameserverStats,
  nameserverProblem,
  parseNameserverUrl,
  type TlsOptions,
} from "./nameserver.js";
export { parseResolvConf, type ResolvConf, readResolvConf } from "./resolv-conf.js";
export { Resolver, type ResolverOptions, type ResolverStats } from "./resolver.js";
export type * from "./types.js";
