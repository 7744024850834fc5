/**
 * Checks that JSON Schema expresses badly, done in code so each gets a clear message:
 * one matcher and one action per route, references to upstreams, regexes that compile,
 * redirect variables, and server names / default servers that collide on a listen address.
 * They run on the data after ajv filled in defaults, and tolerate parts the schema rejected.
 */

import { checkServerName } from "./formats.js";
import { compileRouteRegex } from "./regex.js";
import { quoteList, suggestion } from "./suggest.js";
import type { ConfigIssue } from "./types.js";
import { parseListenAddress } from "./units.js";
import type { DataPath, SourceDocument } from "./yaml-source.js";

type Data = Record<string, unknown>;

const isRecord = (value: unknown): value is Data =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const listOf = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

const MATCHERS = ["exact", "path", "regex"] as const;
const ACTIONS = ["upstream", "return", "redirect"] as const;

/** Variables a redirect target may contain (nginx names). */
export const REDIRECT_VARIABLES = ["scheme", "host", "request_uri", "uri", "args"] as const;

/** Checks one route: matcher/action counts, option combinations, regex, upstream, redirect. */
function checkRoute(
  route: Data,
  path: DataPath,
  upstreamNames: string[],
  source: SourceDocument,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (key: string) => source.keyAt(path, key);
  const value = (key: string) => source.valueAt([...path, key]);
  const matchers = MATCHERS.filter((k) => k in route);
  const actions = ACTIONS.filter((k) => k in route);

  if (matchers.length === 0) {
    issues.push(
      source.issue(
        source.valueAt(path),
        "route has no matcher: add one of 'exact: /path', 'path: /prefix' or 'regex: ^/pattern'",
      ),
    );
  } else if (matchers.length > 1) {
    issues.push(
      source.issue(
        at(matchers[1] as string),
        `route has more than one matcher (${quoteList(matchers)}): keep exactly one and write a separate route for the other`,
      ),
    );
  }
  if (actions.length === 0) {
    issues.push(
      source.issue(
        source.valueAt(path),
        "route has no action: add one of 'upstream: NAME', 'return: {status: ...}' or 'redirect: {to: ...}'",
      ),
    );
  } else if (actions.length > 1) {
    issues.push(
      source.issue(
        at(actions[1] as string),
        `route has more than one action (${quoteList(actions)}): keep exactly one and write a separate route for the other`,
      ),
    );
  }
  if (route.strip_prefix === true && !("path" in route && "upstream" in route)) {
    issues.push(
      source.issue(
        at("strip_prefix"),
        "strip_prefix only works on a route with both 'path: /prefix' and 'upstream: NAME'; remove it",
      ),
    );
  }
  if (route.ignore_case === true && !("regex" in route)) {
    issues.push(
      source.issue(
        at("ignore_case"),
        "ignore_case only applies to 'regex' routes; remove it, or match with 'regex'",
      ),
    );
  }
  if (typeof route.regex === "string" && route.regex !== "") {
    try {
      compileRouteRegex(route.regex, route.ignore_case === true);
    } catch (error) {
      issues.push(
        source.issue(value("regex"), `invalid regex '${route.regex}': ${(error as Error).message}`),
      );
    }
  }
  if (typeof route.upstream === "string" && !upstreamNames.includes(route.upstream)) {
    const tail =
      upstreamNames.length > 0
        ? suggestion(route.upstream, upstreamNames, "defined upstreams")
        : "; no upstreams are defined: add it under 'upstreams:'";
    issues.push(source.issue(value("upstream"), `upstream '${route.upstream}' is not defined${tail}`));
  }
  const redirect = route.redirect;
  if (isRecord(redirect) && typeof redirect.to === "string") {
    for (const [, name] of redirect.to.matchAll(/\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
      if (!(REDIRECT_VARIABLES as readonly string[]).includes(name as string)) {
        issues.push(
          source.issue(
            source.valueAt([...path, "redirect", "to"]),
            `unknown variable '$${name}' in redirect target${suggestion(name as string, REDIRECT_VARIABLES, "known variables")}`,
          ),
        );
      }
    }
  }
  return issues;
}

/** Canonical `host:port` of a listen entry, or undefined when it is invalid (reported by the schema). */
function listenKey(entry: unknown): string | undefined {
  if (typeof entry !== "string" && typeof entry !== "number") return undefined;
  const parsed = parseListenAddress(entry);
  if (!parsed.ok) return undefined;
  const { host, port } = parsed.value;
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Server names and default servers must be unique per listen address (host + port): a
 * request on that address must reach exactly one server.
 */
function checkServerCollisions(servers: unknown[], source: SourceDocument): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const nameOwners = new Map<string, { line: number; server: number }>();
  const defaultOwners = new Map<string, number>();
  servers.forEach((server, i) => {
    if (!isRecord(server)) return;
    const listen = Array.isArray(server.listen) ? server.listen : [server.listen];
    const addresses = [...new Set(listen.map(listenKey).filter((k) => k !== undefined))];
    const serverLine = source.valueAt(["servers", i]).line;
    listOf(server.server_names).forEach((name, j) => {
      if (typeof name !== "string" || checkServerName(name) !== undefined) return;
      const at = source.valueAt(["servers", i, "server_names", j]);
      for (const address of addresses) {
        const key = `${address} ${name.toLowerCase()}`;
        const first = nameOwners.get(key);
        if (!first) {
          nameOwners.set(key, { line: at.line, server: i });
          continue;
        }
        const where =
          first.server === i
            ? `this server already lists it (line ${first.line})`
            : `the server at line ${source.valueAt(["servers", first.server]).line} already uses it (line ${first.line})`;
        issues.push(
          source.issue(
            at,
            `server name '${name}' appears twice on ${address}: ${where}; a name may be used once per listen address`,
          ),
        );
        break;
      }
    });
    if (server.default !== true) return;
    for (const address of addresses) {
      const first = defaultOwners.get(address);
      if (first === undefined) {
        defaultOwners.set(address, serverLine);
        continue;
      }
      issues.push(
        source.issue(
          source.valueAt(["servers", i, "default"]),
          `two default servers on ${address}: the server at line ${first} is already the default; only one server per listen address may have 'default: true'`,
        ),
      );
      break;
    }
  });
  return issues;
}

/** Runs every cross-field check on validated-and-defaulted (possibly partly invalid) data. */
export function semanticIssues(data: unknown, source: SourceDocument): ConfigIssue[] {
  if (!isRecord(data)) return [];
  const upstreamNames = isRecord(data.upstreams) ? Object.keys(data.upstreams) : [];
  const servers = listOf(data.servers);
  const issues: ConfigIssue[] = [];
  servers.forEach((server, i) => {
    if (!isRecord(server)) return;
    listOf(server.routes).forEach((route, j) => {
      if (isRecord(route))
        issues.push(...checkRoute(route, ["servers", i, "routes", j], upstreamNames, source));
    });
  });
  issues.push(...checkServerCollisions(servers, source));
  return issues;
}
