/**
 * `portico explain -c FILE URL [--method M] [--header 'K: V']...`: which server and route a
 * request would match and why (which rule won over which), the upstream, its peers now
 * (resolved through Portico's DNS layer, with their health when a master with an admin
 * listener runs), the peer the balancer would pick, and the request line and headers that
 * would go upstream. Uses the proxy's own router, discovery and balancers, so it cannot
 * drift from what the proxy does. Exit 0 when a route answers, 1 when nothing matches (or the
 * config is invalid), 2 for bad input.
 */
import type { IncomingHttpHeaders } from "node:http";
import { pino } from "pino";
import { formatIssue, loadConfig } from "./config/load.js";
import type { Config, Server } from "./config/types.js";
import type { StatusDocument } from "./observability/status.js";
import { Discovery } from "./upstream/discovery.js";
import { type PeerTable, serverLabel, upstreamPeers } from "./upstream/peer-table.js";
import { UpstreamGroup } from "./upstream/upstream-group.js";
import { hashKeyOf, upstreamTarget } from "./worker/handler.js";
import { upstreamRequestHeaders } from "./worker/headers.js";
import { explainRoutes, HostRouter, parseTarget } from "./worker/router.js";

/** How long names may take to resolve before explain answers with what it has. */
const DNS_WAIT_MS = 3000;
/** How long the running master's admin listener may take to give its status. */
const ADMIN_WAIT_MS = 1000;
/** The client address explain pretends the request came from. */
const CLIENT = "127.0.0.1";

export interface ExplainOptions {
  method?: string;
  headers: string[];
}

