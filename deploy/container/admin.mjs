#!/usr/bin/env node
/**
 * Talks to the admin listener of the Portico whose config file it is given, for the places
 * that have no curl and should not repeat the admin address and token: the image's
 * HEALTHCHECK and the Kubernetes config-reloader sidecar. The address and the token are read
 * from the config file itself (`admin.listen`, `admin.token`), so one file says them once.
 *
 *   node admin.mjs healthz [-c FILE] [--url URL] [--timeout 3s]
 *   node admin.mjs readyz  [-c FILE] [--url URL] [--timeout 3s]
 *     GET /healthz or /readyz: exit 0 on 200, else 1 with the reason on stderr.
 *
 *   node admin.mjs watch-reload [-c FILE] [--url URL] [--interval 5s]
 *     Every interval, hash the config file; when it differs from the file the running master
 *     loaded (its /status says the SHA-256), POST /reload and print the outcome as a JSON
 *     line. A refused file (422, with every error and its line) is not sent again until it
 *     changes; an unreachable master is tried again on the next tick. Made for a Kubernetes
 *     ConfigMap volume, which the kubelet swaps atomically (a `..data` symlink) within about
 *     a minute of `kubectl apply`.
 *
 * FILE defaults to $PORTICO_CONFIG, then /etc/portico/portico.yaml. An admin address of
 * 0.0.0.0 or [::] is reached on loopback. Every failure exits 1, bad usage and a config
 * without `admin` included: Docker reserves a HEALTHCHECK's exit code 2.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse } from "yaml";

/** A mistake in the command line or the config file: said as it is, without a stack. */
class UsageError extends Error {}

const USAGE =
  "usage: admin.mjs healthz|readyz|watch-reload [-c FILE] [--url URL] [--interval 5s] [--timeout 3s]";

/** A duration such as `500ms`, `5s` or `1m`, in milliseconds. */
function parseDuration(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (!m) throw new UsageError(`bad duration '${text}' (write 500ms, 5s or 1m)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2]];
}

function parseArgs(argv) {
  const [command, ...rest] = argv;
  if (!["healthz", "readyz", "watch-reload"].includes(command ?? "")) throw new UsageError(USAGE);
  const opts = {
    command,
    file: process.env.PORTICO_CONFIG || "/etc/portico/portico.yaml",
    url: undefined,
    intervalMs: 5000,
    timeoutMs: 3000,
  };
  for (let i = 0; i < rest.length; i++) {
    const value = rest[i + 1];
    if (value === undefined) throw new UsageError(`${rest[i]} needs a value\n${USAGE}`);
    if (rest[i] === "-c" || rest[i] === "--config") opts.file = value;
    else if (rest[i] === "--url") opts.url = value.replace(/\/+$/, "");
    else if (rest[i] === "--interval") opts.intervalMs = parseDuration(value);
    else if (rest[i] === "--timeout") opts.timeoutMs = parseDuration(value);
    else throw new UsageError(`unknown option '${rest[i]}'\n${USAGE}`);
    i++;
  }
  return opts;
}

/** Where the admin listener of the config `text` is, and its token. */
function adminTarget(text, file, urlOverride) {
  const config = parse(text);
  const admin = config && typeof config === "object" ? config.admin : undefined;
  if (!admin || typeof admin.listen !== "string") {
    throw new UsageError(
      `${file}: no admin listener (add admin: { listen: 127.0.0.1:9901 }); the health check and the reloader talk to it`,
    );
  }
  const token = typeof admin.token === "string" ? admin.token : undefined;
  if (urlOverride) return { url: urlOverride, token };
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(admin.listen);
  if (!m) throw new UsageError(`${file}: admin.listen '${admin.listen}' is not IP:port`);
  // A wildcard address listens on every interface, loopback included.
  const host = m[1] === "0.0.0.0" ? "127.0.0.1" : m[1] === "[::]" ? "[::1]" : m[1];
  return { url: `http://${host}:${m[2]}`, token };
}

async function call(target, method, path, timeoutMs) {
  const headers = target.token ? { authorization: `Bearer ${target.token}` } : {};
  const res = await fetch(`${target.url}${path}`, {
    method,
    headers,
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, body: await res.text() };
}

function sha256(text) {
  return createHash("sha256").update(text).digest("hex");
}

function log(fields) {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

async function probe(opts) {
  const target = adminTarget(readFileSync(opts.file, "utf8"), opts.file, opts.url);
  try {
    const { status, body } = await call(target, "GET", `/${opts.command}`, opts.timeoutMs);
    if (status === 200) {
      process.stdout.write(body);
      return 0;
    }
    process.stderr.write(`${target.url}/${opts.command}: ${status} ${body.trim()}\n`);
  } catch (err) {
    process.stderr.write(`${target.url}/${opts.command}: ${err.cause?.message ?? err.message}\n`);
  }
  return 1;
}

async function watchReload(opts) {
  let target = adminTarget(readFileSync(opts.file, "utf8"), opts.file, opts.url);
  /** The hash of the file last settled: loaded by the master, or refused by it. */
  let settled;
  log({ msg: "watching the config file", file: opts.file, admin: target.url, intervalMs: opts.intervalMs });
  const tick = async () => {
    let text;
    try {
      text = readFileSync(opts.file, "utf8");
    } catch (err) {
      log({ msg: "cannot read the config file", file: opts.file, error: err.message });
      return;
    }
    const hash = sha256(text);
    if (hash === settled) return;
    try {
      const status = await call(target, "GET", "/status", opts.timeoutMs);
      if (status.status !== 200) throw new Error(`/status answered ${status.status} ${status.body.trim()}`);
      if (JSON.parse(status.body).config?.sha256 === hash) {
        settled = hash;
        return;
      }
      const res = await call(target, "POST", "/reload", Math.max(opts.timeoutMs, 30_000));
      const outcome = JSON.parse(res.body);
      if (res.status === 200) {
        settled = hash;
        log({ msg: "reloaded", generation: outcome.generation, sha256: hash });
        // The new config may move the admin listener or change its token.
        try {
          target = adminTarget(text, opts.file, opts.url);
        } catch (err) {
          log({ msg: "the new config has no usable admin listener; stopping", error: err.message });
          process.exit(1);
        }
      } else if (res.status === 422) {
        settled = hash;
        log({
          msg: "reload refused; the running config keeps serving",
          sha256: hash,
          errors: outcome.errors,
        });
      } else {
        log({ msg: "reload failed; trying again", status: res.status, reason: outcome.reason });
      }
    } catch (err) {
      log({
        msg: "admin listener unreachable; trying again",
        admin: target.url,
        error: err.cause?.message ?? err.message,
      });
    }
  };
  for (;;) {
    await tick();
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs));
  }
}

async function main() {
  try {
    const opts = parseArgs(process.argv.slice(2));
    return opts.command === "watch-reload" ? await watchReload(opts) : await probe(opts);
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
}

// SIGTERM (the pod stopping) ends the watcher at once; nothing is half done between ticks.
process.on("SIGTERM", () => process.exit(0));
process.exitCode = await main();
