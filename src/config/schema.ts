/**
 * The JSON Schema (draft-07) of `portico.yaml`. ajv validates every file against it and
 * fills in the defaults written here; `write-schema.ts` publishes it as
 * `conf/portico.schema.json` for editors. Checks that JSON Schema expresses badly (exactly
 * one matcher per route, references between upstreams and routes, ...) live in `checks.ts`.
 * Custom `format`s (duration, size, listen, ...) are defined in `formats.ts`.
 */

/** A plain JSON Schema object; kept loose on purpose, it is data that is written to disk. */
export type JsonSchema = { [key: string]: unknown };

const duration = (description: string, def: string): JsonSchema => ({
  description: `${description} Duration with a unit (ms, s, m, h, d). Default: ${def}.`,
  type: "string",
  format: "duration",
  default: def,
});

const headerEdits = (description: string): JsonSchema => ({
  description: `${description} Default: no edits.`,
  type: "object",
  additionalProperties: false,
  default: {},
  properties: {
    set: {
      description:
        "Headers to set: name -> value. Replaces any value already present. Names are case-insensitive. Default: none.",
      type: "object",
      propertyNames: { format: "header-name" },
      additionalProperties: { type: "string", description: "The header value." },
      default: {},
    },
    remove: {
      description: "Names of headers to remove. Default: none.",
      type: "array",
      items: { type: "string", format: "header-name", description: "A header name." },
      default: [],
    },
  },
});

const listenEntry: JsonSchema = {
  description:
    'An address to listen on: IP:port, [IPv6]:port, or a bare port meaning 0.0.0.0:port, optionally followed by a flag: `tls` (TLS with HTTP/2 and HTTP/1.1 by ALPN; the server needs `tls`) or `h2c` (plain HTTP/2 with prior knowledge besides HTTP/1.1), e.g. "127.0.0.1:8443 tls". Port 0 lets the OS pick.',
  type: ["string", "integer"],
  format: "listen",
  minimum: 0,
  maximum: 65535,
};

const routeSchema: JsonSchema = {
  description:
    "One route: exactly one matcher (exact, path or regex) and exactly one action (upstream, return or redirect).",
  type: "object",
  additionalProperties: false,
  properties: {
    exact: {
      description: "Matcher: the request path equals this path exactly (nginx `location =`). Starts with /.",
      type: "string",
      format: "path-prefix",
    },
    path: {
      description: "Matcher: the request path starts with this prefix (nginx `location`). Starts with /.",
      type: "string",
      format: "path-prefix",
    },
    regex: {
      description:
        "Matcher: a JavaScript regular expression tested against the request path (nginx `location ~`).",
      type: "string",
      minLength: 1,
    },
    ignore_case: {
      description: "With `regex`: match case-insensitively (nginx `location ~*`). Default: false.",
      type: "boolean",
      default: false,
    },
    upstream: {
      description: "Action: forward the request to the upstream of this name (a key of `upstreams`).",
      type: "string",
    },
    strip_prefix: {
      description:
        "With `path` and `upstream`: remove the matched prefix from the path before forwarding (`/api/users` -> `/users`). Default: false.",
      type: "boolean",
      default: false,
    },
    return: {
      description: "Action: answer directly with a fixed response.",
      type: "object",
      additionalProperties: false,
      required: ["status"],
      properties: {
        status: { description: "HTTP status code, 100-599.", type: "integer", minimum: 100, maximum: 599 },
        body: { description: 'Response body. Default: "" (empty).', type: "string", default: "" },
        content_type: {
          description: "Content-Type of the body. Default: text/plain; charset=utf-8.",
          type: "string",
          minLength: 1,
          default: "text/plain; charset=utf-8",
        },
      },
    },
    redirect: {
      description: "Action: answer with a redirect.",
      type: "object",
      additionalProperties: false,
      required: ["to"],
      properties: {
        to: {
          description:
            "Target URL or path (the Location header). May contain $scheme, $host, $request_uri, $uri and $args.",
          type: "string",
          minLength: 1,
        },
        status: {
          description: "Redirect status: 301, 302, 303, 307 or 308. Default: 302.",
          type: "integer",
          enum: [301, 302, 303, 307, 308],
          default: 302,
        },
      },
    },
    request_headers: headerEdits("Header edits applied to the request before it is forwarded upstream."),
    response_headers: headerEdits("Header edits applied to the response before it is sent to the client."),
    rate_limit: {
      description:
        "Limit the requests this route takes per key (a token bucket, as nginx's limit_req ... nodelay): over it, 429 with Retry-After. The rate holds for the whole instance (every worker together), or for every instance sharing the Redis of `store`. Default: no limit.",
      type: "object",
      additionalProperties: false,
      required: ["rate"],
      properties: {
        rate: {
          description:
            "Requests let through per second or per minute, on average: 100/s, 30/m (nginx's 100r/s also works). Required.",
          type: ["string", "number"],
        },
        burst: {
          description:
            "Requests let through at once above the rate (nginx's burst): with 0, one request per 1/rate seconds; with 50, 51 at once, then the rate. An integer >= 0. Default: 0.",
          type: "integer",
          minimum: 0,
          default: 0,
        },
        key: {
          description:
            "What is counted apart: client_ip (each client address, after trusted_proxies) or header:NAME (each value of that request header; requests without it share one bucket). Default: client_ip.",
          type: "string",
          default: "client_ip",
        },
        store: {
          description:
            "Where the buckets are kept: local (this instance: the master holds them for every worker), or a Redis server shared by every instance pointing at it: redis://[user:password@]host[:port][/db] or unix:///path/to/redis.sock[?db=N]. Redis down or slow (50 ms) is never a failed request: the instance falls back to its local buckets and says so in the log. Default: local.",
          type: "string",
          default: "local",
        },
      },
    },
  },
};

