/**
 * The listener fuzzer's inputs: HTTP/1.1 requests as raw bytes, built from parts that are each
 * valid, borderline or broken (methods, targets, versions, line endings, header names and
 * values with CR/LF/NUL/obs-fold, repeated or conflicting Content-Length and
 * Transfer-Encoding, huge lines, chunked bodies with bad sizes, Expect and Upgrade), pipelined,
 * then changed byte by byte, or replaced by random bytes, an HTTP/2 preface or nothing at
 * all; and how they are sent (in pieces, then half-closed, held open, reset, or cut off).
 */
import fc from "fast-check";

/** One request, before serialization. */
export interface RequestSpec {
  method: string;
  target: string;
  version: string;
  eol: string;
  headers: [string, string][];
  body: BodySpec;
}

export type BodySpec =
  | { kind: "none" }
  | { kind: "length"; data: string; delta: number }
  | {
      kind: "chunked";
      chunks: { size: string; data: string; ext: string }[];
      last: boolean;
      trailers: string;
    };

export type ByteChange =
  | { kind: "insert"; pos: number; bytes: Uint8Array }
  | { kind: "delete"; pos: number; length: number }
  | { kind: "flip"; pos: number; bit: number }
  | { kind: "set"; pos: number; byte: number }
  | { kind: "truncate"; pos: number }
  | { kind: "repeat"; pos: number; length: number; times: number };

/** How a case's bytes go out. */
export interface Sending {
  /** Cut points (taken modulo the length): the bytes go out in pieces, `gapMs` apart. */
  cuts: number[];
  gapMs: number;
  /**
   * The first byte goes out alone, `gapMs` (at least 1 ms) before the rest: a client's first
   * TCP segment may be that short, and whatever looks at the first bytes must wait for more.
   */
  firstByteAlone: boolean;
  /**
   * After the last piece: `end` half-closes (FIN) and waits for the close; `hold` keeps the
   * socket open until the answer stops coming; `reset` sends RST shortly after; `cut` destroys
   * the socket after the first piece.
   */
  finally: "end" | "hold" | "reset" | "cut";
}

export interface ListenerCase {
  listener: "plain" | "h2c";
  payload:
    | { kind: "requests"; requests: RequestSpec[]; changes: ByteChange[] }
    | { kind: "random"; bytes: Uint8Array }
    | { kind: "h2-preface"; tail: Uint8Array }
    /** Not a byte: connect, then close, reset or wait (a port scanner, a health checker). */
    | { kind: "nothing" };
  sending: Sending;
}

const CTL = ["\r", "\n", "\r\n", "\u0000", "\t", " ", "\u000b", "\u007f", "\u00ff", "\r\n ", "\r\n\t"];

const nasty = fc.oneof(
  fc.constantFrom(...CTL),
  fc.constantFrom(":", ";", ",", '"', "(", "@", "\\", "é", "\u2028", "%00", "%2e%2e/", "\ufeff"),
);

/** A string with, now and then, a control character or separator spliced in. */
const spiced = (base: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 5, arbitrary: base },
    {
      weight: 1,
      arbitrary: fc.tuple(base, nasty, fc.nat()).map(([s, c, at]) => {
        const i = at % (s.length + 1);
        return s.slice(0, i) + c + s.slice(i);
      }),
    },
  );

const method = spiced(
  fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom("GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH") },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "CONNECT",
        "TRACE",
        "PRI",
        "get",
        "G",
        "",
        "MKCOL",
        "SEARCH",
        "X".repeat(300),
      ),
    },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 10 }) },
  ),
);

const target = spiced(
  fc.oneof(
    {
      weight: 6,
      arbitrary: fc.constantFrom("/", "/health", "/a/b?x=1&y=2", "/api/v1/items/42", "/index.html?q=%20"),
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        "*",
        "http://127.0.0.1/abs",
        "https://other.test/x",
        "127.0.0.1:80",
        "//double//slash",
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/",
        "/a#fragment",
        "/%zz",
        "/\u00e9",
        "",
        "/a b",
      ),
    },
    { weight: 1, arbitrary: fc.integer({ min: 1000, max: 70_000 }).map((n) => `/${"a".repeat(n)}`) },
    { weight: 1, arbitrary: fc.webPath().map((p) => p || "/") },
  ),
);

const version = fc.oneof(
  { weight: 10, arbitrary: fc.constant("HTTP/1.1") },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "HTTP/1.0",
      "HTTP/2.0",
      "HTTP/0.9",
      "HTTP/1.2",
      "HTTP/9.9",
      "http/1.1",
      "HTTP/1",
      "HTTP/1.1 ",
      "",
      "HTTP/1.10",
      "HTTP/11",
    ),
  },
);

