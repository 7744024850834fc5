/**
 * For `portico check`: the upstream names that do not resolve right now. They are warnings,
 * not errors: Portico starts anyway, answers 503 for such an upstream, and serves it as soon
 * as the name resolves (a name that does not exist yet is normal during a rollout).
 */
import type { Config, ConfigIssue } from "../config/types.js";
import { DnsError, isNoService, NO_SERVICE, Resolver } from "../dns/index.js";
import { resolverOptions, typesFor } from "./discovery.js";
import { explainDnsError } from "./dns-reports.js";

/** Longest time one check query may take: `portico check` must stay quick. */
const CHECK_TIMEOUT_MS = 2000;

export async function unresolvedNameWarnings(config: Config): Promise<ConfigIssue[]> {
  const issues: ConfigIssue[] = [];
  const resolver = new Resolver({
    ...resolverOptions(config.dns, (file, err) =>
      issues.push({
        file: config.file,
        line: 0,
        col: 0,
        severity: "warning",
        message: `cannot read ${file}: ${err.message}`,
      }),
    ),
    timeoutMs: Math.min(config.dns.timeout ?? CHECK_TIMEOUT_MS, CHECK_TIMEOUT_MS),
    attempts: 1,
  });
  const checks: Promise<void>[] = [];
  for (const upstream of Object.values(config.upstreams)) {
    const family = upstream.dns.family;
    for (const server of upstream.servers) {
      if (server.kind === "address" && server.fixed) continue;
      const name = server.kind === "address" ? server.host : server.service;
      const types = server.kind === "service" ? ["SRV" as const] : typesFor(family);
      checks.push(
        (async () => {
          const failures: string[] = [];
          for (const type of types) {
            try {
              const answer = await resolver.resolve(name, type);
              if (!isNoService(answer.records)) return;
              failures.push(`SRV target '.': ${NO_SERVICE}`);
            } catch (err) {
              failures.push(`${type}: ${err instanceof DnsError ? explainDnsError(err) : String(err)}`);
            }
          }
          issues.push({
            file: server.position.file,
            line: server.position.line,
            col: server.position.col,
            severity: "warning",
            message: `upstream '${upstream.name}': ${name} does not resolve now (${failures.join(", ")}); Portico starts anyway, answers 503 for this server until it resolves, then serves it`,
          });
        })(),
      );
    }
  }
  await Promise.all(checks);
  await resolver.close();
  return issues.sort((a, b) => a.line - b.line || a.col - b.col);
}