/** Run the command; returns the exit code. */
export async function explainCommand(file: string, args: string[], opts: ExplainOptions): Promise<number> {
  const out = (line = "") => process.stdout.write(`${line}\n`);
  const fail = (message: string, code = 1) => {
    process.stderr.write(`portico explain: ${message}\n`);
    return code;
  };
  const [raw, ...extra] = args;
  if (!raw || extra.length > 0) {
    return fail(
      "usage: portico explain -c FILE URL [--method GET] [--header 'Name: value']...   e.g. portico explain http://api.example.com/v1/users",
      2,
    );
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail(`'${raw}' is not a URL: write it whole, e.g. http://example.com/path`, 2);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return fail(`'${raw}': only http:// and https:// URLs reach Portico`, 2);
  const method = (opts.method ?? "GET").toUpperCase();
  const headers: IncomingHttpHeaders = {};
  for (const h of opts.headers) {
    const colon = h.indexOf(":");
    if (colon <= 0) return fail(`--header '${h}': write it as 'Name: value'`, 2);
    headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
  }
  headers.host ??= url.host;

  const { config, issues } = loadConfig(file);
  if (!config) {
    for (const issue of issues) process.stderr.write(`${formatIssue(issue)}\n`);
    return fail(`${file} is invalid; nothing to explain`);
  }
  const tls = url.protocol === "https:";
  const port = Number(url.port || (tls ? 443 : 80));
  out(`request: ${method} ${url.href}   (Host: ${headers.host}; from ${CLIENT})`);

  // 1. The listen address: the servers that listen on the URL's port, with its TLS flag.
  const onPort = config.servers.filter((s) => s.listen.some((l) => l.port === port && l.tls === tls));
  if (onPort.length === 0) {
    const listening = config.servers.flatMap((s) =>
      s.listen.map((l) => `${l.host}:${l.port}${l.tls ? " (tls)" : ""}`),
    );
    return fail(
      `no server listens on port ${port}${tls ? " with tls" : " without tls"}; the config listens on ${[...new Set(listening)].join(", ")}`,
    );
  }
  const router = new HostRouter(onPort, tls);
  const { server: routes, why: serverWhy } = router.explainHost(headers.host as string);
  out(`server: ${describeServer(config, routes.server)}`);
  out(`  why: ${serverWhy}`);

  // 2. The route.
  const target = parseTarget(url.pathname + url.search);
  if (typeof target === "string") return fail(`the request target is refused before routing: ${target}`);
  const verdicts = explainRoutes(routes, target.path);
  const matched = routes.match(target.path);
  out(`route (path ${target.path}):`);
  for (const v of verdicts) {
    out(`  ${v.chosen ? "=>" : "  "} ${v.route.id}  ${describeMatch(v.route.match)}: ${v.why}`);
  }
  if (!matched) return fail(`no route of ${routes.server.label} matches ${target.path}: Portico answers 404`);
  const action = matched.route.action;
  if (action.kind === "return") {
    out(`action: return ${action.status} (${action.contentType}, ${Buffer.byteLength(action.body)} bytes)`);
    return 0;
  }
  if (action.kind === "redirect") {
    out(`action: redirect ${action.status} to ${action.to}`);
    return 0;
  }

  // 3. The upstream, its peers now, and the pick.
  const upstream = config.upstreams[action.upstream];
  if (!upstream) return fail(`internal: upstream '${action.upstream}' is not defined`);
  out(
    `upstream: ${upstream.name} (balance ${upstream.balance}; servers ${upstream.servers.map(serverLabel).join(", ")})`,
  );
  const table = await discover(config);
  const health = await runningHealth(config, upstream.name);
  out(`  health: ${health.note}`);
  const down = Object.entries(health.peers)
    .filter(([, h]) => h.health !== "healthy")
    .map(([peer]) => peer);
  const group = new UpstreamGroup(upstream, config.timeouts, { ...table, down: { [upstream.name]: down } });
  try {
    const { peers } = upstreamPeers(upstream, table);
    const key = group.hashKey
      ? hashKeyOf(group.hashKey, CLIENT, headers, target.path, target.query)
      : undefined;
    const pick = group.pick(undefined, key);
    out(`  peers (${peers.length}):`);
    for (const spec of peers) {
      const origin = spec.origin;
      const from =
        origin?.kind === "service"
          ? `SRV ${origin.name}: ${origin.record}`
          : origin?.kind === "name"
            ? `DNS ${origin.name}`
            : "configured address";
      const h = health.peers[spec.key];
      const state = h ? `${h.health}${h.why ? ` (${h.why})` : ""}` : "health unknown";
      out(
        `    ${pick?.address === spec.key ? "=>" : "  "} ${spec.key}  weight ${spec.weight}  priority ${spec.priority}  from ${from}  ${state}`,
      );
    }
    for (const why of group.missing) out(`    no peer from ${why}`);
    if (!pick) {
      out("  pick: none: Portico answers 503");
      return 0;
    }
    out(`  pick: ${pick.address}${key !== undefined ? ` (hash key '${key}')` : ""}`);
  } finally {
    await group.close();
  }

  // 4. What goes upstream.
  const sent = upstreamRequestHeaders(headers, matched.requestEdits, {
    remote: CLIENT,
    trusted: false,
    proto: tls ? "https" : "http",
    host: headers.host as string,
    requestId: "<generated per request>",
    via: "1.1 portico-<instance>",
  });
  out("sent upstream:");
  out(`  ${method} ${upstreamTarget(matched.route, target)} HTTP/1.1`);
  for (let i = 0; i < sent.length; i += 2) {
    const value = sent[i + 1];
    out(`  ${sent[i]}: ${Array.isArray(value) ? value.join(", ") : value}`);
  }
  return 0;
}

function describeServer(config: Config, server: Server): string {
  const index = config.servers.indexOf(server);
  const names = [...server.exactNames, ...server.wildcardNames.map((s) => `*${s}`)];
  return `servers[${index}] ${names.length > 0 ? names.join(", ") : "(no server_names)"}${server.isDefault ? " (default)" : ""}`;
}

function describeMatch(m: Server["routes"][number]["match"]): string {
  if (m.kind === "exact") return `exact ${m.path}`;
  if (m.kind === "regex") return `regex ${m.source}${m.caseInsensitive ? " (ignore case)" : ""}`;
  return `prefix ${m.path}`;
}

/** The peer table as the proxy would learn it now: the config's names resolved through the DNS layer. */
async function discover(config: Config): Promise<PeerTable> {
  const discovery = new Discovery(config.dns, pino({ level: "silent" }));
  try {
    discovery.setConfigs([config]);
    await discovery.settled(DNS_WAIT_MS);
    return discovery.table;
  } finally {
    await discovery.stop();
  }
}

/** The health of `upstream`'s peers from the running master's admin listener, when there is one. */
async function runningHealth(
  config: Config,
  upstream: string,
): Promise<{ note: string; peers: Record<string, { health: string; why?: string }> }> {
  const admin = config.admin;
  if (!admin) return { note: "unknown (no admin listener configured to ask)", peers: {} };
  const host = admin.host.includes(":") ? `[${admin.host}]` : admin.host;
  const at = `http://${host}:${admin.port}/status`;
  try {
    const res = await fetch(at, {
      headers: admin.token ? { authorization: `Bearer ${admin.token}` } : {},
      signal: AbortSignal.timeout(ADMIN_WAIT_MS),
    });
    if (!res.ok) return { note: `unknown (${at} answered ${res.status})`, peers: {} };
    const status = (await res.json()) as StatusDocument;
    const peers: Record<string, { health: string; why?: string }> = {};
    for (const p of status.upstreams.find((u) => u.name === upstream)?.peers ?? [])
      peers[p.address] = { health: p.health, ...(p.why ? { why: p.why } : {}) };
    return { note: `from the running master (${at})`, peers };
  } catch (err) {
    return { note: `unknown (no running master answered at ${at}: ${(err as Error).message})`, peers: {} };
  }
}