const eol = fc.oneof(
  { weight: 12, arbitrary: fc.constant("\r\n") },
  { weight: 1, arbitrary: fc.constantFrom("\n", "\r", "\r\r\n", "\n\r") },
);

const headerName = spiced(
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.constantFrom(
        "Host",
        "User-Agent",
        "Accept",
        "Content-Type",
        "Connection",
        "Cookie",
        "X-Forwarded-For",
        "X-Request-Id",
        "Forwarded",
        "Via",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Proxy-Connection",
        "Expect",
        "Upgrade",
        "Range",
        "If-None-Match",
        "Authorization",
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "",
        " Host",
        "Host ",
        "Content-Length ",
        "Transfer-Encoding\t",
        "x".repeat(9000),
      ),
    },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 12 }) },
  ),
);

const headerValue = spiced(
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.constantFrom(
        "127.0.0.1",
        "example.test",
        "close",
        "keep-alive",
        "*/*",
        "text/plain",
        "a=b; c=d",
        "1.2.3.4, 5.6.7.8",
        "Upgrade",
        "websocket",
        "100-continue",
        "trailers",
        "bytes=0-1",
      ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "",
        " ",
        "a\r\n b",
        "a\r\nX-Injected: 1",
        "v\u0000x",
        "\u00ff\u00fe",
        "x".repeat(20_000),
        "$" + "{jndi:x}", // a log4shell probe
      ),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  ),
);

/** Content-Length and Transfer-Encoding lines, each valid, odd or conflicting. */
const framingHeaders: fc.Arbitrary<[string, string][]> = fc.array(
  fc.oneof(
    fc.tuple(
      fc.constantFrom("Content-Length", "content-length", "CONTENT-LENGTH", "Content-Length "),
      fc.oneof(
        fc.nat({ max: 64 }).map(String),
        fc.constantFrom(
          "-1",
          "+5",
          "0x10",
          "1e3",
          "5, 5",
          "5, 6",
          " 5",
          "99999999999999999999",
          "",
          "abc",
          "18446744073709551616",
        ),
      ),
    ),
    fc.tuple(
      fc.constantFrom("Transfer-Encoding", "transfer-encoding", "Transfer-Encoding "),
      fc.constantFrom(
        "chunked",
        "Chunked",
        " chunked",
        "chunked ",
        "gzip, chunked",
        "chunked, gzip",
        "chunked, chunked",
        "identity",
        "xchunked",
        "chunked\u0000",
        "cow",
      ),
    ),
  ),
  { maxLength: 3 },
);

const chunkSize = fc.oneof(
  { weight: 6, arbitrary: fc.constant("") }, // the real size, filled in
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "ffffffffffffffffff",
      "-1",
      "0x5",
      "5 ",
      " 5",
      "z",
      "",
      "1\u0000",
      "00000000000000000000005",
      "7fffffffffffffff",
    ),
  },
);

const body: fc.Arbitrary<BodySpec> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: "none" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("length" as const),
      data: fc.string({ maxLength: 40 }),
      delta: fc.oneof(
        { weight: 4, arbitrary: fc.constant(0) },
        { weight: 1, arbitrary: fc.integer({ min: -5, max: 5 }) },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("chunked" as const),
      chunks: fc.array(
        fc.record({
          size: chunkSize,
          data: fc.string({ maxLength: 20 }),
          ext: fc.oneof(
            { weight: 6, arbitrary: fc.constant("") },
            { weight: 1, arbitrary: fc.constantFrom(";a=b", ";", "; x", ";\u0000") },
          ),
        }),
        { maxLength: 3 },
      ),
      last: fc.oneof(
        { weight: 5, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
      trailers: fc.oneof(
        { weight: 5, arbitrary: fc.constant("") },
        { weight: 1, arbitrary: fc.constantFrom("X-T: 1\r\n", "Content-Length: 5\r\n", "bad trailer\r\n") },
      ),
    }),
  },
);

export const requestSpec: fc.Arbitrary<RequestSpec> = fc.record({
  method,
  target,
  version,
  eol,
  headers: fc
    .tuple(
      fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      fc.array(fc.tuple(headerName, headerValue), { maxLength: 5 }),
      framingHeaders,
      fc.oneof(
        { weight: 10, arbitrary: fc.constant(0) },
        { weight: 1, arbitrary: fc.integer({ min: 100, max: 3000 }) },
      ),
    )
    .map(([host, others, framing, many]) => {
      const headers: [string, string][] = host ? [["Host", "fuzz.test"]] : [];
      headers.push(...others, ...framing);
      for (let i = 0; i < many; i++) headers.push([`X-Many-${i}`, "v"]);
      return headers;
    }),
  body,
});

