/**
 * Request ids for requests that arrive without one: a random 80-bit prefix drawn once per
 * worker process, then a counter. Unique across workers and restarts (each process draws
 * its own prefix) at the cost of a string concatenation, where `randomUUID` costs a call
 * into the CSPRNG buffer per request. Shaped like a UUID (8-4-4-4-12 hex digits), so log
 * tooling that expects one keeps working; it is not a random (version 4) UUID.
 */
import { randomBytes } from "node:crypto";

const prefix = (() => {
  const hex = randomBytes(10).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-`;
})();
const COUNTER_DIGITS = 12;
const ZEROS = "0".repeat(COUNTER_DIGITS);
let counter = 0;

/** The next request id of this process. */
export function nextRequestId(): string {
  // 12 hex digits: 2^48 ids before the counter wraps (nine years at a million per second).
  counter = counter >= 0xffffffffffff ? 0 : counter + 1;
  const digits = counter.toString(16);
  return prefix + ZEROS.slice(digits.length) + digits;
}

/** A request id we accept from a client: printable, no spaces, at most 200 characters. */
const CLIENT_REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** The client's `X-Request-Id` when it is acceptable, else a new id. */
export function requestIdFor(inbound: string | string[] | undefined): string {
  return typeof inbound === "string" && CLIENT_REQUEST_ID.test(inbound) ? inbound : nextRequestId();
}
