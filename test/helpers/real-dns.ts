/**
 * Real DNS servers for end-to-end tests: ISC BIND (`named`) as the authoritative server of a
 * test zone that `nsupdate` changes, and NLnet Labs unbound in front of it as the recursive
 * server clients ask over UDP, TCP, DNS over TLS and DNS over HTTPS.
 *
 * Both run as foreground child processes (`named -g`, `unbound -d`) on generated configs in a
 * temporary directory of their own, listening on 127.0.0.1 only. Neither can be given port 0,
 * so ports are picked by binding port 0 (TCP and UDP both free), closing, and passing them on;
 * a server that then fails to bind is started again on other ports. Readiness is a real query
 * answered, never a sleep. Every process is stopped by its own PID.
 *
 * The packages come from Debian (`bind9`, `bind9-dnsutils`, `unbound`) and are installed when
 * missing; `prepareRealDns` says why when that is not possible, so the caller can skip.
 */
import { type ChildProcess, spawn } from "node:child_process";
import dgram from "node:dgram";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import dnsPacket from "dns-packet";
import type { CertPair } from "./certs.js";

/** The test zone BIND is authoritative for (no trailing dot). */
export const ZONE = "svc.test";

/** Debian packages that provide named, unbound, dig and nsupdate. */
export const PACKAGES = ["bind9", "bind9-dnsutils", "unbound"] as const;

/** Where each tool was found, and whether unbound can serve DNS over HTTPS. */
export interface RealDnsTools {
  named: string;
  unbound: string;
  dig: string;
  nsupdate: string;
  /** unbound was built with libnghttp2 (`unbound -V`), so `https-port` works. */
  doh: boolean;
  /** Transports this dig can ask over (`dig -h` lists +tcp, +tls and +https). */
  digTransports: Set<"udp" | "tcp" | "tls" | "https">;
  /** Versions, for the test output. */
  versions: string;
}

/** The outcome of one command run to its end. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed because it ran past its time limit. */
  timedOut: boolean;
}

