#!/usr/bin/env node
/**
 * The `portico` command: `start` runs the proxy, `check` validates a config (like `nginx -t`),
 * `reload`/`stop` signal the running master, `dns` queries through the DNS layer, `explain`
 * shows how a request would be routed.
 */
import { parseArgs } from "node:util";
import { formatIssue, loadConfig } from "./config/load.js";
import { dnsCommand } from "./dns-command.js";
import { explainCommand } from "./explain.js";
import { runMaster } from "./master/master.js";
import { isRunning, runningMaster } from "./master/pid-file.js";
import { prepareTls } from "./tls/material.js";
import { unresolvedNameWarnings } from "./upstream/name-check.js";
import { porticoVersion } from "./version.js";

const USAGE = `Usage: portico <command> [options]

Commands:
  start   run the proxy (master + workers) in the foreground
  check   validate a configuration file and exit (like nginx -t)
  reload  validate the file, then tell the running master to reload it (SIGHUP)
  stop    tell the running master to stop gracefully (SIGTERM) and wait until it has
  dns     NAME [A|AAAA|SRV|CNAME]: query through Portico's DNS layer and show the answer,
          TTLs, which nameserver and transport answered, and the time taken
  explain URL: which server and route a request would match and why, the upstream, its
          peers now (DNS; health from the running master's admin listener) and the one the
          balancer would pick, and the request that would go upstream

Options:
  -c, --config FILE   configuration file (default: conf/portico.yaml)
  -h, --help          show this help
  -v, --version       print the version

dns options:
  --server URL        nameserver to ask (repeatable: each is asked and shown on its own):
                      udp://IP:53, tcp://IP:53, tls://host:853, https://host/dns-query
                      (default: the hosts file, then the nameservers of /etc/resolv.conf)
  --ca FILE           CA certificate (PEM) to verify tls:// and https:// servers with
  --cert FILE, --key FILE   client certificate and key (PEM) for mTLS
  --timeout DURATION  per query (default 2s with --server, else resolv.conf's)

explain options:
  --method M          the request's method (default GET)
  --header 'K: V'     a request header (repeatable); Host defaults to the URL's
`;

/**
 * `portico check`: print every issue as FILE:LINE:COL, then `configuration OK` or exit 1.
 * Upstream names that do not resolve now are warnings: Portico starts without them.
 */
async function check(file: string): Promise<number> {
  const { config, issues } = loadConfig(file);
  if (config) {
    issues.push(...(await prepareTls(config, { generate: false })).issues);
    issues.push(...(await unresolvedNameWarnings(config)));
  }
  for (const issue of issues) process.stderr.write(`${formatIssue(issue)}\n`);
  if (!config || issues.some((i) => i.severity === "error")) {
    const errors = issues.filter((i) => i.severity === "error").length;
    process.stderr.write(
      `portico: ${file}: ${errors} error${errors === 1 ? "" : "s"}; configuration invalid\n`,
    );
    return 1;
  }
  process.stdout.write("configuration OK\n");
  return 0;
}

/** `portico reload`: check the file first (a bad file is refused here), then SIGHUP the master. */
async function reload(file: string): Promise<number> {
  const { config, issues } = loadConfig(file);
  if (config) issues.push(...(await prepareTls(config, { generate: false })).issues);
  for (const issue of issues) process.stderr.write(`${formatIssue(issue)}\n`);
  if (!config || issues.some((i) => i.severity === "error")) {
    process.stderr.write(
      `portico: ${file} is invalid; no reload sent, the running configuration keeps serving\n`,
    );
    return 1;
  }
  const master = runningMaster(config.pidFile);
  if ("error" in master) {
    process.stderr.write(`portico: ${master.error}\n`);
    return 1;
  }
  process.kill(master.pid, "SIGHUP");
  process.stdout.write(
    `reload signal sent to the master (pid ${master.pid}); its log tells when the new generation serves\n`,
  );
  return 0;
}

/** `portico stop`: SIGTERM the master and wait until it has exited (graceful: in-flight requests finish). */
async function stop(file: string): Promise<number> {
  const { config, issues } = loadConfig(file);
  if (!config) {
    for (const issue of issues) process.stderr.write(`${formatIssue(issue)}\n`);
    process.stderr.write(`portico: ${file} is invalid; cannot find the pid file it names\n`);
    return 1;
  }
  const master = runningMaster(config.pidFile);
  if ("error" in master) {
    process.stderr.write(`portico: ${master.error}\n`);
    return 1;
  }
  process.kill(master.pid, "SIGTERM");
  const deadline = Date.now() + config.timeouts.shutdown + 10_000;
  while (isRunning(master.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (isRunning(master.pid)) {
    process.stderr.write(`portico: master (pid ${master.pid}) is still running after the shutdown timeout\n`);
    return 1;
  }
  process.stdout.write(`portico stopped (pid ${master.pid})\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`portico: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    process.stdout.write(`portico ${porticoVersion()}\n`);
    return 0;
  }
  const command = positionals[0];
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const file = values.config ?? "conf/portico.yaml";
  switch (command) {
    case "check":
      return check(file);
    case "start":
      return runMaster(file);
    case "reload":
      return reload(file);
    case "stop":
      return stop(file);
    case "explain":
      return explainCommand(file, positionals.slice(1), {
        method: values.method,
        headers: values.header ?? [],
      });
    case "dns":
      return dnsCommand(positionals.slice(1), {
        servers: values.server ?? [],
        ca: values.ca,
        cert: values.cert,
        key: values.key,
        timeout: values.timeout,
      });
    default:
      process.stderr.write(`portico: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

function parseOptions(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
      server: { type: "string", multiple: true },
      ca: { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
      timeout: { type: "string" },
      method: { type: "string" },
      header: { type: "string", multiple: true },
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Workers and timers may still hold the loop open after a stop: exit explicitly.
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`portico: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(70);
  },
);
