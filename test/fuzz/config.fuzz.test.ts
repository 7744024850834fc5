/**
 * Fuzzing the config loader (issue 13, item 6): random strings, random YAML documents,
 * seed configs changed at random paths or in their text, and unusual YAML constructs (see
 * config-inputs.ts), each written to a file in a temp dir and loaded with `loadConfig`, as
 * `portico check`, `portico start` and a reload do.
 *
 * Property: loading returns a config (and then no issue is an error), or the project's config
 * error, a list of issues each with the file as given, a line >= 1 and a col >= 1 within the
 * file, a severity and a non-empty message (the one whole-file issue, an empty file, has line 0).
 * Never an exception, never an "internal error" issue (the loader's last-resort catch of an
 * exception), never a stack trace or an `[object Object]` in a message, and never slow: a
 * config that takes seconds to check is a denial of service on reload.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig, parseConfig } from "../../src/config/load.js";
import type { ConfigIssue } from "../../src/config/types.js";
import { type ConfigInput, configInput, corpus } from "./config-inputs.js";
import { FUZZ_PATH, FUZZ_SECONDS, fuzzTestTimeout, ProcessErrorWatch, runFuzz } from "./fuzz-options.js";

/** Longest one load may take, ms (the largest inputs are ~100 kB). */
const SLOW_MS = 3000;

/** Issues about the file as a whole, the only ones with line 0 and col 0. */
const WHOLE_FILE = [/^the config file is empty/];

let dir: string;
const watch = new ProcessErrorWatch();
const stats = {
  kinds: new Map<ConfigInput["kind"], number>(),
  valid: 0,
  invalid: 0,
  issues: 0,
  slowestMs: 0,
};

function checkIssue(issue: ConfigIssue, file: string, lineCount: number): void {
  const where = `${issue.file}:${issue.line}:${issue.col}: ${issue.message}`;
  expect(issue.file, where).toBe(file);
  expect(typeof issue.message, where).toBe("string");
  expect(issue.message.trim().length, where).toBeGreaterThan(0);
  expect(["error", "warning"], where).toContain(issue.severity);
  expect(issue.message, where).not.toMatch(/internal error/i);
  expect(issue.message, where).not.toMatch(/\n\s+at .+:\d+:\d+/);
  expect(issue.message, where).not.toContain("[object Object]");
  if (issue.line === 0) {
    expect(issue.col, where).toBe(0);
    expect(
      WHOLE_FILE.some((re) => re.test(issue.message)),
      `line 0 is only for the file as a whole: ${where}`,
    ).toBe(true);
    return;
  }
  expect(Number.isInteger(issue.line) && Number.isInteger(issue.col), where).toBe(true);
  expect(issue.line, where).toBeGreaterThanOrEqual(1);
  expect(issue.col, where).toBeGreaterThanOrEqual(1);
  expect(issue.line, `${where} (the file has ${lineCount} lines)`).toBeLessThanOrEqual(lineCount);
}

let caseNumber = 0;

async function loadOne(input: ConfigInput): Promise<void> {
  const mark = watch.errors.length;
  stats.kinds.set(input.kind, (stats.kinds.get(input.kind) ?? 0) + 1);
  const file = join(dir, `case-${++caseNumber % 8}.yaml`);
  writeFileSync(file, input.text);
  const started = performance.now();
  let result: ReturnType<typeof loadConfig>;
  try {
    result = loadConfig(file);
  } catch (err) {
    throw new Error(`loadConfig threw: ${err instanceof Error ? err.stack : String(err)}`);
  }
  const ms = performance.now() - started;
  stats.slowestMs = Math.max(stats.slowestMs, ms);
  expect(ms, "checking one config must not take seconds").toBeLessThan(SLOW_MS);
  // Lines as the YAML parser counts them (\n, and a \r not followed by \n, end a line).
  const lineCount = input.text.split(/\r\n|\r|\n/).length;
  expect(Array.isArray(result.issues)).toBe(true);
  for (const issue of result.issues) checkIssue(issue, file, lineCount);
  const errors = result.issues.filter((i) => i.severity === "error");
  if (result.config) {
    expect(errors, "a config is returned only when no issue is an error").toEqual([]);
    expect(result.config.servers.length).toBeGreaterThan(0);
    expect(Object.isFrozen(result.config)).toBe(true);
    stats.valid++;
  } else {
    expect(errors.length, "no config without an error saying why").toBeGreaterThan(0);
    stats.invalid++;
  }
  stats.issues += result.issues.length;
  // A synchronous loader gives the event loop a turn between cases (timers, rejections).
  await new Promise((resolve) => setImmediate(resolve));
  watch.check(mark);
}

beforeAll(() => {
  watch.install();
  dir = mkdtempSync(join(tmpdir(), "portico-fuzz-config-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  watch.uninstall();
});

it("the seed configs load as they are: most of them are valid", () => {
  expect(corpus.length).toBeGreaterThanOrEqual(10);
  const valid = corpus.filter((text) => parseConfig(text, "seed.yaml").config !== undefined);
  expect(valid.length).toBeGreaterThanOrEqual(5);
});

it(
  "random and mutated YAML: a config or positioned issues, never an exception",
  async () => {
    await runFuzz(configInput, loadOne, {
      name: "config",
      minCasesPerSecond: 50,
      summary: () =>
        `${[...stats.kinds].map(([k, n]) => `${k} ${n}`).join(", ")}; ${stats.valid} valid, ${stats.invalid} invalid, ${stats.issues} issues; slowest ${Math.round(stats.slowestMs)} ms; ${corpus.length} seed configs`,
    });
    watch.check();
    if (FUZZ_SECONDS >= 10 && FUZZ_PATH === undefined) {
      // Mutations that never leave a config valid (or never make one invalid) would test little.
      expect(stats.valid).toBeGreaterThan(0);
      expect(stats.invalid).toBeGreaterThan(0);
    }
  },
  fuzzTestTimeout(),
);