/**
 * Run `cmd args` to its end, feeding `input` on stdin; killed (by its PID) after `timeoutMs`.
 * Never rejects: a command that cannot be started resolves with code null and the error text.
 */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs: number; input?: string; env?: NodeJS.ProcessEnv },
): Promise<RunResult> {
  return new Promise((resolve) => {
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let proc: ChildProcess;
    try {
      proc = spawn(cmd, [...args], { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    } catch (err) {
      resolve({ code: null, signal: null, stdout, stderr: String(err), timedOut });
      return;
    }
    const timer = setTimeout(() => {
      timedOut = true;
      if (proc.pid !== undefined) killQuietly(proc.pid, "SIGKILL");
    }, opts.timeoutMs);
    proc.stdout?.on("data", (d: Buffer) => (stdout += d));
    proc.stderr?.on("data", (d: Buffer) => (stderr += d));
    proc.stdin?.on("error", () => {}); // a command that exits before reading its input
    proc.stdin?.end(opts.input ?? "");
    proc.on("error", (err) => (stderr += String(err)));
    proc.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** The first executable called `name` in PATH or the usual system directories (a test's PATH may lack sbin). */
export function findTool(name: string): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter),
    "/usr/sbin",
    "/sbin",
    "/usr/bin",
    "/usr/local/bin",
  ];
  for (const dir of dirs) {
    if (!dir) continue;
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

function findTools(): Partial<Record<"named" | "unbound" | "dig" | "nsupdate", string>> {
  return {
    named: findTool("named"),
    unbound: findTool("unbound"),
    dig: findTool("dig"),
    nsupdate: findTool("nsupdate"),
  };
}

const tail = (text: string, n = 1500) => text.trim().slice(-n);

/**
 * Find named, unbound, dig and nsupdate, installing the Debian packages when one is missing
 * (`apt-get update` once, then `apt-get install -y --no-install-recommends`). Resolves with the
 * tools, or with the reason they cannot be had (the caller skips and prints it).
 */
export async function prepareRealDns(): Promise<
  { ok: true; tools: RealDnsTools } | { ok: false; reason: string }
> {
  let found = findTools();
  const missing = () => Object.entries(found).filter(([, path]) => path === undefined);
  if (missing().length > 0) {
    const names = missing()
      .map(([name]) => name)
      .join(", ");
    if (process.getuid?.() !== 0)
      return {
        ok: false,
        reason: `${names} not installed and not root, so apt-get cannot install ${PACKAGES.join(" ")}`,
      };
    if (!findTool("apt-get")) return { ok: false, reason: `${names} not installed and there is no apt-get` };
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const update = await run("apt-get", ["update"], { timeoutMs: 180_000, env });
    if (update.code !== 0)
      return {
        ok: false,
        reason: `apt-get update failed (${update.timedOut ? "timed out" : `exit ${update.code}`}): ${tail(update.stderr || update.stdout)}`,
      };
    const install = await run("apt-get", ["install", "-y", "--no-install-recommends", ...PACKAGES], {
      timeoutMs: 400_000,
      env,
    });
    if (install.code !== 0)
      return {
        ok: false,
        reason: `apt-get install ${PACKAGES.join(" ")} failed (${install.timedOut ? "timed out" : `exit ${install.code}`}): ${tail(install.stderr || install.stdout)}`,
      };
    found = findTools();
    if (missing().length > 0)
      return { ok: false, reason: `still missing after apt-get install: ${missing().map(([n]) => n)}` };
  }
  const { named, unbound, dig, nsupdate } = found as Record<keyof typeof found, string>;
  const unboundV = await run(unbound, ["-V"], { timeoutMs: 10_000 });
  const namedV = await run(named, ["-v"], { timeoutMs: 10_000 });
  const digV = await run(dig, ["-v"], { timeoutMs: 10_000 });
  const versionOut = `${unboundV.stdout}${unboundV.stderr}`;
  const digHelp = await run(dig, ["-h"], { timeoutMs: 10_000 });
  const help = `${digHelp.stdout}${digHelp.stderr}`;
  const digTransports = new Set<"udp" | "tcp" | "tls" | "https">(["udp", "tcp"]);
  if (/\+\[no\]tls\b/.test(help) && /\+\[no\]tls-ca/.test(help)) digTransports.add("tls");
  if (/\+\[no\]https\b/.test(help)) digTransports.add("https");
  const versions = [
    versionOut.split("\n")[0]?.trim() ?? "unbound ?",
    namedV.stdout.trim(),
    digV.stderr.trim() || digV.stdout.trim(),
  ].join("; ");
  return {
    ok: true,
    tools: { named, unbound, dig, nsupdate, doh: /nghttp2/i.test(versionOut), digTransports, versions },
  };
}

/**
 * `n` distinct ports of 127.0.0.1 that are free for both TCP and UDP right now (each bound,
 * read back and released). Another process may take one before the caller binds it: callers
 * start their server again on new ports when it fails to bind.
 */
export async function freePorts(n: number): Promise<number[]> {
  const held: Array<() => Promise<void>> = [];
  const ports: number[] = [];
  try {
    for (let tries = 0; ports.length < n && tries < 50 * n; tries++) {
      const tcp = net.createServer();
      await new Promise<void>((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(0, "127.0.0.1", resolve);
      });
      const port = (tcp.address() as net.AddressInfo).port;
      const closeTcp = () => new Promise<void>((resolve) => tcp.close(() => resolve()));
      const udp = dgram.createSocket("udp4");
      const udpOk = await new Promise<boolean>((resolve) => {
        udp.once("error", () => resolve(false));
        udp.bind(port, "127.0.0.1", () => resolve(true));
      });
      if (!udpOk) {
        udp.close();
        await closeTcp();
        continue;
      }
      held.push(closeTcp, () => new Promise<void>((resolve) => udp.close(() => resolve())));
      ports.push(port);
    }
  } finally {
    await Promise.all(held.map((close) => close()));
  }
  if (ports.length < n) throw new Error(`could not find ${n} free TCP+UDP ports on 127.0.0.1`);
  return ports;
}

/** One record of a DNS answer, in a shape both dig's and `portico dns`'s output reduce to. */
export interface RecordLine {
  /** Lowercase, without the trailing dot. */
  name: string;
  ttl: number;
  type: string;
  /** A/AAAA: the address (IPv6 in its canonical short form); SRV: `prio weight port target`; CNAME: the target; targets lowercase, no trailing dot. */
  data: string;
}

/** The canonical (RFC 5952) text of an IPv6 address. */
function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

const noDot = (name: string) => name.toLowerCase().replace(/\.$/, "");

/**
 * The records of master-file lines (`name ttl IN type rdata`, whitespace separated), as dig
 * `+noall +answer` and `portico dns` print them; comment lines (`;`) and others are ignored.
 */
export function parseRecordLines(text: string): RecordLine[] {
  const records: RecordLine[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith(";")) continue;
    const [name, ttl, klass, type, ...data] = line.trim().split(/\s+/);
    if (!name || !ttl || klass !== "IN" || !type || !/^\d+$/.test(ttl)) continue;
    let rdata = data.join(" ");
    if (type === "AAAA") rdata = canonicalIpv6(rdata);
    else if (type === "SRV") rdata = [...data.slice(0, 3), noDot(data[3] ?? "")].join(" ");
    else if (type === "CNAME") rdata = noDot(rdata);
    records.push({ name: noDot(name), ttl: Number(ttl), type, data: rdata });
  }
  return records;
}

/** The answer to one UDP query, or why there was none. */
export type UdpAnswer =
  | { ok: true; rcode: string; answers: dnsPacket.Answer[] }
  | { ok: false; error: string };

/** One DNS query over UDP to 127.0.0.1:`port`, without recursion desired when `rd` is false. */
export function queryUdp(
  port: number,
  name: string,
  type: dnsPacket.RecordType,
  opts: { timeoutMs?: number; rd?: boolean } = {},
): Promise<UdpAnswer> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket("udp4");
    const id = Math.floor(Math.random() * 65_536);
    const done = (answer: UdpAnswer) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done({ ok: false, error: "timeout" }), opts.timeoutMs ?? 500);
    socket.on("error", (err: NodeJS.ErrnoException) => done({ ok: false, error: err.code ?? err.message }));
    socket.on("message", (msg) => {
      try {
        const packet = dnsPacket.decode(msg);
        if (packet.id !== id) return;
        // dns-packet decodes the RCODE into `rcode` but its types do not declare it.
        const { rcode } = packet as { rcode?: string };
        done({ ok: true, rcode: rcode ?? "NOERROR", answers: packet.answers ?? [] });
      } catch (err) {
        done({ ok: false, error: `undecodable answer: ${String(err)}` });
      }
    });
    const query = dnsPacket.encode({
      type: "query",
      id,
      flags: opts.rd === false ? 0 : dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name }],
    });
    socket.send(query, port, "127.0.0.1");
  });
}

