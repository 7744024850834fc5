/**
 * Loggers (pino). Two streams, as in nginx: the error/lifecycle log and the access log, each
 * to stdout, stderr or a file. Lines are JSON, one per event; writes to stdout and stderr
 * are asynchronous, one line each, so workers sharing a pipe never interleave.
 * An access log written to a file is buffered, as nginx's `access_log ... buffer= flush=`:
 * lines go out in blocks of ACCESS_BUFFER_BYTES, at least every ACCESS_FLUSH_MS, and when
 * the worker exits or reopens its files (one write per block instead of one per request).
 */
import fs from "node:fs";
import { pino } from "pino";
import pinoPretty from "pino-pretty";

/** `log.format`: how the lifecycle log is written. */
export type LogFormat = "auto" | "json" | "pretty";

/** pino level names accepted by the config. */
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace";

/** A pino logger. */
export type Logger = pino.Logger;

type Destination = ReturnType<typeof pino.destination>;

/**
 * Lines kept in memory and written to a file as one block (nginx's `access_log buffer=`).
 * Done here rather than with sonic-boom's `minLength`, which appends each line to one
 * growing string and measures its byte length on every write: a cost that grows with the
 * block, where joining the lines once per block costs one copy.
 */
class BlockBuffer {
  private lines: string[] = [];
  private chars = 0;

  constructor(private readonly stream: Destination) {}

  write(line: string): void {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= ACCESS_BUFFER_BYTES) this.flush();
  }

  /** Hand what is buffered to the destination (a synchronous write for a file). */
  flush(): void {
    if (this.lines.length === 0) return;
    const block = this.lines.join("");
    this.lines = [];
    this.chars = 0;
    this.stream.write(block);
  }
}

/** File destinations opened by this process, reopened on SIGUSR2 (log rotation). */
const files: Array<{ path: string; stream: Destination; blocks?: BlockBuffer }> = [];

/** stdout and stderr destinations: asynchronous, written out synchronously before an exit. */
const pipes: Destination[] = [];
let flushTimer: NodeJS.Timeout | undefined;

/** Write every file's buffered block at least every ACCESS_FLUSH_MS (the timer keeps no process up). */
function flushEverySecond(): void {
  if (flushTimer) return;
  flushTimer = setInterval(() => {
    for (const f of files) f.blocks?.flush();
  }, ACCESS_FLUSH_MS);
  flushTimer.unref();
}

/** An access-log file is written in blocks of about this many bytes... */
export const ACCESS_BUFFER_BYTES = 64 * 1024;
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

/** Bytes a stdout or stderr destination holds for a reader that does not read; more are dropped. */
const PIPE_BUFFER_MAX = 16 * 1024 * 1024;
/** How long a synchronous flush to a pipe keeps retrying EAGAIN (a full pipe) before it drops the rest. */
const FLUSH_EAGAIN_MS = 2000;

type WriteSync = (fd: number, data: string | NodeJS.ArrayBufferView, ...rest: unknown[]) => number;

/**
 * sonic-boom (4.2) retries a write that fails in `flushSync` every 100 ms for as long as it
 * fails, EPIPE included: a process whose stdout or stderr reader has gone hung in it at exit
 * (pino flushes its destinations there), deaf to every signal. While a pipe flushes
 * synchronously, its writes here drop what fails with anything but EAGAIN, and what still
 * meets EAGAIN (a full pipe) after FLUSH_EAGAIN_MS. `fs.writeSync` is swapped only for the
 * duration of the synchronous call, in which nothing else runs.
 */
function boundFlushSync(stream: Destination): void {
  const flushSync = stream.flushSync.bind(stream);
  const mutableFs = fs as unknown as { writeSync: WriteSync };
  stream.flushSync = () => {
    const writeSync = mutableFs.writeSync;
    const started = performance.now();
    mutableFs.writeSync = (fd, data, ...rest) => {
      try {
        return writeSync(fd, data, ...rest);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const busy = code === "EAGAIN" || code === "EBUSY";
        if (busy && performance.now() - started < FLUSH_EAGAIN_MS) throw err;
        // Dropped: reported as written, so sonic-boom's loop ends.
        return typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
      }
    };
    try {
      flushSync();
    } finally {
      mutableFs.writeSync = writeSync;
    }
  };
}

/**
 * Open a pino destination for `stdout`, `stderr` or a file path (appended to, created if
 * missing). Writes to stdout and stderr are asynchronous, one line at a time (each shorter
 * than PIPE_BUF, so workers sharing a pipe never interleave); to a file, synchronous, as
 * nginx writes: to the page cache that costs less than a round trip to libuv's thread pool.
 */
function destination(target: string): Destination {
  if (target === "stdout" || target === "stderr") {
    const stream = pino.destination({
      dest: target === "stdout" ? 1 : 2,
      sync: false,
      // A reader that stopped reading: lines past this are dropped rather than kept.
      maxLength: PIPE_BUFFER_MAX,
    });
    boundFlushSync(stream);
    pipes.push(stream);
    return stream;
  }
  const stream = pino.destination({ dest: target, append: true, mkdir: true, sync: true });
  files.push({ path: target, stream });
  return stream;
}

