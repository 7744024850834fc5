/**
 * Writes the configuration reference, `docs/configuration.md`, from the one JSON Schema in
 * `schema.ts` (and the value formats of `formats.ts`): every key with its path, type,
 * default, description and allowed values; every mapping a section of its own.
 * Run after a build: `node dist/config/write-reference.js` (or `npm run reference`).
 * `test/docs/reference.test.ts` fails when the file on disk differs from `renderReference()`.
 */

import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { valueFormats } from "./formats.js";
import { configSchema, type JsonSchema } from "./schema.js";

/** One mapping of the config: its path (`servers[].routes[]`), its schema, its nesting depth. */
interface Section {
  path: string;
  schema: JsonSchema;
  depth: number;
}

const TYPE_NAMES: Record<string, string> = {
  string: "string",
  integer: "integer",
  number: "number",
  boolean: "boolean",
  object: "mapping",
  array: "list",
};

/**
 * Short names of the value formats of `formats.ts`, as the reference writes a key's type; the
 * "Value formats" section says what each takes. A format missing here shows its own name.
 */
const FORMAT_LABELS: Record<string, string> = {
  duration: "duration",
  size: "size",
  listen: "listen address",
  "upstream-address": "upstream address",
  "srv-name": "SRV name",
  nameserver: "nameserver",
  "server-name": "server name",
  "header-name": "header name",
  "hash-key": "hash key",
  "status-range": "status or range",
  "path-prefix": "path",
  cidr: "IP or CIDR range",
  workers: "workers count",
  "tls-auto": "`auto`",
  "error-log": "log destination",
  "upstream-name": "upstream name",
};

function formatLabel(format: string): string {
  return FORMAT_LABELS[format] ?? format;
}

function asSchema(value: unknown): JsonSchema | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as JsonSchema)
    : undefined;
}

function propertiesOf(schema: JsonSchema): Record<string, JsonSchema> {
  return (asSchema(schema.properties) ?? {}) as Record<string, JsonSchema>;
}

function typesOf(schema: JsonSchema): string[] {
  const type = schema.type;
  if (typeof type === "string") return [type];
  return Array.isArray(type) ? type.filter((t): t is string => typeof t === "string") : [];
}

/** The schema of a key's own section, and the path suffix that leads into it (`[]`, `.<name>`). */
function sectionChild(schema: JsonSchema): { schema: JsonSchema; suffix: string } | undefined {
  if (schema.properties) return { schema, suffix: "" };
  const items = asSchema(schema.items);
  if (items?.properties) return { schema: items, suffix: "[]" };
  const values = asSchema(schema.additionalProperties);
  if (values?.properties) return { schema: values, suffix: ".<name>" };
  return undefined;
}

/** Every mapping, depth first in schema order: the top level, then `timeouts`, ..., `servers[].routes[].rate_limit`. */
function sections(schema: JsonSchema, path = "", depth = 0): Section[] {
  const found: Section[] = [{ path, schema, depth }];
  for (const [key, child] of Object.entries(propertiesOf(schema))) {
    const inner = sectionChild(child);
    const here = path ? `${path}.${key}` : key;
    if (inner) found.push(...sections(inner.schema, `${here}${inner.suffix}`, depth + 1));
  }
  return found;
}

/**
 * GitHub's heading anchors: lower case, everything but letters, digits, spaces, `-` and `_`
 * dropped, spaces to `-`.
 */
export function headingSlug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function sectionTitle(path: string): string {
  return path === "" ? "Top level" : `\`${path}\``;
}

function sectionLink(path: string): string {
  return `[${sectionTitle(path)}](#${headingSlug(sectionTitle(path))})`;
}

/** A value as written in YAML: `5s`, `[error, timeout]`, `{}`. */
function yamlValue(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(yamlValue).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    return entries.length === 0 ? "{}" : `{ ${entries.map(([k, v]) => `${k}: ${yamlValue(v)}`).join(", ")} }`;
  }
  return String(value);
}