const certificateSchema: JsonSchema = {
  description:
    "One certificate: cert (PEM: the certificate, then its intermediates) and key (PEM private key). Without key, the key is read from the cert file (one combined PEM file).",
  type: "object",
  additionalProperties: false,
  required: ["cert"],
  properties: {
    cert: {
      description: "PEM file with the certificate chain (relative to the config file's folder).",
      type: "string",
      minLength: 1,
    },
    key: {
      description: "PEM file with the private key. Default: the key in the cert file.",
      type: "string",
      minLength: 1,
    },
  },
};

const tlsSchema: JsonSchema = {
  description:
    "TLS for this server's `tls` listen addresses: `auto` (a self-signed development certificate for its names and localhost, made once and kept in state_dir), or certificates. Read again on every reload.",
  type: ["string", "object"],
  format: "tls-auto",
  additionalProperties: false,
  required: ["certificates"],
  properties: {
    certificates: {
      description:
        "The server's certificates. SNI picks the one whose names match (exact, then wildcard); otherwise the first.",
      type: "array",
      minItems: 1,
      items: certificateSchema,
    },
    min_version: {
      description:
        "Oldest TLS version accepted: TLSv1.2 or TLSv1.3 (TLS 1.0 and 1.1 are never accepted). Servers sharing a listen address must agree. Default: TLSv1.2.",
      type: "string",
      enum: ["TLSv1.2", "TLSv1.3"],
      default: "TLSv1.2",
    },
    ciphers: {
      description:
        "OpenSSL cipher list for TLS 1.2 (TLS 1.3 always uses OpenSSL's AEAD suites). Servers sharing a listen address must agree. Default: Mozilla's intermediate list (ECDHE with AES-GCM or ChaCha20-Poly1305).",
      type: "string",
      minLength: 1,
    },
  },
};

const hstsSchema: JsonSchema = {
  description:
    "Send Strict-Transport-Security on responses over TLS (never over plain HTTP, RFC 6797). `true` for the defaults, or the details. Default: off.",
  type: ["boolean", "object"],
  additionalProperties: false,
  properties: {
    max_age: duration("How long browsers remember to use HTTPS only (max-age).", "365d"),
    include_subdomains: {
      description: "Add includeSubDomains. Default: false.",
      type: "boolean",
      default: false,
    },
    preload: {
      description:
        "Add preload (for the browsers' preload lists: needs include_subdomains and max_age of at least 365d). Default: false.",
      type: "boolean",
      default: false,
    },
  },
};

