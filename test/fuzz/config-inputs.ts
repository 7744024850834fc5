/**
 * The config fuzzer's inputs, as fast-check arbitraries of `{ kind, text }`:
 * - `string`: random text, from any code unit or from YAML's own punctuation and keywords;
 * - `document`: random values (fc.anything, fc.object, JSON) written as YAML by the `yaml`
 *   package, alone or where the config expects a server, a route or an upstream;
 * - `typed`: a seed config parsed, changed at random paths (wrong types, odd scalars, keys
 *   removed, misspelled or duplicated, lists unwrapped) and written back;
 * - `text`: a seed config's text with characters and lines inserted, deleted, replaced,
 *   duplicated (duplicate keys), swapped or re-indented;
 * - `construct`: YAML features a config rarely holds: alias chains (billion laughs), deep
 *   nesting, huge scalars, merge keys, tags, several documents, directives.
 */
import fc from "fast-check";
import { parse, stringify } from "yaml";
import { configCorpus } from "./config-corpus.js";

/** One input and which generator made it. */
export interface ConfigInput {
  kind: "string" | "document" | "typed" | "text" | "construct";
  text: string;
}

/** The seed configs (see config-corpus.ts). */
export const corpus = configCorpus();

const YAML_TOKENS = [
  ":",
  ": ",
  "- ",
  "-",
  "? ",
  "[",
  "]",
  "{",
  "}",
  ",",
  "#",
  " #x",
  "&a ",
  "*a",
  "!!str ",
  "!!int ",
  "!!binary ",
  "!!set ",
  "!!map ",
  "!cpus ",
  "!x ",
  "|",
  "|-",
  ">",
  "'",
  '"',
  "'it''s'",
  '"\\x00\\u2028\\N"',
  "%YAML 1.1",
  "---",
  "...",
  "<<: *a",
  "~",
  "null",
  "true",
  "no",
  "yes",
  ".inf",
  "-.inf",
  ".nan",
  "0x1F",
  "0o17",
  "1e999",
  "-0",
  "9007199254740993",
  "12:30:00",
  "2001-12-14t21:59:43.10-05:00",
  "\t",
  "\r",
  "\r\n",
  "\n",
  "\n  ",
  "\u0000",
  "\ufeff",
  "\u2028",
  "é",
  "😀",
  "\ud800",
  "servers",
  "listen",
  "routes",
  "upstream",
  "upstreams",
  "path",
  "address",
  "127.0.0.1:0",
  "[::1]:99999",
  "0.0.0.0:65536",
  "5s",
  "0s",
  "1m",
  "99999999d",
  "512k",
  "tls",
  "h2c",
  "auto",
];

const token = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...YAML_TOKENS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 6 }) },
);

const randomString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.array(token, { maxLength: 60 }).map((parts) => parts.join("")),
);

/** YAML for any value; the few values `yaml` cannot write fall back to their string form. */
function toYaml(value: unknown): string {
  try {
    // undefined (and a few other values) have no YAML form: stringify returns undefined.
    return stringify(value, { aliasDuplicateObjects: true }) ?? String(value);
  } catch {
    return String(value);
  }
}

const anyValue = fc.oneof(
  fc.anything({
    maxDepth: 4,
    maxKeys: 6,
    withBigInt: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withSparseArray: true,
    withTypedArray: true,
    withBoxedValues: true,
  }),
  fc.object({ maxDepth: 3 }),
  fc.jsonValue({ maxDepth: 4 }),
);

const randomDocument: fc.Arbitrary<string> = fc
  .tuple(
    anyValue,
    fc.constantFrom("top", "servers", "server", "route", "upstreams", "upstream", "dns", "timeouts"),
  )
  .map(([value, where]) => {
    const route = { path: "/", upstream: "a" };
    switch (where) {
      case "servers":
        return toYaml({ servers: value });
      case "server":
        return toYaml({ servers: [value] });
      case "route":
        return toYaml({ servers: [{ listen: "127.0.0.1:0", routes: [value, route] }] });
      case "upstreams":
        return toYaml({ upstreams: value, servers: [{ listen: 8080, routes: [route] }] });
      case "upstream":
        return toYaml({ upstreams: { a: value }, servers: [{ listen: 8080, routes: [route] }] });
      case "dns":
        return toYaml({
          dns: value,
          servers: [{ listen: 8080, routes: [{ path: "/", return: { status: 200 } }] }],
        });
      case "timeouts":
        return toYaml({
          timeouts: value,
          servers: [{ listen: 8080, routes: [{ path: "/", return: { status: 200 } }] }],
        });
      default:
        return toYaml(value);
    }
  });