/** A server run in the foreground as a child process; output kept for error messages. */
export interface ServerProcess {
  pid: number;
  /** Everything it printed on stdout and stderr. */
  output: () => string;
  /** Whether it is still running. */
  running: () => boolean;
  /** Resolves true at the next output line (printed from now on) matching `pattern`, false after `timeoutMs`. */
  nextLine: (pattern: RegExp, timeoutMs: number) => Promise<boolean>;
  exited: Promise<void>;
  /** SIGTERM by PID, SIGKILL 5 s later if still running; resolves once it has exited. */
  stop: () => Promise<void>;
}

function spawnServer(cmd: string, args: string[]): ServerProcess {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let running = true;
  const waiters = new Set<(line: string) => void>();
  let partial = "";
  const onData = (d: Buffer) => {
    const text = d.toString();
    output += text;
    partial += text;
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) for (const waiter of [...waiters]) waiter(line);
  };
  proc.stdout?.on("data", onData);
  proc.stderr?.on("data", onData);
  const exited = new Promise<void>((resolve) => {
    proc.on("error", (err) => {
      output += `\n${String(err)}`;
      running = false;
      resolve();
    });
    proc.on("exit", (code, signal) => {
      output += `\n[exited with ${signal ?? code}]`;
      running = false;
      resolve();
    });
  });
  const pid = proc.pid ?? 0;
  return {
    pid,
    output: () => output,
    running: () => running,
    nextLine: (pattern, timeoutMs) =>
      new Promise((resolve) => {
        const done = (found: boolean) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(found);
        };
        const waiter = (line: string) => {
          if (pattern.test(line)) done(true);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        waiters.add(waiter);
      }),
    exited,
    stop: async () => {
      if (!running || pid === 0) return;
      killQuietly(pid, "SIGTERM");
      const timer = setTimeout(() => killQuietly(pid, "SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Query until `ready` accepts an answer, the process exits, or `timeoutMs` passes; resolves
 * with whether it became ready.
 */
async function waitAnswering(
  server: ServerProcess,
  port: number,
  name: string,
  ready: (a: UdpAnswer) => boolean,
  timeoutMs: number,
  rd: boolean,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && server.running()) {
    if (ready(await queryUdp(port, name, "SOA", { timeoutMs: 200, rd }))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** A running BIND, authoritative for `ZONE`, with dynamic updates allowed from 127.0.0.1. */
export interface Bind {
  port: number;
  dir: string;
  process: () => ServerProcess;
  /** Apply `nsupdate` commands (`update add ...`, `update delete ...`) to the zone; throws when refused. */
  update: (commands: string[]) => Promise<void>;
  /**
   * Resolves true when BIND next receives a query for `name` `type` (from its query log), false
   * after `timeoutMs`.
   */
  nextQuery: (name: string, type: string, timeoutMs: number) => Promise<boolean>;
  /** When BIND received each query for `name` `type` so far (`Date.now()` ms, from its query log). */
  queryTimes: (name: string, type: string) => number[];
  /** Stop named (SIGTERM) and wait for it to exit. */
  stop: () => Promise<void>;
  /** Start named again on the same config, port and zone (journal included); resolves once it answers. */
  restart: () => Promise<void>;
  /** Stop named and remove its directory. */
  close: () => Promise<void>;
}

/** A query log line of BIND for `name` `type`. */
function queryPattern(name: string, type: string): RegExp {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`query: ${escaped} IN ${type} `, "i");
}

function namedConf(dir: string, port: number): string {
  return `options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  managed-keys-directory "${dir}";
  dump-file "${dir}/named_dump.db";
  statistics-file "${dir}/named.stats";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
  allow-query { 127.0.0.1; };
  allow-transfer { none; };
  // Every query is logged (to stderr, with -g): tests wait for the one a cache refresh sends.
  querylog yes;
};
// No rndc control channel (it would bind 127.0.0.1:953).
controls { };
zone "${ZONE}" {
  type primary;
  file "${dir}/${ZONE}.zone";
  allow-update { 127.0.0.1; };
};
`;
}

/**
 * Start BIND on a free port with `records` (master-file lines relative to the zone, e.g.
 * `app 2 IN A 127.0.0.2`) in the zone; the SOA minimum (negative TTL) is 1 s.
 */
export async function startBind(tools: RealDnsTools, records: string[]): Promise<Bind> {
  const dir = mkdtempSync(join(tmpdir(), "portico-bind-"));
  const zone = [
    "$TTL 60",
    `@ IN SOA ns.${ZONE}. hostmaster.${ZONE}. 1 3600 600 86400 1`,
    `@ IN NS ns.${ZONE}.`,
    "ns IN A 127.0.0.1",
    ...records,
    "",
  ].join("\n");
  writeFileSync(join(dir, `${ZONE}.zone`), zone);
  const confFile = join(dir, "named.conf");
  const answersSoa = (a: UdpAnswer) =>
    a.ok && a.rcode === "NOERROR" && a.answers.some((r) => r.type === "SOA");
  let current: ServerProcess | undefined;
  let port = 0;
  const launch = async (): Promise<string | undefined> => {
    // -g: foreground, log to stderr; -4: IPv4 only; -c: our config.
    current = spawnServer(tools.named, ["-g", "-4", "-c", confFile]);
    if (await waitAnswering(current, port, ZONE, answersSoa, 10_000, false)) return undefined;
    const output = current.output();
    await current.stop();
    return output;
  };
  let lastOutput = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    [port] = (await freePorts(1)) as [number];
    writeFileSync(confFile, namedConf(dir, port));
    const failed = await launch();
    if (failed === undefined) break;
    lastOutput = failed;
    current = undefined;
    // Only a port taken in the meantime is worth another try.
    if (!/address in use|could not listen/i.test(failed)) break;
  }
  if (!current) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`named did not start:\n${tail(lastOutput, 3000)}`);
  }
  const bind: Bind = {
    port,
    dir,
    process: () => current as ServerProcess,
    update: async (commands) => {
      const script = [`server 127.0.0.1 ${port}`, `zone ${ZONE}`, ...commands, "send", ""].join("\n");
      const out = await run(tools.nsupdate, ["-t", "3"], { timeoutMs: 10_000, input: script });
      if (out.code !== 0)
        throw new Error(
          `nsupdate failed (${out.timedOut ? "timed out" : `exit ${out.code}`}):\n${out.stderr}${out.stdout}`,
        );
    },
    nextQuery: (name, type, timeoutMs) =>
      (current as ServerProcess).nextLine(queryPattern(name, type), timeoutMs),
    queryTimes: (name, type) => {
      const pattern = queryPattern(name, type);
      // named -g starts each line with its local time: `03-Dec-2026 09:27:01.123 client ...`.
      return (current as ServerProcess)
        .output()
        .split("\n")
        .filter((line) => pattern.test(line))
        .map((line) => {
          const m = /^(\d\d)-(\w{3})-(\d{4}) (\d\d:\d\d:\d\d\.\d{3})/.exec(line);
          return m ? Date.parse(`${m[2]} ${m[1]} ${m[3]} ${m[4]}`) : Number.NaN;
        });
    },
    stop: async () => current?.stop(),
    restart: async () => {
      await current?.stop();
      const failed = await launch();
      if (failed !== undefined)
        throw new Error(`named did not start again on port ${port}:\n${tail(failed, 3000)}`);
    },
    close: async () => {
      await current?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return bind;
}

/** A running unbound that resolves `ZONE` from BIND and answers on four transports. */
export interface Unbound {
  /** Plain DNS, UDP and TCP. */
  port: number;
  /** DNS over TLS (RFC 7858). */
  tlsPort: number;
  /** DNS over HTTPS (RFC 8484) on `/dns-query`; undefined when unbound lacks nghttp2. */
  httpsPort?: number;
  /** The name its certificate is valid for (what clients give as SNI / servername). */
  servername: string;
  /** PEM file clients trust for tls and https. */
  caFile: string;
  dir: string;
  process: ServerProcess;
  close: () => Promise<void>;
}

function unboundConf(
  dir: string,
  bindPort: number,
  ports: { dns: number; tls: number; https?: number },
): string {
  const lines = [
    "server:",
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    `  pidfile: "${dir}/unbound.pid"`,
    "  use-syslog: no",
    '  logfile: ""',
    "  verbosity: 1",
    "  num-threads: 1",
    "  do-ip6: no",
    `  interface: 127.0.0.1@${ports.dns}`,
    `  interface: 127.0.0.1@${ports.tls}`,
    `  tls-port: ${ports.tls}`,
    `  tls-service-key: "${dir}/server.key"`,
    `  tls-service-pem: "${dir}/server.pem"`,
    ...(ports.https === undefined
      ? []
      : [
          `  interface: 127.0.0.1@${ports.https}`,
          `  https-port: ${ports.https}`,
          '  http-endpoint: "/dns-query"',
        ]),
    "  access-control: 127.0.0.0/8 allow",
    // BIND listens on loopback; unbound refuses to ask localhost unless told.
    "  do-not-query-localhost: no",
    // "test." is one of unbound's default locally served zones (RFC 6761): let it through.
    '  local-zone: "test." nodefault',
    `  domain-insecure: "${ZONE}"`,
    '  module-config: "iterator"',
    "  qname-minimisation: no",
    // Keep the cache from hiding record changes: the records that change have TTLs of 1-2 s,
    // negative answers are kept 1 s at most, nothing expired is served, nothing is fetched ahead.
    "  cache-max-negative-ttl: 1",
    "  serve-expired: no",
    "  prefetch: no",
    "stub-zone:",
    `  name: "${ZONE}"`,
    `  stub-addr: 127.0.0.1@${bindPort}`,
    "",
  ];
  return lines.join("\n");
}

/**
 * Start unbound on free ports in front of `bind`, with `cert` as its TLS certificate (for the
 * DoT and DoH ports); resolves once it answers for the zone over UDP.
 */
export async function startUnbound(
  tools: RealDnsTools,
  bind: Bind,
  cert: CertPair,
  servername: string,
): Promise<Unbound> {
  const dir = mkdtempSync(join(tmpdir(), "portico-unbound-"));
  writeFileSync(join(dir, "server.key"), cert.key, { mode: 0o600 });
  writeFileSync(join(dir, "server.pem"), cert.cert);
  const caFile = join(dir, "ca.pem");
  writeFileSync(caFile, cert.cert);
  const confFile = join(dir, "unbound.conf");
  let lastOutput = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const [dns, tls, https] = (await freePorts(3)) as [number, number, number];
    const ports = { dns, tls, https: tools.doh ? https : undefined };
    writeFileSync(confFile, unboundConf(dir, bind.port, ports));
    const check = await run(findTool("unbound-checkconf") ?? "unbound-checkconf", [confFile], {
      timeoutMs: 10_000,
    });
    if (check.code !== 0 && !/ENOENT/.test(check.stderr)) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`unbound-checkconf refused the generated config:\n${check.stderr}${check.stdout}`);
    }
    const proc = spawnServer(tools.unbound, ["-d", "-c", confFile]);
    const answersZone = (a: UdpAnswer) =>
      a.ok && a.rcode === "NOERROR" && a.answers.some((r) => r.type === "SOA");
    if (await waitAnswering(proc, dns, ZONE, answersZone, 10_000, true)) {
      return {
        port: dns,
        tlsPort: tls,
        httpsPort: ports.https,
        servername,
        caFile,
        dir,
        process: proc,
        close: async () => {
          await proc.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    lastOutput = proc.output();
    await proc.stop();
    if (!/address already in use|can't bind|could not open ports/i.test(lastOutput)) break;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`unbound did not start:\n${tail(lastOutput, 3000)}`);
}

/** Answer records from `dig @127.0.0.1 -p PORT NAME TYPE +noall +answer` plus `transport` options, and dig's query time. */
export async function dig(
  tools: RealDnsTools,
  port: number,
  name: string,
  type: string,
  transport: string[] = [],
): Promise<{ records: RecordLine[]; ms: number }> {
  const out = await run(
    tools.dig,
    [
      "@127.0.0.1",
      "-p",
      String(port),
      name,
      type,
      "+noall",
      "+answer",
      "+stats",
      "+time=2",
      "+tries=1",
      ...transport,
    ],
    { timeoutMs: 10_000 },
  );
  if (out.code !== 0)
    throw new Error(
      `dig ${name} ${type} ${transport.join(" ")} failed (exit ${out.code}):\n${out.stderr}${out.stdout}`,
    );
  return {
    records: parseRecordLines(out.stdout),
    ms: Number(/Query time: (\d+) msec/.exec(out.stdout)?.[1] ?? Number.NaN),
  };
}
