/**
 * Loggers (pino). Two streams, as in nginx: the error/lifecycle log and the access log, each
 * to stdout, stderr or a file. Lines are JSON, one per event; writes are asynchronous and
 * a line is always shorter than PIPE_BUF, so workers sharing stdout never interleave.
 */
import { pino } from "pino";

/** pino level names accepted by the config. */
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

/** A pino logger. */
export type Logger = pino.Logger;

/** Open a pino destination for `stdout`, `stderr` or a file path (appended to, created if missing). */
function destination(target: string): pino.DestinationStream {
  if (target === "stdout") return pino.destination({ dest: 1, sync: false });
  if (target === "stderr") return pino.destination({ dest: 2, sync: false });
  return pino.destination({ dest: target, sync: false, append: true, mkdir: true });
}

/** The lifecycle/error logger of the master or a worker, tagged with its role. */
export function createLogger(target: string, level: LogLevel, bindings: Record<string, unknown>): Logger {
  return pino(
    { level, base: { pid: process.pid, ...bindings }, timestamp: pino.stdTimeFunctions.isoTime },
    destination(target),
  );
}

/** The access logger: one line per request, or a silent logger when `target` is `off`. */
export function createAccessLogger(target: string): Logger {
  if (target === "off") return pino({ enabled: false });
  return pino(
    { base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, messageKey: "msg" },
    destination(target),
  );
}

/** Flush a logger's buffered lines synchronously (before `process.exit`). */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // a destination that is not open yet has nothing to flush
  }
}
