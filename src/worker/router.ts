/**
 * Routing, as nginx does it: first the server by Host among the servers on the listen
 * address the request came in on (exact name, then the longest `*.suffix` wildcard, then
 * the default server), then the route by path (exact, then regexes in file order, then the
 * longest prefix).
 */
import { compileRouteRegex } from "../config/regex.js";
import type { Route, Server } from "../config/types.js";
import { type CompiledEdits, compileEdits } from "./headers.js";

/** A route with its compiled matcher and header edits. */
export interface CompiledRoute {
  route: Route;
  regex?: RegExp;
  /** Request header edits, forwarding headers included. */
  requestEdits: CompiledEdits;
  responseEdits: CompiledEdits;
}

function compileRoute(route: Route, hsts: string | undefined, regex?: RegExp): CompiledRoute {
  const response = route.responseHeaders;
  // HSTS is one more `set` edit (replacing an upstream's own), unless the route sets it itself.
  const withHsts =
    hsts === undefined || "strict-transport-security" in response.set
      ? response
      : { set: { ...response.set, "strict-transport-security": hsts }, remove: response.remove };
  return {
    route,
    regex,
    requestEdits: compileEdits(route.requestHeaders, true),
    responseEdits: compileEdits(withHsts, false),
  };
}

/** The Strict-Transport-Security value of a server (RFC 6797 §6.1). */
export function hstsValue(hsts: NonNullable<Server["hsts"]>): string {
  let value = `max-age=${hsts.maxAge}`;
  if (hsts.includeSubdomains) value += "; includeSubDomains";
  if (hsts.preload) value += "; preload";
  return value;
}

/** Most distinct Host header values remembered per listen address (clients choose them). */
const HOST_CACHE_SIZE = 1024;

/** One server's routes, compiled for lookup. */
export class ServerRoutes {
  readonly server: Server;
  /** With https_redirect, on a plain address: where requests are sent (port 0 is set once bound). */
  readonly httpsOrigin: { port: number } | undefined;
  private readonly exact = new Map<string, CompiledRoute>();
  private readonly regexes: CompiledRoute[] = [];
  /** Prefix routes, longest prefix first. */
  private readonly prefixes: CompiledRoute[] = [];

  /** `tls`: the routes serve a TLS address (HSTS is added there, and only there). */
  constructor(server: Server, tls: boolean) {
    this.server = server;
    const tlsPort = server.listen.find((l) => l.tls)?.port;
    this.httpsOrigin = !tls && server.httpsRedirect && tlsPort !== undefined ? { port: tlsPort } : undefined;
    const hsts = tls && server.hsts ? hstsValue(server.hsts) : undefined;
    for (const route of server.routes) {
      const m = route.match;
      if (m.kind === "exact") {
        if (!this.exact.has(m.path)) this.exact.set(m.path, compileRoute(route, hsts));
      } else if (m.kind === "regex") {
        this.regexes.push(compileRoute(route, hsts, compileRouteRegex(m.source, m.caseInsensitive)));
      } else {
        this.prefixes.push(compileRoute(route, hsts));
      }
    }
    this.prefixes.sort(
      (a, b) =>
        (b.route.match as { path: string }).path.length - (a.route.match as { path: string }).path.length,
    );
  }

  /** The route for a normalized request path, or undefined (404). */
  match(path: string): CompiledRoute | undefined {
    const exact = this.exact.get(path);
    if (exact) return exact;
    for (const r of this.regexes) if (r.regex?.test(path)) return r;
    for (const r of this.prefixes) if (path.startsWith((r.route.match as { path: string }).path)) return r;
    return undefined;
  }
}

/** One route as `portico explain` weighs it against a path. */
export interface RouteVerdict {
  route: Route;
  /** The route matches the path (whether or not it won). */
  matches: boolean;
  /** This route is the one that answers. */
  chosen: boolean;
  why: string;
}

/**
 * `portico explain`: every route of `routes` weighed against `path` in the order `match`
 * tries them (exact, regexes in file order, longest prefix first), saying which won and why
 * the others did not. Mirrors `match`, which stays free of this bookkeeping.
 */