const size = (description: string, minimum: number, def: string | number | undefined): JsonSchema => ({
  description,
  type: ["integer", "string"],
  format: "size",
  minimum,
  ...(def === undefined ? {} : { default: def }),
});

/**
 * The limits a server may set for itself (`servers[]`) and the top-level `limits` gives the
 * defaults of; `def` is undefined on servers (they inherit).
 */
const requestLimits = (
  inherit: string,
  defaults?: Record<string, string | number>,
): Record<string, JsonSchema> => {
  const d = (key: string) => (defaults ? ` Default: ${defaults[key]}.` : ` ${inherit}`);
  return {
    max_url: size(
      `Longest request target (the URL in the request line), in bytes or with a unit; longer gets 414.${d("max_url")}`,
      0, // the smallest sensible value is checked in checks.ts, with its own message
      defaults?.max_url,
    ),
    max_header_size: size(
      `Largest request head (request line and header fields), in bytes or with a unit; larger gets 431.${d("max_header_size")}`,
      0,
      defaults?.max_header_size,
    ),
    max_headers: {
      description: `Most header fields in a request; more gets 431.${d("max_headers")}`,
      type: "integer",
      minimum: 1,
      maximum: 10000,
      ...(defaults ? { default: defaults.max_headers } : {}),
    },
    max_request_body: size(
      `Largest request body, in bytes or with a unit (512k, 10m, 1g); larger gets 413 (checked on Content-Length first, then counted while streaming). 0 = no limit.${d("max_request_body")}`,
      0,
      defaults?.max_request_body,
    ),
  };
};

const LIMIT_DEFAULTS = { max_url: "8k", max_header_size: "32k", max_headers: 100, max_request_body: 0 };

const limitsSchema: JsonSchema = {
  description:
    "Limits on what clients send, for every server (a server may set max_url, max_header_size, max_headers and max_request_body itself). Default: each key's own default.",
  type: "object",
  additionalProperties: false,
  default: {},
  properties: {
    ...requestLimits("", LIMIT_DEFAULTS),
    max_requests_per_connection: {
      description:
        "Requests one HTTP/1.1 connection (or HTTP/2 streams one connection) may carry; the last response says Connection: close (HTTP/2: GOAWAY). 0 = no limit. Default: 1000.",
      type: "integer",
      minimum: 0,
      default: 1000,
    },
    max_connections: {
      description:
        "Most client connections one worker keeps open; connections beyond it are refused at once and counted. 0 = no limit. Default: 10000.",
      type: "integer",
      minimum: 0,
      default: 10000,
    },
  },
};

const serverSchema: JsonSchema = {
  description: "A virtual server: the addresses it listens on, the host names it answers, and its routes.",
  type: "object",
  additionalProperties: false,
  required: ["listen", "routes"],
  properties: {
    listen: {
      description:
        'Where to accept connections: one address or a list. IP:port, [IPv6]:port, or a port (0.0.0.0:port), each optionally followed by `tls` or `h2c` ("443 tls"). Host names are not allowed. Required.',
      type: ["string", "integer", "array"],
      format: "listen",
      minimum: 0,
      maximum: 65535,
      minItems: 1,
      items: listenEntry,
    },
    server_names: {
      description:
        "Host names this server answers: exact names (example.com) or wildcards (*.example.com), case-insensitive. Default: [] (only reached as the default server).",
      type: "array",
      items: { description: "A host name or *.suffix wildcard.", type: "string", format: "server-name" },
      default: [],
    },
    default: {
      description:
        "Answer requests whose Host matches no server on the same listen address. At most one per address. Default: false.",
      type: "boolean",
      default: false,
    },
    ...requestLimits("Default: the top-level `limits` value."),
    tls: tlsSchema,
    https_redirect: {
      description:
        "Answer every request on this server's plain addresses with a 308 redirect to the same host, path and query over https, on the server's first `tls` address. Default: false.",
      type: "boolean",
      default: false,
    },
    hsts: hstsSchema,
    routes: {
      description: "The routes of this server. At least one.",
      type: "array",
      minItems: 1,
      items: routeSchema,
    },
  },
};