/**
 * A line writer for `target`: block-buffered for a file (see the top of this file), one
 * write per line for stdout and stderr.
 */
function lineWriter(target: string): (line: string) => void {
  const stream = destination(target);
  const file = files.find((f) => f.stream === stream);
  if (!file) return (line) => stream.write(line);
  const blocks = new BlockBuffer(stream);
  file.blocks = blocks;
  flushEverySecond();
  return (line) => blocks.write(line);
}

/** Write out what the destinations of this process still buffer (before it exits). */
export function flushLogFiles(): Promise<void> {
  for (const f of files) f.blocks?.flush();
  for (const pipe of pipes) {
    try {
      pipe.flushSync();
    } catch {
      // Not open yet: nothing to write. (A reader that is gone drops the lines: boundFlushSync.)
    }
  }
  return Promise.all(
    files.map(({ stream }) => new Promise<void>((resolve) => stream.flush(() => resolve()))),
  ).then(() => {});
}

/**
 * Reopen every log file of this process (after logrotate moved it away): buffered lines go
 * to the old file, new lines to a new file at the configured path. Returns the paths reopened.
 */
export function reopenLogFiles(): string[] {
  for (const { stream, blocks } of files) {
    blocks?.flush();
    stream.flush(() => stream.reopen());
  }
  return files.map((f) => f.path);
}

/** Whether `target` is a terminal (a file never is). */
function isTerminal(target: string): boolean {
  if (target === "stdout") return process.stdout.isTTY === true;
  if (target === "stderr") return process.stderr.isTTY === true;
  return false;
}

/**
 * The lifecycle/error logger of the master or a worker, tagged with its role. JSON lines, or
 * with `format: pretty` (or `auto` on a terminal) short lines by pino's own pretty printer
 * (pino-pretty), written synchronously through the same destination (so log rotation and the
 * flush before an exit work the same).
 */
export function createLogger(
  target: string,
  level: LogLevel,
  bindings: Record<string, unknown>,
  format: LogFormat = "json",
): Logger {
  const options = { level, base: { pid: process.pid, ...bindings }, timestamp: isoTimeByMs };
  const stream = destination(target);
  if (format === "json" || (format === "auto" && !isTerminal(target))) return pino(options, stream);
  const pretty = pinoPretty({
    destination: stream,
    sync: true,
    colorize: isTerminal(target),
    singleLine: true,
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "hostname,pid,role,generation,slot",
    messageFormat: (log, key) => {
      const where = `${log.role}[${log.pid}]`;
      const generation = log.generation === undefined ? "" : ` gen ${log.generation}`;
      const slot = log.slot === undefined ? "" : ` slot ${log.slot}`;
      return `${where}${generation}${slot}: ${log[key]}`;
    },
  });
  return pino(options, pretty);
}

/** The fields of one access-log line. */
export interface AccessEntry {
  requestId: string;
  /** The client's address. */
  remote: string;
  method: string;
  /** The `Host` header as received. */
  host: string;
  /** The request target as received (cut to 2 KiB). */
  path: string;
  status: number;
  /** Response body bytes sent. */
  bytes: number;
  /** From the request's arrival to the end of the response. */
  ms: number;
  /** The peer that served (or was last tried). */
  upstream?: string;
  /** Time to the upstream's response header. */
  upstreamMs?: number;
  /** A Portico error code (PRT_ERR_...) and its message. */
  error?: string;
  reason?: string;
}

/** The access log: one JSON line per request (`enabled` is false when it is `off`). */
export interface AccessLog {
  readonly enabled: boolean;
  write(entry: AccessEntry): void;
}

/**
 * The access log, to `target` (or off). A line has a fixed set of fields, as nginx's
 * `log_format`, so it is put together directly, in the same shape pino writes (`level`,
 * `time`, `pid`, then the fields), and handed to pino's destination: pino's generic
 * serializer (a walk over the object's keys with a type check per value) cost a worker
 * about 4 µs per request, 5% of a small proxied request. Strings that come from the client
 * (host, path, a client's request id) or from an error message go through JSON.stringify;
 * the others are ours or validated (an IP address, a peer address, a method token).
 */
export function createAccessLogger(target: string): AccessLog {
  if (target === "off") return { enabled: false, write() {} };
  const write = lineWriter(target);
  const head = '{"level":30';
  const pid = `,"pid":${process.pid},"requestId":`;
  return {
    enabled: true,
    write(e: AccessEntry): void {
      let line = `${head}${isoTimeByMs()}${pid}${JSON.stringify(e.requestId)},"remote":"${e.remote}","method":"${e.method}","host":${JSON.stringify(e.host)},"path":${JSON.stringify(e.path)},"status":${e.status},"bytes":${e.bytes},"ms":${e.ms}`;
      if (e.upstream !== undefined) line += `,"upstream":"${e.upstream}"`;
      if (e.upstreamMs !== undefined) line += `,"upstreamMs":${e.upstreamMs}`;
      if (e.error !== undefined) line += `,"error":"${e.error}"`;
      if (e.reason !== undefined) line += `,"reason":${JSON.stringify(e.reason)}`;
      write(`${line}}\n`);
    },
  };
}