/** The bytes of one request as the spec says, framing lies included. */
export function serialize(spec: RequestSpec): Buffer {
  const e = spec.eol;
  let head = `${spec.method} ${spec.target}${spec.version ? ` ${spec.version}` : ""}${e}`;
  const headers = [...spec.headers];
  let payload = "";
  const b = spec.body;
  if (b.kind === "length") {
    if (!headers.some(([n]) => n.trim().toLowerCase() === "content-length")) {
      headers.push(["Content-Length", String(Math.max(0, Buffer.byteLength(b.data) + b.delta))]);
    }
    payload = b.data;
  } else if (b.kind === "chunked") {
    if (!headers.some(([n]) => n.trim().toLowerCase() === "transfer-encoding"))
      headers.push(["Transfer-Encoding", "chunked"]);
    for (const chunk of b.chunks) {
      const size = chunk.size || Buffer.byteLength(chunk.data).toString(16);
      payload += `${size}${chunk.ext}\r\n${chunk.data}\r\n`;
    }
    if (b.last) payload += `0\r\n${b.trailers}\r\n`;
  }
  for (const [name, value] of headers) head += `${name}: ${value}${e}`;
  return Buffer.from(`${head}${e}${payload}`, "utf8");
}

const byteChange: fc.Arbitrary<ByteChange> = fc.oneof(
  fc.record({
    kind: fc.constant("insert" as const),
    pos: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), pos: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant("flip" as const), pos: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant("set" as const),
    pos: fc.nat(),
    byte: fc.constantFrom(0x00, 0x0a, 0x0d, 0x20, 0x3a, 0x7f, 0xff, 0x80),
  }),
  fc.record({ kind: fc.constant("truncate" as const), pos: fc.nat() }),
  fc.record({
    kind: fc.constant("repeat" as const),
    pos: fc.nat(),
    length: fc.integer({ min: 1, max: 64 }),
    times: fc.integer({ min: 2, max: 50 }),
  }),
);

export function applyByteChanges(input: Buffer, changes: readonly ByteChange[]): Buffer {
  let buf = input;
  for (const c of changes) {
    const at = c.pos % (buf.length + 1);
    switch (c.kind) {
      case "insert":
        buf = Buffer.concat([buf.subarray(0, at), c.bytes, buf.subarray(at)]);
        break;
      case "delete":
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + c.length)]);
        break;
      case "flip":
      case "set":
        if (buf.length > 0) {
          buf = Buffer.from(buf);
          const i = c.pos % buf.length;
          buf[i] = c.kind === "flip" ? (buf[i] as number) ^ (1 << c.bit) : c.byte;
        }
        break;
      case "truncate":
        buf = buf.subarray(0, at);
        break;
      case "repeat": {
        const piece = buf.subarray(at, at + c.length);
        buf = Buffer.concat([buf.subarray(0, at), ...Array(c.times).fill(piece), buf.subarray(at)]);
        break;
      }
    }
  }
  return buf;
}

export const listenerCase: fc.Arbitrary<ListenerCase> = fc.record({
  listener: fc.oneof(
    { weight: 4, arbitrary: fc.constant("plain" as const) },
    { weight: 1, arbitrary: fc.constant("h2c" as const) },
  ),
  payload: fc.oneof(
    {
      weight: 12,
      arbitrary: fc.record({
        kind: fc.constant("requests" as const),
        requests: fc.array(requestSpec, { minLength: 1, maxLength: 3 }),
        changes: fc.oneof(
          { weight: 2, arbitrary: fc.constant<never[]>([]) },
          { weight: 1, arbitrary: fc.array(byteChange, { minLength: 1, maxLength: 3 }) },
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("random" as const),
        bytes: fc.uint8Array({ minLength: 1, maxLength: 2000 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("h2-preface" as const),
        tail: fc.uint8Array({ maxLength: 200 }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ kind: "nothing" as const }) },
  ),
  sending: fc.record({
    cuts: fc.oneof(
      { weight: 3, arbitrary: fc.constant<never[]>([]) },
      { weight: 1, arbitrary: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }) },
    ),
    gapMs: fc.oneof(
      { weight: 3, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) },
    ),
    firstByteAlone: fc.oneof(
      { weight: 15, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) },
    ),
    finally: fc.oneof(
      { weight: 10, arbitrary: fc.constant("end" as const) },
      { weight: 2, arbitrary: fc.constant("hold" as const) },
      { weight: 1, arbitrary: fc.constant("reset" as const) },
      { weight: 1, arbitrary: fc.constant("cut" as const) },
    ),
  }),
});

/** The HTTP/2 connection preface (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** The bytes a case sends. */
export function caseBytes(c: ListenerCase): Buffer {
  const p = c.payload;
  if (p.kind === "random") return Buffer.from(p.bytes);
  if (p.kind === "h2-preface") return Buffer.concat([H2_PREFACE, p.tail]);
  if (p.kind === "nothing") return Buffer.alloc(0);
  return applyByteChanges(Buffer.concat(p.requests.map(serialize)), p.changes);
}