const FAMILIES = ["ipv4", "ipv6", "any", "prefer_ipv4", "prefer_ipv6"];

const familyDescription =
  "Which addresses of a DNS name become peers: ipv4 (A records only), ipv6 (AAAA only), any (both), prefer_ipv4 (A, or AAAA when the name has no A), prefer_ipv6 (AAAA, or A when the name has no AAAA).";

const removeAfterDescription =
  "How long a name must keep answering NXDOMAIN or no addresses before its peers are removed; a shorter glitch keeps them.";

const upstreamServerSchema: JsonSchema = {
  description:
    "One source of peers: exactly one of address (host:port) or service (an SRV name), and with address an optional weight.",
  type: "object",
  additionalProperties: false,
  properties: {
    address: {
      description:
        "host:port of the peer. An IP literal (10.0.0.5:8080, [::1]:8080) is one fixed peer; a DNS name (api.internal:8080) is resolved by the master and becomes one peer per address, following DNS changes within the TTL. Exactly one of address or service.",
      type: "string",
      format: "upstream-address",
    },
    service: {
      description:
        "An SRV name _service._proto.name (RFC 2782, e.g. _http._tcp.api.internal): each target and port becomes a peer; the lowest priority value with a peer takes the traffic, and SRV weights feed the balancer. Exactly one of address or service.",
      type: "string",
      format: "srv-name",
    },
    weight: {
      description:
        "With address only: relative share of requests, an integer >= 1, given to each address the name resolves to (SRV records carry their own weights). Default: 1.",
      type: "integer",
      minimum: 1,
      default: 1,
    },
  },
};