/** Values that are wrong, odd or borderline where the config expects something else. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    "",
    " ",
    0,
    -1,
    1.5,
    2 ** 53 + 2,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    true,
    false,
    [],
    {},
    [[]],
    "0s",
    "-1s",
    "1.5s",
    "999999999999d",
    "10q",
    "0k",
    "1t",
    "127.0.0.1:99999",
    "[::1]",
    "::",
    "*",
    "*.*",
    "a..b",
    "-",
    "_http._tcp",
    "udp://",
    "tls://[::1]:0",
    "x".repeat(300),
    "(",
    "[a-",
    "(a+)+$",
    "\\",
    "$host$request_uri",
    "header:",
    "cookie:",
  ),
  fc.anything({ maxDepth: 2 }),
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double(),
);

type Data = Record<string, unknown> | unknown[];

/** Every path into the data (keys and indexes), parents before children. */
function paths(
  data: unknown,
  prefix: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  if (data === null || typeof data !== "object") return out;
  const entries: [string | number, unknown][] = Array.isArray(data)
    ? data.map((v, i) => [i, v] as [number, unknown])
    : Object.entries(data as Record<string, unknown>);
  for (const [key, value] of entries) {
    const path = [...prefix, key];
    out.push(path);
    paths(value, path, out);
  }
  return out;
}

function parentOf(root: Data, path: (string | number)[]): Data | undefined {
  let here: unknown = root;
  for (const key of path.slice(0, -1)) {
    if (here === null || typeof here !== "object") return undefined;
    here = (here as Record<string | number, unknown>)[key];
  }
  return here !== null && typeof here === "object" ? (here as Data) : undefined;
}

interface PathChange {
  at: number;
  op: "set" | "delete" | "rename" | "wrap" | "unwrap" | "duplicate";
  value: unknown;
  rename: string;
}

const pathChange: fc.Arbitrary<PathChange> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom("set", "set", "set", "delete", "rename", "wrap", "unwrap", "duplicate"),
  value: oddValue,
  rename: fc.oneof(
    fc.constantFrom("", "Servers", "listen ", "upstreem", "__proto__", "constructor", "0"),
    fc.string({ maxLength: 8 }),
  ),
});

function applyPathChange(root: Data, change: PathChange): void {
  const all = paths(root);
  const path = all[change.at % Math.max(1, all.length)];
  if (!path) return;
  const parent = parentOf(root, path);
  const key = path[path.length - 1] as string | number;
  if (!parent) return;
  const record = parent as Record<string | number, unknown>;
  const current = record[key];
  switch (change.op) {
    case "set":
      record[key] = change.value;
      break;
    case "delete":
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete record[key];
      break;
    case "rename":
      if (!Array.isArray(parent)) {
        delete record[key];
        record[change.rename] = current;
      }
      break;
    case "wrap":
      record[key] = [current];
      break;
    case "unwrap":
      record[key] = Array.isArray(current) ? current[0] : current;
      break;
    case "duplicate":
      if (Array.isArray(parent)) parent.push(current);
      else if (Array.isArray(current)) record[key] = [...current, ...current];
      break;
  }
}

const seed = fc.nat({ max: Math.max(0, corpus.length - 1) });

const typedMutation: fc.Arbitrary<string> = fc
  .tuple(seed, fc.array(pathChange, { minLength: 1, maxLength: 4 }))
  .map(([index, changes]) => {
    let data: unknown;
    try {
      data = parse(corpus[index] ?? "");
    } catch {
      return corpus[index] ?? "";
    }
    const root: Data = data !== null && typeof data === "object" ? (data as Data) : { value: data };
    for (const change of changes) applyPathChange(root, change);
    return toYaml(root);
  });

