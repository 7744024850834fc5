/**
 * Turns ajv's validation errors into sentences for an operator, each positioned at the YAML
 * node it is about (for an unknown key: the key itself). Raw ajv messages never reach the
 * operator: every keyword the schema uses has its own wording here.
 */

import type { ErrorObject } from "ajv";
import { valueFormats } from "./formats.js";
import type { JsonSchema } from "./schema.js";
import { quoteList, suggestion } from "./suggest.js";
import type { ConfigIssue } from "./types.js";
import { parseDuration } from "./units.js";
import type { DataPath, SourceDocument } from "./yaml-source.js";

/** Splits an ajv `instancePath` (JSON Pointer) into keys and array indexes. */
export function splitInstancePath(pointer: string, data: unknown): DataPath {
  const path: (string | number)[] = [];
  let here = data;
  for (const raw of pointer.split("/").slice(1)) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    const segment = Array.isArray(here) ? Number(key) : key;
    path.push(segment);
    here = here !== null && typeof here === "object" ? (here as Record<string, unknown>)[key] : undefined;
  }
  return path;
}

/** How a value is shown in a message: `'text'`, `42`, `true`, `a list`, `a mapping`. */
export function show(value: unknown): string {
  if (value === null || value === undefined) return "an empty value";
  if (typeof value === "string") return `'${value}'`;
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

/** What the operator calls the thing at `path`: `weight`, `listen entry`, `upstream 'api'`. */
export function labelOf(path: DataPath): string {
  const last = path.at(-1);
  const parent = path.at(-2);
  if (last === undefined) return "the top level of the file";
  if (typeof last === "number") return `${String(parent)} entry`;
  if (parent === "upstreams" && path.length === 2) return `upstream '${last}'`;
  if (parent === "set") return `header '${last}'`;
  return last;
}

/** The kind of mapping at `path`, for "route is missing required key 'x'". */
function objectKind(path: DataPath): string {
  if (path.length === 0) return "the config";
  if (path[0] === "servers" && path.length === 2) return "server";
  if (path[2] === "routes" && path.length === 4) return "route";
  if (path[0] === "upstreams" && path.length === 2) return `upstream '${String(path[1])}'`;
  if (path[0] === "upstreams" && path.length === 4) return "upstream server";
  return `'${labelOf(path)}'`;
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  integer: "an integer",
  number: "a number",
  boolean: "true or false",
  object: "a mapping (key: value)",
  array: "a list",
};

function typePhrase(schema: JsonSchema): string {
  const format = valueFormats[String(schema.format)];
  const types = ([] as unknown[]).concat(schema.type);
  if (format) return types.includes("array") ? `${format.expected}, or a list of them` : format.expected;
  if (types.length === 1 && types[0] === "integer") return integerPhrase(schema);
  return types.map((t) => TYPE_NAMES[String(t)] ?? String(t)).join(" or ");
}

function integerPhrase(schema: JsonSchema): string {
  const { minimum, maximum } = schema;
  if (typeof minimum === "number" && typeof maximum === "number") {
    return `an integer between ${minimum} and ${maximum}`;
  }
  if (typeof minimum === "number") return `an integer >= ${minimum}`;
  return "an integer";
}

/** The operator-facing sentence for one ajv error, or undefined for errors that add nothing. */
function describe(error: ErrorObject, path: DataPath): string | undefined {
  const schema = (error.parentSchema ?? {}) as JsonSchema;
  const label = labelOf(path);
  const data = error.data;
  switch (error.keyword) {
    case "additionalProperties": {
      const key = String(error.params.additionalProperty);
      const valid = Object.keys((schema.properties ?? {}) as JsonSchema);
      return `unknown key '${key}'${suggestion(key, valid)}`;
    }
    case "required": {
      const key = String(error.params.missingProperty);
      if (path.length === 0 && key === "servers") {
        return "missing required key 'servers': the config needs a list of at least one server";
      }
      return `${objectKind(path)} is missing required key '${key}'`;
    }
    case "type": {
      if (schema.format === "duration" && typeof data === "number") {
        const parsed = parseDuration(data);
        return parsed.ok ? undefined : `${label}: ${parsed.error}`;
      }
      const tail = schema.type === "string" && typeof data !== "object" ? "; put the value in quotes" : "";
      return `${label} must be ${typePhrase(schema)} (got ${show(data)})${tail}`;
    }
    case "minimum":
    case "maximum":
      if (schema.format === "listen") return valueFormats.listen?.check(String(data));
      return `${label} must be ${valueFormats[String(schema.format)] ? typePhrase(schema) : integerPhrase(schema)} (got ${show(data)})`;
    case "format": {
      const name = String(error.params.format);
      const problem = valueFormats[name]?.check(String(data));
      if (problem === undefined) return `${label} must be ${typePhrase(schema)} (got ${show(data)})`;
      return name === "duration" || name === "size" ? `${label}: ${problem}` : problem;
    }
    case "propertyNames": {
      const format = valueFormats[String((schema.propertyNames as JsonSchema).format)];
      return format?.check(String(error.params.propertyName));
    }
    case "enum": {
      const allowed = schema.enum as unknown[];
      const names = allowed.map(String);
      const list = allowed.every((v) => typeof v === "number") ? names.join(", ") : quoteList(names);
      const near = typeof data === "string" ? suggestion(data, names, "valid values") : "";
      return `${label} must be one of ${list} (got ${show(data)})${near.startsWith("; did") ? near : ""}`;
    }
    case "minItems":
      return `${label} must not be an empty list: write at least ${error.params.limit} entr${error.params.limit === 1 ? "y" : "ies"}`;
    case "minLength":
      return `${label} must not be empty`;
    default:
      return `${label} has an invalid value (${show(data)}); see conf/portico.schema.json for what is allowed`;
  }
}

/** Rewrites ajv errors for `data` into positioned issues. */
export function schemaIssues(
  errors: readonly ErrorObject[],
  data: unknown,
  source: SourceDocument,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const error of errors) {
    // Errors inside propertyNames are reported once, by the propertyNames error itself.
    if (error.schemaPath.includes("/propertyNames/")) continue;
    const path = splitInstancePath(error.instancePath, data);
    const message = describe(error, path);
    if (message === undefined) continue;
    let at = source.valueAt(path);
    if (error.keyword === "additionalProperties")
      at = source.keyAt(path, String(error.params.additionalProperty));
    if (error.keyword === "propertyNames") at = source.keyAt(path, String(error.params.propertyName));
    issues.push(source.issue(at, message));
  }
  return issues;
}