const upstreamSchema: JsonSchema = {
  description: "A named group of peers that routes forward to.",
  type: "object",
  additionalProperties: false,
  required: ["servers"],
  properties: {
    balance: {
      description:
        "Balancing policy: round_robin (smooth weighted round-robin, as nginx), least_conn (fewest requests in flight for the weight), random_two (the better of two random peers), hash (consistent hashing on hash.key: a key keeps its peer), first (the first available peer in order: active/standby). Default: round_robin.",
      type: "string",
      enum: ["round_robin", "least_conn", "random_two", "hash", "first"],
      default: "round_robin",
    },
    hash: {
      description: "With balance: hash, what is hashed and how. Required with balance: hash.",
      type: "object",
      additionalProperties: false,
      required: ["key"],
      properties: {
        key: {
          description:
            "What a request is hashed on: client_ip, uri (path and query), header:NAME or cookie:NAME. A request without the header or cookie hashes the empty string.",
          type: "string",
          format: "hash-key",
        },
        bounded_load: {
          description:
            "Consistent hashing with bounded loads: a peer with more than this factor times its fair share of the requests in flight is passed over for the key's next peer. A number >= 1 (1.25 is usual). Default: unbounded.",
          type: "number",
          minimum: 1,
        },
      },
    },
    max_connections: {
      description: "Most open connections to each peer, per worker process. Default: 256.",
      type: "integer",
      minimum: 1,
      default: 256,
    },
    tries: {
      description:
        "Most peers one request is sent to, the first included (nginx's proxy_next_upstream_tries). A connection that cannot be made always goes to the next peer; a request that reached its peer only as retry_on allows. Retries are also held to 20% of a worker's requests (plus 3 per 10 s) while peers fail. Default: 3.",
      type: "integer",
      minimum: 1,
      maximum: 10,
      default: 3,
    },
    retry_on: {
      description:
        "What sends a request that reached its peer to the next one: error (the connection was reset or the answer was invalid), timeout (no response header within upstream_header), 502, 503, 504. Only for idempotent methods (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) without a request body, and only before any byte of the answer went to the client. Default: [error, timeout].",
      type: "array",
      uniqueItems: true,
      items: { enum: ["error", "timeout", 502, 503, 504] },
      default: ["error", "timeout"],
    },
    health: {
      description:
        "Active health checks, made by the master (once per peer and interval, whatever the number of workers) on every peer: written as an IP, found by A/AAAA or by SRV. A peer down gets no traffic until it passes `rise` checks again. Default: no active checks.",
      type: "object",
      additionalProperties: false,
      required: ["path"],
      properties: {
        path: {
          description: "Path (and query) to request, e.g. /healthz. Required.",
          type: "string",
          format: "path-prefix",
        },
        method: {
          description: "GET or HEAD. Default: GET.",
          type: "string",
          enum: ["GET", "HEAD"],
          default: "GET",
        },
        host: {
          description: "Host header of the check. Default: the peer's address.",
          type: "string",
          minLength: 1,
        },
        port: {
          description: "Port to check instead of the peer's own. Default: the peer's port.",
          type: "integer",
          minimum: 1,
          maximum: 65535,
        },
        interval: duration("Time between two checks of a peer.", "5s"),
        jitter: duration("Up to this much is added at random to each interval.", "0s"),
        timeout: duration("A check with no complete answer within this fails.", "2s"),
        rise: {
          description: "Consecutive passed checks that bring a down peer back. Default: 2.",
          type: "integer",
          minimum: 1,
          default: 2,
        },
        fall: {
          description: "Consecutive failed checks that take a peer down. Default: 3.",
          type: "integer",
          minimum: 1,
          default: 3,
        },
        status: {
          description: 'Statuses that pass: codes or ranges ("200-399"). Default: ["200-399"].',
          type: "array",
          minItems: 1,
          items: { type: ["integer", "string"], format: "status-range", minimum: 100, maximum: 599 },
          default: ["200-399"],
        },
        body: {
          description:
            "A regular expression the body (its first 64 KiB) must match to pass. Default: any body.",
          type: "string",
          minLength: 1,
        },
        new_peers: {
          description:
            "checked_first: a peer (at start, or added by DNS or a reload) gets traffic only once a check passed; trusted: at once. Default: checked_first.",
          type: "string",
          enum: ["checked_first", "trusted"],
          default: "checked_first",
        },
      },
    },
    tls: {
      description:
        "Speak TLS (HTTPS) to every peer of this upstream. The certificate is verified against the system CAs (or ca) and the peer's DNS name (or server_name). Default: plain HTTP.",
      type: "object",
      additionalProperties: false,
      properties: {
        server_name: {
          description:
            "SNI sent, and the name the peer's certificate must carry. Default: the name in address (or the SRV target); none for an IP address.",
          type: "string",
          format: "server-name",
        },
        ca: {
          description:
            "PEM file of the CA certificates peers are verified against (relative to the config file). Default: the system CAs.",
          type: "string",
          minLength: 1,
        },
        cert: {
          description: "PEM client certificate for mutual TLS. Goes with key.",
          type: "string",
          minLength: 1,
        },
        key: { description: "PEM private key of cert.", type: "string", minLength: 1 },
        verify: {
          description:
            "Verify the peer's certificate. false accepts any certificate: portico check warns about it. Default: true.",
          type: "boolean",
          default: true,
        },
      },
    },
    passive: {
      description:
        "Passive health, in each worker from real traffic (nginx's max_fails/fail_timeout, Envoy's outlier detection): max_fails consecutive failures eject a peer for fail_timeout, doubled on each repeated ejection up to max_fail_timeout. Default: each key's own default.",
      type: "object",
      additionalProperties: false,
      default: {},
      properties: {
        max_fails: {
          description: "Consecutive failures that eject a peer. Default: 1.",
          type: "integer",
          minimum: 1,
          default: 1,
        },
        fail_timeout: duration("How long a first ejection lasts; each repeated one doubles it.", "10s"),
        max_fail_timeout: duration("Longest ejection.", "5m"),
        max_ejected_percent: {
          description:
            "Most of the upstream's peers ejected at once, in percent (one peer may always be ejected). Default: 50.",
          type: "integer",
          minimum: 0,
          maximum: 100,
          default: 50,
        },
        on: {
          description:
            "What counts as a failure: error (the connection could not be made, was reset, TLS failed, or the answer was invalid), timeout, 5xx (an answer of 500-599). Default: [error, timeout].",
          type: "array",
          uniqueItems: true,
          items: { type: "string", enum: ["error", "timeout", "5xx"] },
          default: ["error", "timeout"],
        },
      },
    },
    slow_start: duration(
      "A peer that DNS added, or that is back from an ejection or a failed health check, gets its weight ramped from 10% to full over this long (nginx Plus slow_start), so a cold app is not hit with its whole share at once; 0s = off.",
      "0s",
    ),
    panic_threshold: {
      description:
        "When fewer than this percentage of the peers are available, traffic is spread over all of them (Envoy's panic mode): better some errors than all the load on the few left. 0 turns it off. Default: 50.",
      type: "integer",
      minimum: 0,
      maximum: 100,
      default: 50,
    },
    on_all_down: {
      description:
        "When no peer is available: panic sends to them anyway (one may be back), fail answers 503. Default: panic.",
      type: "string",
      enum: ["panic", "fail"],
      default: "panic",
    },
    try_timeout: duration(
      "From the first try, how long a request may still be sent to another peer (nginx's proxy_next_upstream_timeout); 0s = no limit.",
      "0s",
    ),
    servers: {
      description: "The peers of this upstream: addresses and SRV names. At least one.",
      type: "array",
      minItems: 1,
      items: upstreamServerSchema,
    },
    dns: {
      description:
        "How this upstream's names are resolved, overriding the top-level dns section key by key. Default: the top-level values.",
      type: "object",
      additionalProperties: false,
      properties: {
        family: {
          description: `${familyDescription} Default: the top-level dns.family (any).`,
          type: "string",
          enum: FAMILIES,
        },
        remove_after: {
          description: `${removeAfterDescription} Duration with a unit (ms, s, m, h, d). Default: the top-level dns.remove_after (30s).`,
          type: "string",
          format: "duration",
        },
      },
    },
  },
};