type TextChange =
  | { kind: "insert" | "replace"; pos: number; text: string }
  | { kind: "delete"; pos: number; length: number }
  | { kind: "delete-line" | "duplicate-line"; line: number }
  | { kind: "swap-lines"; line: number; other: number }
  | { kind: "indent"; line: number; by: number }
  | { kind: "value" | "key"; line: number; text: string }
  | { kind: "truncate"; pos: number };

const textChange: fc.Arbitrary<TextChange> = fc.oneof(
  fc.record({ kind: fc.constantFrom("insert", "replace" as const), pos: fc.nat(), text: token }),
  fc.record({ kind: fc.constant("delete" as const), pos: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constantFrom("delete-line", "duplicate-line" as const), line: fc.nat() }),
  fc.record({ kind: fc.constant("swap-lines" as const), line: fc.nat(), other: fc.nat() }),
  fc.record({ kind: fc.constant("indent" as const), line: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
  fc.record({ kind: fc.constantFrom("value", "key" as const), line: fc.nat(), text: token }),
  fc.record({ kind: fc.constant("truncate" as const), pos: fc.nat() }),
);

function applyTextChange(text: string, change: TextChange): string {
  const lines = text.split("\n");
  const at = (n: number) => n % Math.max(1, lines.length);
  switch (change.kind) {
    case "insert": {
      const pos = change.pos % (text.length + 1);
      return text.slice(0, pos) + change.text + text.slice(pos);
    }
    case "replace": {
      const pos = change.pos % (text.length + 1);
      return text.slice(0, pos) + change.text + text.slice(pos + change.text.length);
    }
    case "delete": {
      const pos = change.pos % (text.length + 1);
      return text.slice(0, pos) + text.slice(pos + change.length);
    }
    case "truncate":
      return text.slice(0, change.pos % (text.length + 1));
    case "delete-line":
      lines.splice(at(change.line), 1);
      break;
    case "duplicate-line": {
      // A mapping line written twice: a duplicate key.
      const i = at(change.line);
      lines.splice(i, 0, lines[i] ?? "");
      break;
    }
    case "swap-lines": {
      const i = at(change.line);
      const j = at(change.other);
      [lines[i], lines[j]] = [lines[j] ?? "", lines[i] ?? ""];
      break;
    }
    case "indent": {
      const i = at(change.line);
      const line = lines[i] ?? "";
      lines[i] =
        change.by >= 0 ? " ".repeat(change.by) + line : line.replace(new RegExp(`^ {0,${-change.by}}`), "");
      break;
    }
    case "value":
    case "key": {
      const i = at(change.line);
      const line = lines[i] ?? "";
      const colon = line.indexOf(":");
      if (colon < 0) lines[i] = line + change.text;
      else if (change.kind === "value") lines[i] = `${line.slice(0, colon + 1)} ${change.text}`;
      else lines[i] = line.slice(0, line.search(/\S|$/)) + change.text + line.slice(colon);
      break;
    }
  }
  return lines.join("\n");
}

const textMutation: fc.Arbitrary<string> = fc
  .tuple(seed, fc.array(textChange, { minLength: 1, maxLength: 6 }))
  .map(([index, changes]) => changes.reduce(applyTextChange, corpus[index] ?? ""));

const MINIMAL_TAIL =
  "servers:\n  - listen: 8080\n    routes:\n      - path: /\n        return: { status: 204 }\n";

const construct: fc.Arbitrary<string> = fc.oneof(
  // Billion laughs: each level refers to the one before `width` times.
  fc
    .record({ depth: fc.integer({ min: 1, max: 12 }), width: fc.integer({ min: 1, max: 10 }) })
    .map(({ depth, width }) => {
      const lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"];
      for (let d = 1; d <= depth; d++)
        lines.push(
          `l${d}: &l${d} [${Array(width)
            .fill(`*l${d - 1}`)
            .join(", ")}]`,
        );
      return `${lines.join("\n")}\n${MINIMAL_TAIL}`;
    }),
  // Deep nesting, as flow collections or as indentation.
  fc
    .record({
      depth: fc.integer({ min: 10, max: 3000 }),
      style: fc.constantFrom("flow-seq", "flow-map", "block-seq", "block-map"),
    })
    .map(({ depth, style }) => {
      if (style === "flow-seq") return `servers: ${"[".repeat(depth)}${"]".repeat(depth)}\n`;
      if (style === "flow-map") return `servers: ${"{a: ".repeat(depth)}1${"}".repeat(depth)}\n`;
      if (style === "block-seq")
        return `servers:\n${Array.from({ length: Math.min(depth, 400) }, (_, i) => `${" ".repeat(i * 2)}- `).join("\n")}x\n`;
      return `servers:\n${Array.from({ length: Math.min(depth, 400) }, (_, i) => `${" ".repeat(i * 2 + 2)}k${i}:`).join("\n")} x\n`;
    }),
  // Huge scalars as a key, a value, a route path, a server name.
  fc
    .record({
      size: fc.integer({ min: 1000, max: 100_000 }),
      where: fc.constantFrom("key", "value", "path", "name", "regex"),
    })
    .map(({ size, where }) => {
      const big = "a".repeat(size);
      if (where === "key") return `${big}: 1\n${MINIMAL_TAIL}`;
      if (where === "value") return `pid_file: ${big}\n${MINIMAL_TAIL}`;
      if (where === "name")
        return `servers:\n  - listen: 8080\n    server_names: [${big}]\n    routes: [{ path: /, return: { status: 200 } }]\n`;
      if (where === "regex")
        return `servers:\n  - listen: 8080\n    routes: [{ regex: "(a+)+${big}", return: { status: 200 } }]\n`;
      return `servers:\n  - listen: 8080\n    routes: [{ path: /${big}, return: { status: 200 } }]\n`;
    }),
  // Merge keys, tags, several documents, directives, complex keys.
  fc.constantFrom(
    `base: &b { listen: 8080, routes: [{ path: /, return: { status: 200 } }] }\nservers:\n  - <<: *b\n  - <<: [*b, *b]\n    listen: 8081\n`,
    `servers:\n  - <<: *missing\n`,
    `servers: !!set { a, b }\n`,
    `servers: !!omap [ a: 1 ]\n`,
    `servers: !!binary aGVsbG8=\n`,
    `workers: !cpus auto\n${MINIMAL_TAIL}`,
    `workers: !!float 2\n${MINIMAL_TAIL}`,
    `%YAML 1.1\n---\n${MINIMAL_TAIL}`,
    `%TAG ! tag:x,2000:\n--- !foo\n${MINIMAL_TAIL}`,
    `${MINIMAL_TAIL}---\n${MINIMAL_TAIL}`,
    `---\n...\n`,
    `? [a, b]\n: 1\n${MINIMAL_TAIL}`,
    `? { a: 1 }\n: 1\n${MINIMAL_TAIL}`,
    `servers:\n  - ? listen\n    : 8080\n    routes: [{ path: /, return: { status: 200 } }]\n`,
    `a: &a [*a]\n${MINIMAL_TAIL}`,
    `&a a: *a\n${MINIMAL_TAIL}`,
    `servers: &s\n  - listen: 8080\n    routes: *s\n`,
    `\ufeff${MINIMAL_TAIL}`,
    MINIMAL_TAIL.replace(/\n/g, "\r\n"),
    MINIMAL_TAIL.replace(/ {2}/g, "\t"),
    "",
    " ",
    "#only a comment\n",
    "~\n",
    "[]\n",
    '"servers"\n',
  ),
);

/** Every kind of input, weighted towards the ones built from real configs. */
export const configInput: fc.Arbitrary<ConfigInput> = fc.oneof(
  { weight: 2, arbitrary: randomString.map((text) => ({ kind: "string" as const, text })) },
  { weight: 2, arbitrary: randomDocument.map((text) => ({ kind: "document" as const, text })) },
  { weight: 3, arbitrary: typedMutation.map((text) => ({ kind: "typed" as const, text })) },
  { weight: 4, arbitrary: textMutation.map((text) => ({ kind: "text" as const, text })) },
  { weight: 1, arbitrary: construct.map((text) => ({ kind: "construct" as const, text })) },
);
