/**
 * A worker's retry budget (Finagle's and Envoy's idea): retries may add at most 20% to the
 * requests sent upstream, plus a few, so that when every peer is failing a worker does not
 * multiply its load on them by `tries`. Each forwarded request deposits 0.2 of a retry; each
 * retry withdraws one. The balance starts at, and every 10 s is raised back to, 3 retries
 * (so a quiet upstream can still retry), and never holds more than 100.
 */

/** Share of requests that may be retried. */
export const RETRY_BUDGET_PERCENT = 20;
/** Retries always allowed per window, whatever the traffic. */
export const RETRY_BUDGET_MIN = 3;
const WINDOW_MS = 10_000;
const MAX_BALANCE = 100;

export class RetryBudget {
  private balance = RETRY_BUDGET_MIN;
  private windowStart = performance.now();
  /** Retries refused because the budget was spent (for the metrics issue). */
  exhausted = 0;
  private reportedWindow = -1;
  private window = 0;

  /** A request was forwarded. */
  deposit(): void {
    this.balance = Math.min(MAX_BALANCE, this.balance + RETRY_BUDGET_PERCENT / 100);
  }

  /** Take one retry from the budget; false (and counted) when it is spent. */
  withdraw(): boolean {
    const now = performance.now();
    if (now - this.windowStart >= WINDOW_MS) {
      this.windowStart = now;
      this.window++;
      this.balance = Math.max(this.balance, RETRY_BUDGET_MIN);
    }
    if (this.balance >= 1) {
      this.balance -= 1;
      return true;
    }
    this.exhausted++;
    return false;
  }

  /** True for the first refused retry of each 10 s window: log once per window, not per request. */
  takeReport(): boolean {
    if (this.reportedWindow === this.window) return false;
    this.reportedWindow = this.window;
    return true;
  }
}
