/**
 * Settings shared by the fuzzers in test/fuzz/ and the runner that applies them.
 *
 * - `FUZZ_SEED` (default 1337): the seed of every generator, so CI runs the same cases each time;
 *   a failure prints it, with fast-check's counterexample path, so the run can be replayed.
 * - `FUZZ_SECONDS` (default 60): how long each fuzzer generates cases; CI runs each for 60 s,
 *   longer runs are by hand (`FUZZ_SECONDS=600 npx vitest run test/fuzz/dns.fuzz.test.ts`).
 * - `FUZZ_PATH`: with `FUZZ_SEED`, replay one counterexample (fast-check's `path`) instead of
 *   searching; the minimum case count is then not checked.
 *
 * The time bound is fast-check's `interruptAfterTimeLimit` (as a plugin, the form fast-check 4.10+
 * recommends; `failOnInterrupt: false` is the old `markInterruptAsFailure: false`), with a
 * `numRuns` too large to be reached: each fuzzer runs for about FUZZ_SECONDS, then passes if no
 * case failed and at least a minimum number of cases ran (a broken generator must not pass by
 * generating nothing).
 */
import fc from "fast-check";

function envNumber(name: string, fallback: number, integer: boolean): number {
  const text = process.env[name];
  if (text === undefined || text.trim() === "") return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`${name}=${text}: expected ${integer ? "a whole number" : "a number"} >= 0`);
  }
  return value;
}

/** Seed of every fuzzer's generators (FUZZ_SEED, default 1337). */
export const FUZZ_SEED = envNumber("FUZZ_SEED", 1337, true) | 0;

/** How long each fuzzer generates cases, seconds (FUZZ_SECONDS, default 60). */
export const FUZZ_SECONDS = envNumber("FUZZ_SECONDS", 60, false);

/** fast-check's counterexample path to replay (FUZZ_PATH), or undefined to search. */
export const FUZZ_PATH = process.env.FUZZ_PATH?.trim() || undefined;

/** A run count no fuzzer reaches within its time bound: the time limit ends every run. */
const UNREACHABLE_RUNS = 1_000_000_000;

/**
 * The vitest timeout of a fuzz test: the time bound plus `marginMs` for setup, the case in
 * flight when time runs out, shrinking a failure (also bounded) and cleanup.
 */
export function fuzzTestTimeout(marginMs = 30_000): number {
  return Math.ceil(FUZZ_SECONDS * 1000) + marginMs;
}

/** What `runFuzz` needs besides the generator and the property. */
export interface FuzzRun {
  /** Name used in the log line and the failure message (`dns`, `config`, `listener`). */
  name: string;
  /**
   * Fewest cases that must run for the whole time bound to count (scaled down for shorter
   * bounds: `minCasesPerSecond * FUZZ_SECONDS`, at least `minCases`).
   */
  minCasesPerSecond: number;
  /** Floor of the minimum, default 10. */
  minCases?: number;
  /** Extra text for the log line (e.g. what the cases did), called after the run. */
  summary?: () => string;
}

/** The outcome of a passing fuzz run. */
export interface FuzzReport {
  cases: number;
  seconds: number;
  seed: number;
}

/**
 * Run `property` on values of `arbitrary` for FUZZ_SECONDS with FUZZ_SEED, one case at a time.
 * Throws (failing the test) with the counterexample, the seed and the replay command when a
 * case fails, or when fewer cases ran than the minimum. fast-check stops waiting for the case
 * in flight when time runs out, but that case keeps running: this waits for it to finish, so
 * the caller's cleanup never pulls a server from under a running case.
 */
export async function runFuzz<T>(
  arbitrary: fc.Arbitrary<T>,
  property: (value: T) => Promise<void>,
  run: FuzzRun,
): Promise<FuzzReport> {
  let inflight: Promise<unknown> = Promise.resolve();
  const predicate = fc.asyncProperty(arbitrary, (value) => {
    const result = property(value);
    inflight = result.catch(() => {});
    return result;
  });
  const started = performance.now();
  const details = await fc.check(predicate, {
    seed: FUZZ_SEED,
    numRuns: UNREACHABLE_RUNS,
    path: FUZZ_PATH,
    plugins: [fc.interruptAfterTimeLimit(FUZZ_SECONDS * 1000, { failOnInterrupt: false })],
  });
  await inflight;
  const seconds = Math.round((performance.now() - started) / 100) / 10;
  const extra = run.summary ? `; ${run.summary()}` : "";
  console.log(
    `fuzz ${run.name}: ${details.numRuns} cases in ${seconds} s (FUZZ_SEED=${FUZZ_SEED}, FUZZ_SECONDS=${FUZZ_SECONDS})${extra}`,
  );
  if (details.failed) {
    const report = (await fc.asyncDefaultReportMessage(details)) ?? "failed";
    const error = details.errorInstance;
    const cause = error instanceof Error ? (error.stack ?? error.message) : String(error);
    const replay =
      details.counterexamplePath === null
        ? ""
        : `\nReplay just this case: FUZZ_SEED=${FUZZ_SEED} FUZZ_PATH="${details.counterexamplePath}" npx vitest run test/fuzz/${run.name}.fuzz.test.ts`;
    throw new Error(
      `fuzz ${run.name} failed (FUZZ_SEED=${FUZZ_SEED}): ${report}${replay}\nThe failure: ${cause}`,
    );
  }
  if (FUZZ_PATH === undefined) {
    const minimum = Math.max(run.minCases ?? 10, Math.floor(run.minCasesPerSecond * FUZZ_SECONDS));
    if (details.numRuns < minimum) {
      throw new Error(
        `fuzz ${run.name}: only ${details.numRuns} cases ran in ${seconds} s, expected at least ${minimum}: is a generator broken?`,
      );
    }
  }
  return { cases: details.numRuns, seconds, seed: FUZZ_SEED };
}

/**
 * Records every uncaught exception and unhandled rejection while installed (a fuzzer's process
 * must see none). `uninstall` in afterAll.
 */
export class ProcessErrorWatch {
  readonly errors: string[] = [];
  private readonly onError = (err: unknown, origin?: string): void => {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    this.errors.push(`${origin ?? "error"}: ${text}`);
  };
  private readonly onRejection = (reason: unknown): void => this.onError(reason, "unhandledRejection");

  install(): this {
    process.on("uncaughtException", this.onError);
    process.on("unhandledRejection", this.onRejection);
    return this;
  }

  uninstall(): void {
    process.off("uncaughtException", this.onError);
    process.off("unhandledRejection", this.onRejection);
  }

  /** Throw if anything was recorded since `mark` (a count from an earlier `errors.length`). */
  check(mark = 0): void {
    if (this.errors.length > mark) {
      throw new Error(`uncaught error in the test process:\n${this.errors.slice(mark).join("\n")}`);
    }
  }
}
