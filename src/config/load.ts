/**
 * The entry points of the config module: read a YAML file, validate it against the schema
 * and the semantic checks, and build the frozen `Config`, or report every problem with
 * `file:line:col`.
 */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Ajv } from "ajv";
import { semanticIssues } from "./checks.js";
import { valueFormats } from "./formats.js";
import { buildConfig } from "./normalize.js";
import { configSchema } from "./schema.js";
import { schemaIssues } from "./schema-errors.js";
import type { Config, ConfigIssue } from "./types.js";
import { SourceDocument } from "./yaml-source.js";

/** What loading a config produced: the config (only when there is no error) and every issue found. */
export interface ConfigResult {
  config?: Config;
  issues: ConfigIssue[];
}

const ajv = new Ajv({
  allErrors: true,
  useDefaults: true,
  verbose: true,
  allowUnionTypes: true,
  strict: true,
});
for (const [name, format] of Object.entries(valueFormats)) {
  ajv.addFormat(name, { type: "string", validate: (value: string) => format.check(value) === undefined });
}
const validateSchema = ajv.compile(configSchema);

/** Sorts issues by position and drops exact repeats (one problem reached by two paths). */
function tidy(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues
    .filter((i) => {
      const key = `${i.line}:${i.col}:${i.severity}:${i.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.col - b.col);
}

const hasError = (issues: readonly ConfigIssue[]) => issues.some((i) => i.severity === "error");

function check(text: string, file: string): ConfigResult {
  const source = new SourceDocument(text, file);
  const yamlIssues = [...source.syntaxIssues(), ...source.duplicateKeyIssues()];
  // A syntax error leaves the document half-parsed: checking the rest would mostly add noise.
  // Duplicate keys are harmless to the rest of the checks, which then run as usual.
  if (source.doc.errors.length > 0) return { issues: tidy(yamlIssues) };
  let data: unknown;
  try {
    data = source.toData();
  } catch (error) {
    const issue = source.aliasIssue(error);
    if (!issue) throw error;
    return { issues: tidy([...yamlIssues, issue]) };
  }
  if (data === null || data === undefined) {
    return {
      issues: tidy([
        ...yamlIssues,
        source.issue({ line: 0, col: 0 }, "the config file is empty: it needs at least a 'servers' list"),
      ]),
    };
  }
  const issues = [...yamlIssues];
  if (!validateSchema(data)) issues.push(...schemaIssues(validateSchema.errors ?? [], data, source));
  issues.push(...semanticIssues(data, source));
  const sorted = tidy(issues);
  if (hasError(sorted)) return { issues: sorted };
  return { config: buildConfig(data, source, resolve(file)), issues: sorted };
}

/**
 * Parses, validates and normalizes config text. `file` names the text in messages (as
 * given) and, made absolute, becomes `Config.file`. `config` is present only when no issue
 * is an error. Never throws for bad input.
 */
export function parseConfig(text: string, file: string): ConfigResult {
  try {
    return check(text, file);
  } catch (error) {
    // A bug in the checker must still come out as a message, not a stack trace on reload.
    const message = `internal error while checking the config (please report it): ${(error as Error).message}`;
    return { issues: [{ file, line: 0, col: 0, message, severity: "error" }] };
  }
}

/** The reason part of a Node fs error: `ENOENT: no such file or directory, open 'x'` -> `no such file or directory`. */
function readFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return /^[A-Z]+: ([^,]+)/.exec(message)?.[1] ?? message;
}

/**
 * Reads and checks the config file at `file` (relative to the working directory). Issues
 * name the file as given; `Config.file` is absolute. An unreadable file is a single issue.
 */
export function loadConfig(file: string): ConfigResult {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const message = `cannot read config file: ${readFailure(error)}`;
    return { issues: [{ file, line: 0, col: 0, message, severity: "error" }] };
  }
  return parseConfig(text, file);
}

/** Formats an issue for a terminal: `FILE:LINE:COL: message`, or `FILE: message` for the whole file. */
export function formatIssue(issue: ConfigIssue): string {
  const message = issue.severity === "warning" ? `warning: ${issue.message}` : issue.message;
  return issue.line === 0
    ? `${issue.file}: ${message}`
    : `${issue.file}:${issue.line}:${issue.col}: ${message}`;
}
