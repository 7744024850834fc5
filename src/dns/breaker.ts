/**
 * A circuit breaker per nameserver: after `failures` consecutive failures it opens and the
 * resolver skips that server; after `cooldownMs` one probe query is let through (half-open);
 * its success closes the breaker, its failure opens it for another cool-down.
 */

export type BreakerState = "closed" | "open" | "half-open";

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. Default 3. */
  failures?: number;
  /** Milliseconds an open breaker waits before a probe. Default 5000. */
  cooldownMs?: number;
}

export class CircuitBreaker {
  private consecutive = 0;
  private openedAt = 0;
  private probing = false;
  state: BreakerState = "closed";
  private readonly threshold: number;
  private readonly cooldownMs: number;

  constructor(options: BreakerOptions = {}) {
    this.threshold = options.failures ?? 3;
    this.cooldownMs = options.cooldownMs ?? 5000;
  }

  /** Whether a query may go to this server now (an open breaker lets one probe through after the cool-down). */
  allow(now = Date.now()): boolean {
    if (this.state === "closed") return true;
    if (this.state === "open" && now - this.openedAt >= this.cooldownMs) {
      this.state = "half-open";
      this.probing = false;
    }
    if (this.state === "half-open" && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  success(): void {
    this.consecutive = 0;
    this.probing = false;
    this.state = "closed";
  }

  failure(now = Date.now()): void {
    this.consecutive++;
    this.probing = false;
    if (this.state === "half-open" || this.consecutive >= this.threshold) {
      this.state = "open";
      this.openedAt = now;
    }
  }
}