/** Markdown that must not turn into emphasis (`*.example.com`). */
function prose(text: string): string {
  return text.replace(/\*/g, "\\*");
}

/** Range, length and count constraints, in words. */
function constraints(schema: JsonSchema): string[] {
  const out: string[] = [];
  const { minimum, maximum, minLength, minItems } = schema;
  if (typeof minimum === "number" && typeof maximum === "number") out.push(`${minimum}-${maximum}`);
  else if (typeof minimum === "number") out.push(`>= ${minimum}`);
  else if (typeof maximum === "number") out.push(`<= ${maximum}`);
  if (typeof minLength === "number" && minLength > 1) out.push(`at least ${minLength} characters`);
  else if (minLength === 1) out.push("not empty");
  if (typeof minItems === "number" && minItems > 0)
    out.push(`at least ${minItems} item${minItems > 1 ? "s" : ""}`);
  if (schema.uniqueItems === true) out.push("no repeats");
  return out;
}

/** What a value of `schema` is, in words: `list of (a duration with a unit, ...)`, `one of \`a\`, \`b\``. */
function typeText(schema: JsonSchema): string {
  const format = typeof schema.format === "string" ? schema.format : undefined;
  const types = typesOf(schema);
  const parts: string[] = [];
  if (Array.isArray(schema.enum)) {
    parts.push(`one of ${schema.enum.map((v) => `\`${String(v)}\``).join(", ")}`);
  } else if (format) {
    // A format that also allows a list or a mapping (listen, tls) says so beside its own words.
    const extra = types.filter((t) => t === "array" || t === "object" || t === "boolean");
    parts.push(formatLabel(format));
    for (const t of extra) parts.push(`or a ${TYPE_NAMES[t]}`);
  } else if (types.includes("array")) {
    const items = asSchema(schema.items);
    const itemText = items ? typeText(items) : "";
    parts.push(
      !items ? "list" : /[;,]| or /.test(itemText) ? `list of (${itemText})` : `list of ${itemText}`,
    );
  } else if (types.includes("object") && asSchema(schema.additionalProperties)) {
    const keys = asSchema(schema.propertyNames);
    const keyText = typeof keys?.format === "string" ? formatLabel(keys.format) : "name";
    const values = asSchema(schema.additionalProperties) as JsonSchema;
    const valueText = values.properties ? "mapping" : typeText(values);
    parts.push(`mapping of ${keyText} to ${valueText}`);
  } else if (types.length > 0) {
    parts.push(types.map((t) => TYPE_NAMES[t] ?? t).join(" or "));
  } else {
    parts.push("any value");
  }
  const limits = constraints(schema);
  return limits.length > 0 ? `${parts.join(" ")}; ${limits.join(", ")}` : parts.join(" ");
}

/**
 * A description split into its text and its `Default: ...` sentence (the schema states every
 * default in the description, in words, and in `default` for ajv when there is one value).
 */
function splitDefault(description: string): { text: string; defaultText?: string } {
  const at = description.lastIndexOf("Default: ");
  if (at < 0) return { text: description };
  return {
    text: description.slice(0, at).trim(),
    defaultText: description
      .slice(at + "Default: ".length)
      .trim()
      .replace(/\.$/, ""),
  };
}

/** One key of a section: a list item with its path, type, default and description. */
function keyEntry(path: string, key: string, schema: JsonSchema, required: boolean): string {
  const here = path ? `${path}.${key}` : key;
  const description = typeof schema.description === "string" ? schema.description : "";
  let { text, defaultText } = splitDefault(description);
  if (required) text = text.replace(/\s*Required\.$/, "");
  const facts = [typeText(schema)];
  if (required) facts.push("**required**");
  else if ("default" in schema && defaultText === yamlValue(schema.default)) {
    facts.push(`default \`${defaultText}\``);
  } else if (defaultText !== undefined) facts.push(`default: ${prose(defaultText)}`);
  else if ("default" in schema) facts.push(`default \`${yamlValue(schema.default)}\``);
  const inner = sectionChild(schema);
  if (inner) facts.push(`see ${sectionLink(`${here}${inner.suffix}`)}`);
  const body = text ? `\n  ${prose(text)}` : "";
  return `- **\`${here}\`**: ${facts.join("; ")}.${body}`;
}

