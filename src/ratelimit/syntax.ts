/**
 * The syntax of a route's `rate_limit`: the rate (`100/s`, `30/m`), the key (`client_ip`,
 * `header:NAME`) and the store (`local`, `redis://host:port/db`, `unix:///path/redis.sock`).
 * Each parser returns the value or a sentence saying what is wrong and what to write; the
 * config checks (positions) and the normalizer (values) and the Redis store (connection
 * options) all use these, so a value `portico check` accepts is one the master can use.
 */

/** A parsed value, or an operator-facing reason it is invalid. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const RATE = /^(\d+(?:\.\d+)?|\.\d+)\s*(r?)\s*\/\s*([a-z]+)$/i;

/** Seconds per unit a rate may be written in (nginx's limit_req knows r/s and r/m). */
const RATE_UNITS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60 };

/**
 * Parses a rate: a positive number of requests per second or per minute, `100/s`, `30/m`
 * (nginx's `100r/s` and `30r/m` too). Returns tokens per second.
 */
export function parseRate(input: string | number): Parsed<number> {
  const text = String(input).trim();
  if (/^\d+(?:\.\d+)?$/.test(text)) {
    return {
      ok: false,
      error: `rate '${text}' has no unit: write '${text}/s' for requests per second or '${text}/m' per minute`,
    };
  }
  const m = RATE.exec(text);
  const perUnit = m ? RATE_UNITS[(m[3] as string).toLowerCase()] : undefined;
  if (!m || perUnit === undefined) {
    const hour = /^(\d+(?:\.\d+)?)\s*r?\s*\/\s*(h|hour)$/i.exec(text);
    const hint = hour
      ? ` (${hour[1]}/h is ${Number((Number(hour[1]) / 60).toFixed(4))}/m)`
      : ", e.g. 100/s or 30/m";
    return {
      ok: false,
      error: `invalid rate '${text}': write a number of requests per second or per minute${hint}`,
    };
  }
  const count = Number(m[1]);
  if (count <= 0) {
    return {
      ok: false,
      error: `rate must be more than 0 (got '${text}'): to refuse every request write a route with 'return: { status: 429 }'`,
    };
  }
  return { ok: true, value: count / perUnit };
}

/** What requests are counted by: each client address, or each value of a request header. */
export type RateKey = { kind: "client_ip" } | { kind: "header"; name: string };

/** RFC 9110 §5.6.2: a field name is a token. */
const HEADER_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const KEY_FORMS =
  "client_ip (each client address, after trusted_proxies) or header:NAME (e.g. header:x-api-key)";

/** Parses a rate-limit key: `client_ip` or `header:NAME` (the name lower-cased). */
export function parseRateKey(input: string): Parsed<RateKey> {
  const text = input.trim();
  if (text === "client_ip") return { ok: true, value: { kind: "client_ip" } };
  const header = /^header\s*:\s*(.*)$/i.exec(text);
  if (header) {
    const name = (header[1] as string).trim();
    if (name !== "" && HEADER_TOKEN.test(name))
      return { ok: true, value: { kind: "header", name: name.toLowerCase() } };
    return {
      ok: false,
      error: `invalid rate_limit key '${text}': '${name}' is not a header name; write header:NAME with letters, digits and - (e.g. header:x-api-key)`,
    };
  }
  const near = /^(client[-_ ]?ip|ip|remote_addr|binary_remote_addr|client|addr(ess)?)$/i.test(text)
    ? "; did you mean 'client_ip'?"
    : /^(cookie|uri|query|arg)[:_]/i.test(text)
      ? "; cookies, the URI and query arguments cannot be keys"
      : "";
  return { ok: false, error: `invalid rate_limit key '${text}': write ${KEY_FORMS}${near}` };
}

