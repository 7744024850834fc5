/**
 * TLS session ticket keys, made by the master and given to every worker (with its config,
 * and again on each rotation), so a session resumed on a new connection works whichever
 * worker the kernel hands that connection to, and across reloads. Node takes one 48-byte key
 * per server (OpenSSL's name, AES and HMAC keys): after a rotation, tickets made with the old
 * key fall back to a full handshake.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";

/** How often the key is replaced (nginx leaves it to the operator; 12 h bounds what a stolen key opens). */
export const TICKET_KEY_ROTATION_MS = 12 * 3_600_000;

/** Events: `rotated` (the new key, base64). */
export class TicketKeys extends EventEmitter {
  private key = randomBytes(48).toString("base64");
  private timer?: NodeJS.Timeout;

  /** The current key, base64 (48 bytes). */
  get current(): string {
    return this.key;
  }

  /** Rotate every `everyMs` until `stop`. */
  start(everyMs = TICKET_KEY_ROTATION_MS): void {
    this.timer = setInterval(() => {
      this.key = randomBytes(48).toString("base64");
      this.emit("rotated", this.key);
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
