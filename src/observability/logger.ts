/**
 * Loggers (pino). Two streams, as in nginx: the error/lifecycle log and the access log, each
 * to stdout, stderr or a file. Lines are JSON, one per event; writes are asynchronous and
 * a line is always shorter than PIPE_BUF, so workers sharing stdout never interleave.
 * An access log written to a file is buffered, as nginx's `access_log ... buffer= flush=`:
 * lines go out in blocks of ACCESS_BUFFER_BYTES, at least every ACCESS_FLUSH_MS, and when
 * the worker exits or reopens its files (one write per block instead of one per request).
 */
import { pino } from "pino";

/** pino level names accepted by the config. */
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

/** A pino logger. */
export type Logger = pino.Logger;

/** File destinations opened by this process, reopened on SIGUSR2 (log rotation). */
const files: Array<{ path: string; stream: ReturnType<typeof pino.destination> }> = [];

/** An access-log file is written in blocks of this many bytes... */
export const ACCESS_BUFFER_BYTES = 4096;
/** ...or after this long, whichever comes first. */
export const ACCESS_FLUSH_MS = 1000;

let lastMs = 0;
let lastTime = "";

/**
 * pino's `isoTime`, computed once per millisecond: a busy worker writes many access-log
 * lines within one, and formatting a Date is a large part of a line's cost.
 */
function isoTimeByMs(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

/**
 * Open a pino destination for `stdout`, `stderr` or a file path (appended to, created if
 * missing); `buffered` files are written in blocks (see the top of this file).
 */
function destination(target: string, buffered = false): pino.DestinationStream {
  if (target === "stdout") return pino.destination({ dest: 1, sync: false });
  if (target === "stderr") return pino.destination({ dest: 2, sync: false });
  const stream = pino.destination({
    dest: target,
    append: true,
    mkdir: true,
    // Buffered blocks are written synchronously, as nginx does: a block to the page cache
    // costs a few microseconds, less than handing it to libuv's thread pool and back.
    ...(buffered
      ? { sync: true, minLength: ACCESS_BUFFER_BYTES, periodicFlush: ACCESS_FLUSH_MS }
      : { sync: false }),
  });
  files.push({ path: target, stream });
  return stream;
}

/** Write out what the file destinations of this process still buffer. */
export function flushLogFiles(): Promise<void> {
  return Promise.all(
    files.map(({ stream }) => new Promise<void>((resolve) => stream.flush(() => resolve()))),
  ).then(() => {});
}

/**
 * Reopen every log file of this process (after logrotate moved it away): buffered lines go
 * to the old file, new lines to a new file at the configured path. Returns the paths reopened.
 */
export function reopenLogFiles(): string[] {
  for (const { stream } of files) stream.flush(() => stream.reopen());
  return files.map((f) => f.path);
}

/** The lifecycle/error logger of the master or a worker, tagged with its role. */
export function createLogger(target: string, level: LogLevel, bindings: Record<string, unknown>): Logger {
  return pino(
    { level, base: { pid: process.pid, ...bindings }, timestamp: isoTimeByMs },
    destination(target),
  );
}

/** The access logger: one line per request, or a silent logger when `target` is `off`. */
export function createAccessLogger(target: string): Logger {
  if (target === "off") return pino({ enabled: false });
  return pino(
    { base: { pid: process.pid }, timestamp: isoTimeByMs, messageKey: "msg" },
    destination(target, true),
  );
}