const pemFile = (what: string, note: string, def: string): JsonSchema => ({
  description: `${what}: a PEM file used by tls:// and https:// nameservers (a path relative to the config file's folder).${note} Default: ${def}.`,
  type: "string",
  minLength: 1,
});

const dnsSchema: JsonSchema = {
  description:
    "How the master resolves upstream names (address host names and service SRV names), through Portico's own resolver. Default: the nameservers of /etc/resolv.conf, and each key's own default.",
  type: "object",
  additionalProperties: false,
  default: {},
  properties: {
    nameservers: {
      description:
        "Nameservers, asked in this order: udp://IP[:port], tcp://IP[:port], tls://host[:port][?servername=NAME] (DNS over TLS, port 853), https://host[:port][/path] (DNS over HTTPS, path /dns-query when omitted), or a bare IP meaning udp://IP:53. Default: the nameservers of /etc/resolv.conf (with its search domains).",
      type: "array",
      minItems: 1,
      items: {
        description: "A nameserver URL, or a bare IP address (UDP, port 53).",
        type: "string",
        format: "nameserver",
      },
    },
    timeout: {
      description:
        "How long each attempt waits for an answer. Duration with a unit (ms, s, m, h, d). Default: the timeout of /etc/resolv.conf (5s), or 2s when nameservers are given.",
      type: "string",
      format: "duration",
    },
    attempts: {
      description:
        "Rounds over the nameservers before a query fails, an integer 1-5. Default: the attempts of /etc/resolv.conf (2).",
      type: "integer",
      minimum: 1,
      maximum: 5,
    },
    min_ttl: duration(
      "Shortest time an answer is kept: lower TTLs are raised to it, so it is also the shortest interval between two refreshes of a name. Greater than 0.",
      "1s",
    ),
    max_ttl: duration(
      "Longest time an answer is kept before the name is asked again: higher TTLs are lowered to it. At least min_ttl.",
      "1h",
    ),
    stale_max: duration(
      "While every nameserver fails, how long the last known peers of a name are kept (served stale, RFC 8767).",
      "1d",
    ),
    retry_max: duration(
      "While a name's lookups fail (it is served stale, or not resolved yet), the longest wait between two tries: retries start at 1s and double up to this bound, with jitter below it. As soon as any nameserver answers again, failing names are asked again at once (spread over up to a second). So a change made while DNS was down reaches traffic within this bound plus the TTL once DNS answers. At least 1s.",
      "5s",
    ),
    family: {
      description: `${familyDescription} Each upstream may override it. Default: any.`,
      type: "string",
      enum: FAMILIES,
      default: "any",
    },
    remove_after: duration(`${removeAfterDescription} Each upstream may override it.`, "30s"),
    ca: pemFile("CA certificates that nameserver certificates are verified against", "", "the system CAs"),
    cert: pemFile("Client certificate for mutual TLS", " Goes with key.", "none"),
    key: pemFile("Private key of the client certificate", " Goes with cert.", "none"),
  },
};