export function explainRoutes(routes: ServerRoutes, path: string): RouteVerdict[] {
  const chosen = routes.match(path);
  const verdicts: RouteVerdict[] = [];
  const ordered = [...routes.server.routes].sort(
    (a, b) => rank(a) - rank(b) || prefixLength(b) - prefixLength(a),
  );
  let decided = false;
  for (const route of ordered) {
    const m = route.match;
    const matches =
      m.kind === "exact"
        ? m.path === path
        : m.kind === "regex"
          ? compileRouteRegex(m.source, m.caseInsensitive).test(path)
          : path.startsWith(m.path);
    const isChosen = chosen?.route === route;
    let why: string;
    if (isChosen) {
      why =
        m.kind === "exact"
          ? "exact match: exact routes are tried first"
          : m.kind === "regex"
            ? "the first regex in file order that matches (no exact route matched)"
            : "the longest matching prefix (no exact or regex route matched)";
    } else if (!matches) {
      why =
        m.kind === "exact"
          ? "not this exact path"
          : m.kind === "regex"
            ? "regex does not match"
            : "not a prefix of the path";
    } else {
      why = decided
        ? m.kind === "prefix"
          ? "matches too, but a route tried before it won (shorter prefix, or an exact/regex route)"
          : "matches too, but a route tried before it won"
        : "matches, but is a duplicate of an earlier route";
    }
    if (isChosen) decided = true;
    verdicts.push({ route, matches, chosen: isChosen, why });
  }
  return verdicts;
}

const rank = (route: Route): number =>
  route.match.kind === "exact" ? 0 : route.match.kind === "regex" ? 1 : 2;
const prefixLength = (route: Route): number => (route.match.kind === "prefix" ? route.match.path.length : 0);

/** The servers sharing one listen address, and the Host -> server lookup among them. */
export class HostRouter {
  private readonly exact = new Map<string, ServerRoutes>();
  /** Wildcards as [".suffix", server], longest suffix first. */
  private readonly wildcards: Array<[string, ServerRoutes]> = [];
  private readonly fallback: ServerRoutes;
  /** Host header value as received -> its server: most requests repeat a few values. */
  private readonly cache = new Map<string, ServerRoutes>();

  /** The servers on this address, compiled, in config order. */
  readonly servers: readonly ServerRoutes[];

  /** `tls`: the servers are reached on a TLS address. */
  constructor(servers: readonly Server[], tls = false) {
    const compiled = servers.map((s) => new ServerRoutes(s, tls));
    this.servers = compiled;
    for (const sr of compiled) {
      for (const name of sr.server.exactNames) if (!this.exact.has(name)) this.exact.set(name, sr);
      for (const suffix of sr.server.wildcardNames) this.wildcards.push([suffix, sr]);
    }
    this.wildcards.sort((a, b) => b[0].length - a[0].length);
    // nginx: the server marked default, else the first server on this address.
    this.fallback = compiled.find((sr) => sr.server.isDefault) ?? compiled[0];
  }

  /** The server for a request's Host header (port and trailing dot ignored, case-insensitive). */
  serverFor(hostHeader: string | undefined): ServerRoutes {
    if (!hostHeader) return this.fallback;
    const cached = this.cache.get(hostHeader);
    if (cached) return cached;
    const found = this.lookup(normalizeHost(hostHeader));
    // Bounded: a client sending endless distinct Host values only resets the cache.
    if (this.cache.size >= HOST_CACHE_SIZE) this.cache.clear();
    this.cache.set(hostHeader, found);
    return found;
  }

  /** The server for a TLS SNI name (already lower case, no port): exact, wildcard, default. */
  serverForName(name: string | undefined): ServerRoutes {
    return name ? this.lookup(name.toLowerCase()) : this.fallback;
  }

  /** True when a server on this address names `host` (exact or wildcard): the default server does not count. */
  serves(host: string): boolean {
    const name = normalizeHost(host);
    if (this.exact.has(name)) return true;
    for (const [suffix] of this.wildcards) if (name.endsWith(suffix)) return true;
    return false;
  }

  /** `portico explain`: the server for `host` and how it was chosen. */
  explainHost(host: string | undefined): { server: ServerRoutes; why: string } {
    if (!host) return { server: this.fallback, why: this.fallbackWhy("the request has no Host") };
    const name = normalizeHost(host);
    const exact = this.exact.get(name);
    if (exact) return { server: exact, why: `exact server name '${name}' (exact names win over wildcards)` };
    for (const [suffix, sr] of this.wildcards) {
      if (name.endsWith(suffix))
        return { server: sr, why: `wildcard '*${suffix}' (the longest wildcard that matches '${name}')` };
    }
    return { server: this.fallback, why: this.fallbackWhy(`no server name matches '${name}'`) };
  }

