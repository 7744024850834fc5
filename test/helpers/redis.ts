/**
 * A real redis-server for tests: run in the foreground as a child process on a unix socket
 * in a temporary directory of its own (TCP off: `--port 0`, so no port is ever picked by
 * hand), with persistence off. Readiness is a real `PING` answered, never a sleep. The
 * process is stopped by its own PID; the directory is removed by `close`.
 *
 * The Debian package `redis-server` is installed when missing (`apt-get update` once, then
 * `apt-get install -y redis-server`, as root); `prepareRedis` says why when that is not
 * possible, so the caller can skip with the reason.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findTool, run } from "./real-dns.js";

/** The Debian package that provides redis-server. */
export const PACKAGE = "redis-server";

const tail = (text: string, n = 1500) => text.trim().slice(-n);

let prepared: Promise<{ ok: true; server: string; version: string } | { ok: false; reason: string }>;

/**
 * Find redis-server, installing the Debian package when it is missing. Resolves with its path
 * and version, or with the reason it cannot be had (the caller skips and prints it). Called
 * twice in one process, it runs once.
 */
export function prepareRedis(): typeof prepared {
  prepared ??= (async () => {
    let server = findTool("redis-server");
    if (!server) {
      if (process.getuid?.() !== 0)
        return {
          ok: false as const,
          reason: `redis-server not installed and not root, so apt-get cannot install ${PACKAGE}`,
        };
      if (!findTool("apt-get"))
        return { ok: false as const, reason: "redis-server not installed and there is no apt-get" };
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      // Another test file may be installing at the same moment: wait for dpkg's lock.
      const lock = ["-o", "DPkg::Lock::Timeout=300"];
      const update = await run("apt-get", [...lock, "update"], { timeoutMs: 180_000, env });
      if (update.code !== 0)
        return {
          ok: false as const,
          reason: `apt-get update failed (${update.timedOut ? "timed out" : `exit ${update.code}`}): ${tail(update.stderr || update.stdout)}`,
        };
      const install = await run("apt-get", [...lock, "install", "-y", "--no-install-recommends", PACKAGE], {
        timeoutMs: 400_000,
        env,
      });
      if (install.code !== 0)
        return {
          ok: false as const,
          reason: `apt-get install ${PACKAGE} failed (${install.timedOut ? "timed out" : `exit ${install.code}`}): ${tail(install.stderr || install.stdout)}`,
        };
      server = findTool("redis-server");
      if (!server) return { ok: false as const, reason: "redis-server still missing after apt-get install" };
    }
    const version = await run(server, ["--version"], { timeoutMs: 10_000 });
    return { ok: true as const, server, version: version.stdout.trim() };
  })();
  return prepared;
}

/** Send `PING` on the unix socket `path`; resolves true on `+PONG` within `timeoutMs`. */
export function ping(path: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ path });
    let answer = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (d: Buffer) => {
      answer += d.toString();
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
  });
}

/** A running redis-server on a unix socket. */
export interface RedisServer {
  /** Path of its unix socket. */
  socket: string;
  /** The `store:` value that reaches it (`unix:///tmp/.../redis.sock`). */
  url: string;
  dir: string;
  pid: () => number;
  running: () => boolean;
  /** Everything it printed. */
  output: () => string;
  /** SIGTERM by PID (SIGKILL 5 s later); resolves once it has exited. */
  stop: () => Promise<void>;
  /** Start it again on the same socket (its data is gone: persistence is off). */
  restart: () => Promise<void>;
  /** Stop it and remove its directory. */
  close: () => Promise<void>;
}

/** Start redis-server (the path `prepareRedis` found) on a unix socket in a new temp dir. */
export async function startRedis(server: string): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), "portico-redis-"));
  const socket = join(dir, "redis.sock");
  let proc: ChildProcess | undefined;
  let output = "";
  let running = false;
  let exited: Promise<void> = Promise.resolve();
  const launch = async () => {
    output = "";
    const child = spawn(
      server,
      [
        "--port",
        "0",
        "--unixsocket",
        socket,
        "--unixsocketperm",
        "700",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    proc = child;
    running = true;
    child.stdout?.on("data", (d: Buffer) => (output += d));
    child.stderr?.on("data", (d: Buffer) => (output += d));
    exited = new Promise<void>((resolve) => {
      child.on("error", (err) => {
        output += `\n${String(err)}`;
        running = false;
        resolve();
      });
      child.on("exit", (code, signal) => {
        output += `\n[exited with ${signal ?? code}]`;
        running = false;
        resolve();
      });
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && running) {
      if (existsSync(socket) && (await ping(socket))) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    await stop();
    throw new Error(`redis-server did not answer PING on ${socket}:\n${tail(output, 3000)}`);
  };
  const stop = async () => {
    const pid = proc?.pid;
    if (!running || pid === undefined) return;
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // Already gone.
    }
    const timer = setTimeout(() => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }, 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await launch();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    socket,
    url: `unix://${socket}`,
    dir,
    pid: () => proc?.pid ?? 0,
    running: () => running,
    output: () => output,
    stop,
    restart: launch,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