/** The JSON Schema of the whole configuration file. */
export const configSchema: JsonSchema = {
  $schema: "http://json-schema.org/draft-07/schema#",
  title: "Portico configuration (portico.yaml)",
  description: "Configuration of the Portico reverse proxy. Check a file with `portico check -c FILE`.",
  type: "object",
  additionalProperties: false,
  required: ["servers"],
  properties: {
    workers: {
      description: "Number of worker processes: an integer >= 1, or auto for one per CPU. Default: auto.",
      type: ["integer", "string"],
      format: "workers",
      minimum: 1,
      default: "auto",
    },
    timeouts: {
      description: "Time limits. Every value is a duration with a unit. Default: each limit's own default.",
      type: "object",
      additionalProperties: false,
      default: {},
      properties: {
        connect: duration("Establishing a TCP connection to an upstream peer.", "5s"),
        upstream_header: duration(
          "From sending a request upstream to receiving the full response header.",
          "60s",
        ),
        upstream_body: duration("Longest silence between two chunks of an upstream response body.", "60s"),
        client_keepalive: duration("Idle time after which a client keep-alive connection is closed.", "75s"),
        upstream_keepalive: duration(
          "Idle time after which a pooled upstream connection is closed; keep it below the app's own idle timeout.",
          "4s",
        ),
        shutdown: duration(
          "Graceful stop, and an old generation's drain on reload: how long in-flight requests get before connections are closed.",
          "30s",
        ),
        drain_grace: duration(
          "While a worker drains, how long a keep-alive connection with no request in flight stays open before it is closed (a request arriving meanwhile is answered with Connection: close). Closing at once races clients that are reusing the connection.",
          "1s",
        ),
        tunnel_idle: duration(
          "A WebSocket tunnel with no data in either direction for this long is closed.",
          "1h",
        ),
        client_header: duration(
          "How long a client has to send a whole request head (request line and headers); a slower one gets 408 and is disconnected (slowloris).",
          "10s",
        ),
        client_body: duration(
          "Longest silence between two reads of a request body; then the request gets 408 (or is cut when its response has begun).",
          "60s",
        ),
        worker_start: duration(
          "On start and reload, how long a new generation has to get every worker listening; a reload that takes longer is abandoned and the running generation kept.",
          "10s",
        ),
      },
    },
    log: {
      description: "Where logs go and how much is logged. Default: each key's own default.",
      type: "object",
      additionalProperties: false,
      default: {},
      properties: {
        level: {
          description: "Level of lifecycle and error logs. Default: info.",
          type: "string",
          enum: ["fatal", "error", "warn", "info", "debug", "trace"],
          default: "info",
        },
        access: {
          description:
            "Access log (one JSON line per request): stdout, stderr, off, or a file path (relative to the config file). Default: stdout.",
          type: "string",
          minLength: 1,
          default: "stdout",
        },
        error: {
          description:
            "Lifecycle and error log: stdout, stderr, or a file path (relative to the config file). Default: stderr.",
          type: "string",
          minLength: 1,
          format: "error-log",
          default: "stderr",
        },
        format: {
          description:
            "How the lifecycle and error log is written: json (one JSON object per line, for log shippers), pretty (short human-readable lines), or auto: pretty when it goes to a terminal, JSON everywhere else. The access log is always JSON. Default: auto.",
          type: "string",
          enum: ["auto", "json", "pretty"],
          default: "auto",
        },
      },
    },
    limits: limitsSchema,
    admin: {
      description:
        "The admin listener, in the master: the status page (/), /status, /metrics (Prometheus), /healthz, /dns, POST /dns/flush, POST /reload. Off unless set. Default: none.",
      type: "object",
      additionalProperties: false,
      required: ["listen"],
      properties: {
        listen: {
          description:
            "IP:port or [IPv6]:port to serve on (no flags). A non-loopback address requires `token`. Required.",
          type: ["string", "integer"],
          format: "listen",
        },
        token: {
          description:
            "Token every request must carry (`Authorization: Bearer TOKEN`, or as the password of HTTP Basic authentication, which browsers ask for); compared in constant time. Required off loopback.",
          type: "string",
          minLength: 16,
        },
        dns_rate: {
          description:
            "Requests to /dns and /dns/flush each client address may make per second or minute (a token bucket; over it, 429 with Retry-After): 5/s, 60/m. Default: 5/s.",
          type: ["string", "number"],
          default: "5/s",
        },
        dns_burst: {
          description: "Requests to /dns and /dns/flush let through at once above dns_rate. Default: 10.",
          type: "integer",
          minimum: 0,
          default: 10,
        },
      },
    },
    trusted_proxies: {
      description:
        "Addresses or CIDR ranges of proxies in front of Portico (load balancers, CDNs). From them, X-Forwarded-For is believed: the client address is its last entry not in these ranges, and it is appended to. From anyone else, X-Forwarded-* and Forwarded are replaced. Default: [] (no one is trusted).",
      type: "array",
      items: {
        type: "string",
        format: "cidr",
        description: "An IP address or CIDR range (10.0.0.0/8, fd00::/8).",
      },
      default: [],
    },
    pid_file: {
      description:
        "File the master writes its PID to, read by `portico reload` and `portico stop` (relative to the config file). Default: portico.pid.",
      type: "string",
      minLength: 1,
      default: "portico.pid",
    },
    dns: dnsSchema,
    http2: {
      description:
        "HTTP/2 towards clients. Upstreams are always spoken to in HTTP/1.1. Default: each key's own default.",
      type: "object",
      additionalProperties: false,
      default: {},
      properties: {
        enabled: {
          description: "Offer h2 by ALPN on `tls` addresses (false: HTTP/1.1 only). Default: true.",
          type: "boolean",
          default: true,
        },
        max_concurrent_streams: {
          description:
            "Most streams (requests) a client may have open at once on one connection. Default: 128.",
          type: "integer",
          minimum: 1,
          maximum: 10000,
          default: 128,
        },
        max_header_list_size: {
          description:
            "Largest header block of a request, in bytes or with a unit (names, values and 32 bytes per field, RFC 9113). Default: 32k.",
          type: ["integer", "string"],
          format: "size",
          minimum: 1024,
          default: "32k",
        },
      },
    },
    state_dir: {
      description:
        "Directory where Portico keeps files it makes itself (tls: auto certificates), relative to the config file. Default: .portico.",
      type: "string",
      minLength: 1,
      default: ".portico",
    },
    upstreams: {
      description:
        "Named upstreams: name -> upstream. Names use letters, digits, '_', '.', '-'. Default: none.",
      type: "object",
      propertyNames: { format: "upstream-name" },
      additionalProperties: upstreamSchema,
      default: {},
    },
    servers: {
      description: "The virtual servers. At least one. Required.",
      type: "array",
      minItems: 1,
      items: serverSchema,
    },
  },
};