/** Connection options for one Redis server, as node-redis takes them. */
export interface RedisTarget {
  /** `redis://host:port` for TCP (credentials and database are given apart). */
  url: string | undefined;
  /** Unix socket path, for `unix://`. */
  socketPath: string | undefined;
  database: number;
  username: string | undefined;
  password: string | undefined;
  /** The URL without its password, for logs. */
  display: string;
}

/** Where a limit's buckets are kept. */
export type StoreTarget = { kind: "local" } | { kind: "redis"; redis: RedisTarget };

const STORE_FORMS =
  "local (this instance), redis://[user:password@]host[:port][/db] or unix:///path/to/redis.sock[?db=N]";

const storeError = (text: string, why: string): Parsed<StoreTarget> => ({
  ok: false,
  error: `invalid rate_limit store '${text}': ${why} (a store is ${STORE_FORMS})`,
});

function parseDatabase(raw: string): Parsed<number> {
  if (!/^\d{1,5}$/.test(raw)) {
    return { ok: false, error: `the database must be a number, e.g. /0 (got '${raw}')` };
  }
  return { ok: true, value: Number(raw) };
}

/**
 * Parses a store: `local`, `redis://[user:password@]host[:port][/db]` (port 6379, db 0 by
 * default) or `unix:///absolute/path.sock[?db=N][&password=P]`. TLS (`rediss://`) is refused:
 * it is not supported yet.
 */
export function parseStore(input: string): Parsed<StoreTarget> {
  const text = input.trim();
  if (text === "local") return { ok: true, value: { kind: "local" } };
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    return storeError(text, "it is neither 'local' nor a URL");
  }
  if (scheme === "rediss") {
    return storeError(
      text,
      "TLS to Redis (rediss://) is not supported yet: reach Redis on a private network or a unix socket",
    );
  }
  if (scheme !== "redis" && scheme !== "unix") {
    return storeError(text, `unknown scheme '${scheme}://'`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return storeError(text, "it is not a well-formed URL");
  }
  const username = url.username === "" ? undefined : decodeURIComponent(url.username);
  if (scheme === "unix") {
    // unix:///run/redis.sock: the host part is empty and the path is the socket's.
    if (url.host !== "") {
      return storeError(
        text,
        `a unix socket URL has no host (got '${url.host}'): write three slashes, unix:///path/to/redis.sock`,
      );
    }
    const path = decodeURIComponent(url.pathname);
    if (path === "/" || path.endsWith("/")) return storeError(text, "the socket path is missing");
    let database = 0;
    let password: string | undefined;
    for (const [name, value] of url.searchParams) {
      if (name === "db") {
        const db = parseDatabase(value);
        if (!db.ok) return storeError(text, db.error);
        database = db.value;
      } else if (name === "password") {
        password = value;
      } else {
        return storeError(text, `unknown parameter '${name}' (known: db, password)`);
      }
    }
    return {
      ok: true,
      value: {
        kind: "redis",
        redis: {
          url: undefined,
          socketPath: path,
          database,
          username,
          password,
          display: `unix://${path}${database === 0 ? "" : `?db=${database}`}`,
        },
      },
    };
  }
  if (url.hostname === "") return storeError(text, "the host is missing");
  if (url.search !== "" || url.hash !== "")
    return storeError(text, "a redis:// URL takes no ?parameters or #fragment");
  const dbPart = url.pathname.replace(/^\//, "");
  let database = 0;
  if (dbPart !== "") {
    const db = parseDatabase(dbPart);
    if (!db.ok) return storeError(text, db.error);
    database = db.value;
  }
  const password = url.password === "" ? undefined : decodeURIComponent(url.password);
  const credentials = username ? `${username}${password ? ":***" : ""}@` : password ? ":***@" : "";
  return {
    ok: true,
    value: {
      kind: "redis",
      redis: {
        url: `redis://${url.host}`,
        socketPath: undefined,
        database,
        username,
        password,
        display: `redis://${credentials}${url.host}/${database}`,
      },
    },
  };
}
