/**
 * `portico dns NAME [TYPE] [--server URL]...`: a dig-like query through Portico's own DNS
 * layer, for operators debugging upstream discovery. Prints the answer with TTLs, which
 * nameserver and transport answered, and the time taken. With several `--server`, each is
 * asked on its own and the results are printed one after the other; one failing server does
 * not fail the others.
 */
import { readFileSync } from "node:fs";
import { parseDuration } from "./config/units.js";
import {
  type DnsAnswer,
  isNoService,
  lookupEach,
  NO_SERVICE,
  type QueryType,
  type TlsOptions,
} from "./dns/index.js";

const TYPES: readonly QueryType[] = ["A", "AAAA", "SRV", "CNAME"];

export interface DnsCommandOptions {
  servers: string[];
  ca?: string;
  cert?: string;
  key?: string;
  timeout?: string;
}

/** Run the command; returns the exit code (0 when at least one server answered, 1 otherwise, 2 for bad input). */
export async function dnsCommand(args: string[], options: DnsCommandOptions): Promise<number> {
  const [name, typeArg = "A", ...extra] = args;
  const type = typeArg.toUpperCase() as QueryType;
  if (!name || extra.length > 0 || !TYPES.includes(type)) {
    process.stderr.write(
      `portico dns: usage: portico dns NAME [${TYPES.join("|")}] [--server URL]... [--ca FILE] [--cert FILE --key FILE] [--timeout 2s]\n`,
    );
    return 2;
  }
  let tls: TlsOptions;
  let timeoutMs: number | undefined;
  try {
    tls = {
      ca: options.ca === undefined ? undefined : readFileSync(options.ca),
      cert: options.cert === undefined ? undefined : readFileSync(options.cert),
      key: options.key === undefined ? undefined : readFileSync(options.key),
    };
    if (options.timeout !== undefined) {
      const parsed = parseDuration(options.timeout);
      if (!parsed.ok) throw new Error(`--timeout: ${parsed.error}`);
      timeoutMs = parsed.value;
    }
  } catch (err) {
    process.stderr.write(`portico dns: ${(err as Error).message}\n`);
    return 2;
  }
  // No --server: exactly what the proxy would do (hosts file, then resolv.conf). With --server:
  // ask that server only, once, as dig does.
  const targets = options.servers.length > 0 ? options.servers : [undefined];
  const results = (await lookupEach(name, type, targets, { tls, timeoutMs })).map((r) => ({
    server: r.server,
    ok: r.ok,
    text: r.ok
      ? formatAnswer(r.answer, r.ms)
      : r.code === "BAD_SERVER"
        ? `;; ${r.message}\n`
        : `;; ${r.code}: ${r.message}\n;; time ${r.ms.toFixed(1)} ms\n`,
  }));
  const out = results.map(
    ({ server, text }) => `;; server ${server ?? "(hosts file, then resolv.conf)"}\n${text}`,
  );
  process.stdout.write(`${out.join("\n")}`);
  return results.some((r) => r.ok) ? 0 : 1;
}

function formatAnswer(answer: DnsAnswer, ms: number): string {
  const { source } = answer;
  const from =
    source.kind === "hosts"
      ? "the hosts file"
      : `${source.server} over ${source.transport}${source.kind === "cache" ? " (cached)" : ""}`;
  const lines = [
    `;; ${answer.name} ${answer.type}: ${answer.records.length} record(s) from ${from} in ${ms.toFixed(1)} ms${answer.stale ? " (STALE)" : ""}`,
  ];
  for (const c of answer.cnames) lines.push(`${c.name}.\t${c.ttl}\tIN\tCNAME\t${c.target}.`);
  for (const r of answer.records) {
    if (r.type === "SRV")
      lines.push(`${r.name}.\t${r.ttl}\tIN\tSRV\t${r.priority} ${r.weight} ${r.port} ${r.target}.`);
    else if (r.type === "CNAME") lines.push(`${r.name}.\t${r.ttl}\tIN\tCNAME\t${r.target}.`);
    else lines.push(`${r.name}.\t${r.ttl}\tIN\t${r.type}\t${r.address}`);
  }
  if (isNoService(answer.records)) lines.push(`;; SRV target '.': ${NO_SERVICE}`);
  return `${lines.join("\n")}\n`;
}