function sectionText(section: Section): string {
  const { path, schema } = section;
  const lines = [`## ${sectionTitle(path)}`, ""];
  const description = typeof schema.description === "string" ? schema.description : "";
  if (description) lines.push(prose(description), "");
  if (schema.format === "tls-auto") {
    lines.push("Written as `auto`, or as a mapping with these keys:", "");
  } else if (typesOf(schema).includes("boolean")) {
    lines.push("Written as `true` (the defaults), or as a mapping with these keys:", "");
  }
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  for (const [key, child] of Object.entries(propertiesOf(schema))) {
    lines.push(keyEntry(path, key, child, required.has(key)));
  }
  lines.push("");
  return lines.join("\n");
}

function contents(all: Section[]): string {
  return all.map((s) => `${"  ".repeat(s.depth)}- ${sectionLink(s.path)}`).join("\n");
}

function formatsText(): string {
  const names = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) {
        if (k === "format" && typeof v === "string") names.add(v);
        else walk(v);
      }
    }
  };
  walk(configSchema);
  const rows = [...names]
    // A format whose label is a literal (`auto`) is explained by its key's own section.
    .filter((name) => valueFormats[name] && !formatLabel(name).startsWith("`"))
    // Plain code-unit order of the lower-cased labels: the same on every machine and locale.
    .sort((a, b) => (formatLabel(a).toLowerCase() < formatLabel(b).toLowerCase() ? -1 : 1))
    .map(
      (name) =>
        `- **${formatLabel(name)}**: ${prose((valueFormats[name] as { expected: string }).expected)}.`,
    );
  return [
    "## Value formats",
    "",
    "Values of these kinds are checked by `portico check` (an error names the key, its line and",
    "column, and what was expected). Durations always need a unit (`500ms`, `5s`, `1m30s`, `1h`,",
    "`1d`: a bare number is refused); sizes are bytes or a binary unit (`512k`, `10m`, `1g`).",
    "",
    ...rows,
    "",
  ].join("\n");
}

/** The reference page as it is written to disk. */
export function renderReference(): string {
  const all = sections(configSchema);
  const header = [
    "# Configuration reference",
    "",
    "<!-- Generated by src/config/write-reference.ts from src/config/schema.ts: do not edit. Run `npm run reference`. -->",
    "",
    "This page is generated from the JSON Schema of `portico.yaml` (`src/config/schema.ts`, the one",
    "schema that `portico check` and every start and reload validate against, published for",
    "editors as [`conf/portico.schema.json`](../conf/portico.schema.json)) by `npm run reference`;",
    "a test fails when it is out of date, so edit the schema, not this page. Every key is listed",
    "with its full path (`servers[]` is each entry of the `servers` list, `upstreams.<name>` each",
    "named upstream), what it takes, its default and what it does. Unknown keys are errors",
    "everywhere. Checks that involve more than one key (a route's one matcher and one action, an",
    "upstream that must exist, ...) are listed in the README under",
    "[What is checked](../README.md#what-is-checked).",
    "",
    "Contents:",
    "",
    "- [Value formats](#value-formats)",
    contents(all),
    "",
  ].join("\n");
  return [header, formatsText(), ...all.map(sectionText)].join("\n").replace(/\n+$/, "\n");
}

const target = new URL("../../docs/configuration.md", import.meta.url);

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  writeFileSync(target, renderReference());
  console.log(`wrote ${fileURLToPath(target)}`);
}
