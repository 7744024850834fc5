/**
 * The TLS side of one listen address: a secure context per certificate, and the SNI
 * callback that picks one. The name a client sends (SNI) picks the server as Host does
 * (exact name, then wildcard, then the address's default server: the caller's
 * `serverForName`); within that server, the certificate whose names cover it (exact, then
 * wildcard), else the server's first certificate. No SNI at all gets the default server's.
 */
import tls from "node:tls";
import type { Server } from "../config/types.js";
import type { CertificatePem } from "./material.js";

/** Most distinct SNI names remembered per address (clients choose them). */
const SNI_CACHE_SIZE = 1024;

interface ServerContexts {
  /** In the server's order: the first is its default. */
  contexts: Array<{ context: tls.SecureContext; names: string[] }>;
}

/** Whether certificate name `pattern` (maybe `*.example.com`) covers `name` (RFC 6125: one label). */
function covers(pattern: string, name: string): boolean {
  if (pattern === name) return true;
  if (!pattern.startsWith("*.")) return false;
  const dot = name.indexOf(".");
  return dot > 0 && name.slice(dot) === pattern.slice(1);
}

function pick(server: ServerContexts, name: string | undefined): tls.SecureContext {
  const contexts = server.contexts;
  if (name) {
    for (const c of contexts) if (c.names.includes(name)) return c.context;
    for (const c of contexts) if (c.names.some((n) => covers(n, name))) return c.context;
  }
  return (contexts[0] as ServerContexts["contexts"][number]).context;
}

/**
 * TLS server options for an address carrying `servers` (each with its certificates, which
 * the master checked): min version, ciphers, the default certificate and the SNI callback.
 */
export function tlsServerOptions(
  servers: ReadonlyArray<{ server: Server; certificates: CertificatePem[] }>,
  serverForName: (name: string | undefined) => Server,
): tls.TlsOptions {
  const first = servers[0]?.server.tls;
  if (!first) throw new Error("internal: a TLS address without TLS servers");
  // checks.ts makes every server on one address agree on these.
  const handshake = { minVersion: first.minVersion, ciphers: first.ciphers, honorCipherOrder: true };
  const byServer = new Map<Server, ServerContexts>();
  for (const { server, certificates } of servers) {
    byServer.set(server, {
      contexts: certificates.map((c) => ({
        context: tls.createSecureContext({ ...handshake, key: c.key, cert: c.cert }),
        names: c.names,
      })),
    });
  }
  const cache = new Map<string, tls.SecureContext>();
  const contextFor = (name: string | undefined): tls.SecureContext => {
    const server = byServer.get(serverForName(name)) ?? (byServer.values().next().value as ServerContexts);
    return pick(server, name);
  };
  const fallback = servers.find((s) => s.server === serverForName(undefined)) ?? servers[0];
  const defaults = fallback?.certificates[0];
  return {
    ...handshake,
    key: defaults?.key,
    cert: defaults?.cert,
    SNICallback: (servername, cb) => {
      const name = servername.toLowerCase();
      let context = cache.get(name);
      if (!context) {
        context = contextFor(name);
        if (cache.size >= SNI_CACHE_SIZE) cache.clear();
        cache.set(name, context);
      }
      cb(null, context);
    },
  };
}
