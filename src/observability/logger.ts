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

/** File destinations opened by this process, reopened on SIGUSR2 (log rotation). */
const files: Array<{ path: string; stream: ReturnType<typeof pino.destination> }> = [];

/** Open a pino destination for `stdout`, `stderr` or a file path (appended to, created if missing). */
function destination(target: string): pino.DestinationStream {
  if (target === "stdout") return pino.destination({ dest: 1, sync: false });
  if (target === "stderr") return pino.destination({ dest: 2, sync: false });
  const stream = pino.destination({ dest: target, sync: false, append: true, mkdir: true });
  files.push({ path: target, stream });
  return stream;
}

/**
 * Reopen every log file of this process (after logrotate moved it away): new lines go to a
 * new file at the configured path. Returns the paths reopened.
 */
export function reopenLogFiles(): string[] {
  for (const { stream } of files) stream.reopen();
  return files.map((f) => f.path);
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