  private fallbackWhy(cause: string): string {
    return this.fallback.server.isDefault
      ? `${cause}: the server marked default on this address`
      : `${cause}: the first server on this address (none is marked default)`;
  }

  private lookup(host: string): ServerRoutes {
    const exact = this.exact.get(host);
    if (exact) return exact;
    for (const [suffix, sr] of this.wildcards) if (host.endsWith(suffix)) return sr;
    return this.fallback;
  }
}

/** Lower-case a Host header value and drop its port and trailing dot. */
export function normalizeHost(value: string): string {
  let host = value.toLowerCase();
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    host = end > 0 ? host.slice(0, end + 1) : host;
  } else {
    const colon = host.indexOf(":");
    if (colon >= 0) host = host.slice(0, colon);
  }
  return host.endsWith(".") ? host.slice(0, -1) : host;
}

/** A request target as routing sees it. */
export interface Target {
  /**
   * The path routes match on (nginx's `$uri`): percent-decoded, dot segments removed
   * (RFC 3986 §5.2.4) and repeated slashes merged, so every spelling of a path matches the
   * same route.
   */
  path: string;
  /** `?...` as received, or "". */
  query: string;
  /** Path and query as received (origin-form): what the upstream is sent, byte for byte. */
  origin: string;
  /** The authority of an absolute-form target (`GET http://host/x`), which wins over Host. */
  authority: string | undefined;
}

/** True when a path needs decoding or normalizing (the common path does not). */
function needsNormalizing(path: string): boolean {
  return path.includes("%") || path.includes("/.") || path.includes("//");
}

/** Parse a request target, or say why it is refused (400). */
export function parseTarget(target: string): Target | string {
  let origin = target;
  let authority: string | undefined;
  if (target.charCodeAt(0) !== 0x2f) {
    const m = /^https?:\/\/([^/?#]*)/i.exec(target);
    if (!m) return `request target '${clip(target)}' is not a path or an http(s) URL`;
    authority = m[1] as string;
    const at = authority.lastIndexOf("@");
    if (at >= 0) return "request target carries user information ('user@host')";
    if (authority === "") return "absolute request target without a host";
    origin = target.slice(m[0].length);
    if (origin === "" || origin.charCodeAt(0) === 0x3f) origin = `/${origin}`;
  }
  const q = origin.indexOf("?");
  const raw = q < 0 ? origin : origin.slice(0, q);
  const query = q < 0 ? "" : origin.slice(q);
  if (!needsNormalizing(raw)) return { path: raw, query, origin, authority };
  const path = normalizePath(raw);
  if (path.startsWith("!")) return path.slice(1);
  return { path, query, origin, authority };
}

/**
 * Decode percent-escapes, merge slashes and remove dot segments. A refusal comes back as
 * `!reason` (one string, so the common case allocates nothing more).
 */
function normalizePath(raw: string): string {
  let decoded = raw;
  if (raw.includes("%")) {
    if (/%(?![0-9a-fA-F]{2})/.test(raw)) return `!malformed percent-encoding in path '${clip(raw)}'`;
    const bytes = Buffer.from(
      raw.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
      "latin1",
    );
    if (bytes.includes(0)) return "!path contains an encoded NUL (%00)";
    decoded = bytes.toString("utf8");
  }
  const out: string[] = [];
  const segments = decoded.split("/");
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] as string;
    const last = i === segments.length - 1;
    if (seg === "..") {
      if (out.length === 0) return `!path '${clip(raw)}' climbs above the root`;
      out.pop();
      if (last) out.push("");
    } else if (seg === "." || (seg === "" && !last)) {
      if (last) out.push("");
    } else {
      out.push(seg);
    }
  }
  return `/${out.join("/")}`;
}

/** A normalized path as a request target path again (for a route that rewrites it). */
export function encodePath(path: string): string {
  return encodeURI(path).replace(/[?#]/g, (c) => (c === "?" ? "%3F" : "%23"));
}

function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}...` : text;
}
