/**
 * One question asked of several nameservers side by side, each on its own (one failing does
 * not fail the others), as `portico dns` prints it and the admin listener's `/dns` returns it.
 */
import { DnsError } from "./errors.js";
import { Resolver, type ResolverOptions } from "./resolver.js";
import type { DnsAnswer, QueryType } from "./types.js";

/** The answer of one server, or why there is none. */
export type LookupResult =
  | { server: string | undefined; ok: true; answer: DnsAnswer; ms: number }
  | { server: string | undefined; ok: false; code: string; message: string; ms: number };

/**
 * Ask `name`/`type` of each server in `servers` (asked once, as dig does: no hosts file, one
 * attempt). An `undefined` entry asks `fallback`: a resolver of the caller's, or when absent a
 * new one from `options` (the hosts file, then resolv.conf).
 */
export function lookupEach(
  name: string,
  type: QueryType,
  servers: Array<string | undefined>,
  options: ResolverOptions,
  fallback?: Resolver,
): Promise<LookupResult[]> {
  return Promise.all(
    servers.map(async (server): Promise<LookupResult> => {
      let resolver: Resolver;
      const own = server !== undefined || fallback === undefined;
      try {
        resolver =
          server !== undefined
            ? new Resolver({ ...options, nameservers: [server], hostsFile: false, attempts: 1 })
            : (fallback ?? new Resolver(options));
      } catch (err) {
        return { server, ok: false, code: "BAD_SERVER", message: (err as Error).message, ms: 0 };
      }
      const started = performance.now();
      try {
        const answer = await resolver.resolve(name, type);
        return { server, ok: true, answer, ms: performance.now() - started };
      } catch (err) {
        const code = err instanceof DnsError ? err.code : "ERROR";
        return { server, ok: false, code, message: (err as Error).message, ms: performance.now() - started };
      } finally {
        if (own) await resolver.close();
      }
    }),
  );
}
