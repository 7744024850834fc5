/**
 * Every error a request can end with, each with a stable code and the HTTP status it maps
 * to. Upstream failures are classified in one place (`classifyUpstreamError`):
 * timeout -> 504, connect/reset -> 502, no peer -> 503, client gone -> 499 (log only).
 */

/** Stable error codes, as they appear in the access log's `error` field. */
export type ProxyErrorCode =
  | "PRT_ERR_NO_ROUTE"
  | "PRT_ERR_NO_PEER"
  | "PRT_ERR_UPSTREAM_CONNECT"
  | "PRT_ERR_UPSTREAM_RESET"
  | "PRT_ERR_UPSTREAM_TIMEOUT"
  | "PRT_ERR_UPSTREAM_PROTOCOL"
  | "PRT_ERR_UPSTREAM_TLS"
  | "PRT_ERR_BODY_TOO_LARGE"
  | "PRT_ERR_BAD_REQUEST"
  | "PRT_ERR_URI_TOO_LONG"
  | "PRT_ERR_HEADERS_TOO_LARGE"
  | "PRT_ERR_METHOD_NOT_ALLOWED"
  | "PRT_ERR_NOT_IMPLEMENTED"
  | "PRT_ERR_CLIENT_TIMEOUT"
  | "PRT_ERR_RATE_LIMITED"
  | "PRT_ERR_H2_MALFORMED"
  | "PRT_ERR_LOOP"
  | "PRT_ERR_CLIENT_GONE"
  | "PRT_ERR_INTERNAL";

const STATUS: Record<ProxyErrorCode, number> = {
  PRT_ERR_NO_ROUTE: 404,
  PRT_ERR_NO_PEER: 503,
  PRT_ERR_UPSTREAM_CONNECT: 502,
  PRT_ERR_UPSTREAM_RESET: 502,
  PRT_ERR_UPSTREAM_TIMEOUT: 504,
  PRT_ERR_UPSTREAM_PROTOCOL: 502,
  PRT_ERR_UPSTREAM_TLS: 502,
  PRT_ERR_BODY_TOO_LARGE: 413,
  PRT_ERR_BAD_REQUEST: 400,
  PRT_ERR_URI_TOO_LONG: 414,
  PRT_ERR_HEADERS_TOO_LARGE: 431,
  PRT_ERR_METHOD_NOT_ALLOWED: 405,
  PRT_ERR_NOT_IMPLEMENTED: 501,
  PRT_ERR_CLIENT_TIMEOUT: 408,
  PRT_ERR_RATE_LIMITED: 429,
  // Refused with RST_STREAM PROTOCOL_ERROR (RFC 9113 §8.1.1); 400 is what the access log says.
  PRT_ERR_H2_MALFORMED: 400,
  PRT_ERR_LOOP: 508,
  // nginx's 499: never sent (the client is gone), only logged.
  PRT_ERR_CLIENT_GONE: 499,
  PRT_ERR_INTERNAL: 500,
};

/** Short plain-text bodies sent to clients; details stay in the log. */
const BODY: Record<number, string> = {
  400: "400 Bad Request\n",
  404: "404 Not Found\n",
  405: "405 Method Not Allowed\n",
  408: "408 Request Timeout\n",
  413: "413 Content Too Large\n",
  414: "414 URI Too Long\n",
  429: "429 Too Many Requests\n",
  431: "431 Request Header Fields Too Large\n",
  500: "500 Internal Server Error\n",
  501: "501 Not Implemented\n",
  502: "502 Bad Gateway\n",
  503: "503 Service Unavailable\n",
  504: "504 Gateway Timeout\n",
  508: "508 Loop Detected\n",
};

/** An error that ends a request, with its code, HTTP status and the underlying cause. */
export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  readonly status: number;
  /** A line for the client after the status line, when it helps them (e.g. why an upstream has no peer). */
  readonly detail: string | undefined;
  /** Headers the error response carries besides its own (`retry-after`, `allow`), as a flat list. */
  readonly headers: readonly string[] | undefined;

  constructor(
    code: ProxyErrorCode,
    message: string,
    options?: { cause?: unknown; detail?: string; headers?: readonly string[] },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ProxyError";
    this.code = code;
    this.status = STATUS[code];
    this.detail = options?.detail;
    this.headers = options?.headers;
  }

  /** The plain-text body sent to the client for this error. */
  get body(): string {
    const head = BODY[this.status] ?? `${this.status}\n`;
    return this.detail ? `${head}${this.detail}\n` : head;
  }
}

/** Socket-level error codes that mean "could not connect to the peer". */
const CONNECT_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EHOSTDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EADDRNOTAVAIL",
]);

/** OpenSSL's verification errors (as Node names them): the peer's certificate was refused. */
const TLS_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_GET_ISSUER_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "HOSTNAME_MISMATCH",
]);

/** Map an error from undici (or the socket under it) to a ProxyError. */
export function classifyUpstreamError(err: unknown, peer: string): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as { code?: string } | null)?.code ?? "";
  const text = err instanceof Error ? err.message : String(err);
  switch (code) {
    case "UND_ERR_CONNECT_TIMEOUT":
      // nginx answers 504 when proxy_connect_timeout expires.
      return new ProxyError("PRT_ERR_UPSTREAM_TIMEOUT", `connect to ${peer} timed out`, { cause: err });
    case "UND_ERR_HEADERS_TIMEOUT":
      return new ProxyError("PRT_ERR_UPSTREAM_TIMEOUT", `${peer} sent no response header in time`, {
        cause: err,
      });
    case "UND_ERR_BODY_TIMEOUT":
      return new ProxyError("PRT_ERR_UPSTREAM_TIMEOUT", `${peer} stalled inside the response body`, {
        cause: err,
      });
    case "UND_ERR_SOCKET":
    case "ECONNRESET":
    case "EPIPE":
      return new ProxyError("PRT_ERR_UPSTREAM_RESET", `${peer} closed the connection: ${text}`, {
        cause: err,
      });
    case "HPE_INVALID_CONSTANT":
    case "HPE_INVALID_HEADER_TOKEN":
    case "UND_ERR_INFO":
      return new ProxyError("PRT_ERR_UPSTREAM_PROTOCOL", `${peer} sent an invalid response: ${text}`, {
        cause: err,
      });
    case "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH":
      return new ProxyError("PRT_ERR_BAD_REQUEST", `request body does not match its Content-Length`, {
        cause: err,
      });
  }
  if (TLS_CODES.has(code) || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_")) {
    return new ProxyError("PRT_ERR_UPSTREAM_TLS", `TLS to ${peer} failed: ${code}: ${text}`, { cause: err });
  }
  if (CONNECT_CODES.has(code)) {
    return new ProxyError("PRT_ERR_UPSTREAM_CONNECT", `cannot connect to ${peer}: ${code}`, { cause: err });
  }
  if (code.startsWith("HPE_")) {
    return new ProxyError("PRT_ERR_UPSTREAM_PROTOCOL", `${peer} sent an invalid response: ${text}`, {
      cause: err,
    });
  }
  return new ProxyError("PRT_ERR_UPSTREAM_RESET", `${peer}: ${code || "error"}: ${text}`, { cause: err });
}
