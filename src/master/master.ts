/**
 * The master process: validates the config, forks the workers (node:cluster shares the
 * listen sockets), replaces crashed workers, and stops gracefully on SIGTERM, SIGINT or
 * SIGQUIT (a second signal stops at once). It never handles a proxied request.
 */
import cluster from "node:cluster";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { formatIssue, loadConfig } from "../config/load.js";
import type { BoundAddress, ListenErrorMessage } from "../ipc.js";
import { createLogger } from "../observability/logger.js";
import { Generation } from "./generation.js";

/** Longer than any worker's own shutdown timer: past this the master kills what is left. */
const KILL_GRACE_MS = 5_000;

/** Plain-language explanations of the listen errors an operator meets. */
const LISTEN_HINTS: Record<string, string> = {
  EADDRINUSE: "address already in use: another process listens there; stop it or change 'listen'",
  EACCES:
    "permission denied: ports below 1024 need privileges; use a higher port or grant CAP_NET_BIND_SERVICE",
  EADDRNOTAVAIL: "address not available: this machine has no such IP; change 'listen'",
};

/** Start the master on a config file. Resolves with the process exit code once stopped. */
export async function runMaster(configFile: string): Promise<number> {
  const { config, issues } = loadConfig(configFile);
  for (const issue of issues) process.stderr.write(`${formatIssue(issue)}\n`);
  if (!config) {
    process.stderr.write(`portico: configuration in ${configFile} is invalid; nothing started\n`);
    return 1;
  }
  const log = createLogger(config.log.error, config.log.level, { role: "master" });
  const instanceId = `portico-${randomBytes(4).toString("hex")}`;
  cluster.setupPrimary({ exec: fileURLToPath(new URL("../worker/main.js", import.meta.url)) });
  log.info({ config: config.file, workers: config.workers, instanceId }, "portico starting");

  return new Promise<number>((resolve) => {
    const generation = new Generation(1, config, instanceId, log);
    let stopping = false;
    let started = false;

    const exit = (code: number) => {
      log.info({ code }, "portico stopped");
      log.flush();
      resolve(code);
    };

    generation.on("ready", (bound: BoundAddress[]) => {
      started = true;
      log.info({ generation: 1, workers: generation.pids(), listening: bound }, "portico ready");
    });
    generation.on("listen-error", (err: ListenErrorMessage) => {
      const hint = LISTEN_HINTS[err.code] ?? err.message;
      if (!started) {
        process.stderr.write(`portico: cannot listen on ${err.listen}: ${hint} (${err.code})\n`);
        generation.kill();
        exit(1);
        return;
      }
      log.error(
        { listen: err.listen, code: err.code },
        `a respawned worker cannot listen on ${err.listen}: ${hint}`,
      );
    });

    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, "second stop signal: stopping now");
        generation.kill();
        exit(1);
        return;
      }
      stopping = true;
      log.info({ signal, shutdownTimeoutMs: config.timeouts.shutdown }, "graceful stop: draining workers");
      const begun = Date.now();
      generation.once("empty", () => {
        log.info({ drainMs: Date.now() - begun }, "all workers exited");
        exit(0);
      });
      generation.drain("shutdown");
      setTimeout(() => {
        log.error("workers did not exit within the shutdown timeout; killing them");
        generation.kill();
        exit(0);
      }, config.timeouts.shutdown + KILL_GRACE_MS).unref();
    };
    for (const signal of ["SIGTERM", "SIGINT", "SIGQUIT"] as const) process.on(signal, () => stop(signal));
    // SIGHUP reloads once generations exist (lifecycle issue); until then it must not kill us.
    process.on("SIGHUP", () => log.warn("SIGHUP received: reload is not implemented yet; ignoring"));

    generation.start();
  });
}
