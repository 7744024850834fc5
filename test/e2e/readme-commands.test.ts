/**
 * Every command README.md and docs/ show in a shell block is exercised in CI: the cheap ones
 * are run here (the CLI's, the demo that `npm start` runs with the curls it suggests, the
 * benchmarks on their smallest settings), the others are named with the test or script that
 * runs them. A command shown with no entry below fails this test, so a new one cannot go
 * unexercised.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { request } from "../helpers/http.js";
import { runCli } from "../helpers/portico.js";
import { findTool, run } from "../helpers/real-dns.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Commands of the ```sh blocks of README.md and docs/*.md, comments dropped. */
function documentedCommands(): Array<{ file: string; command: string }> {
  const files = [
    "README.md",
    ...(existsSync(`${root}docs`) ? readdirSync(`${root}docs`) : [])
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];
  const out: Array<{ file: string; command: string }> = [];
  for (const file of files) {
    let inSh = false;
    for (const line of readFileSync(`${root}${file}`, "utf8").split("\n")) {
      if (/^```(sh|bash|shell)\s*$/.test(line.trim())) inSh = true;
      else if (line.trim().startsWith("```")) inSh = false;
      else if (inSh) {
        const command = line.replace(/(^|\s)#.*$/, "").trim();
        if (command !== "") out.push({ file, command });
      }
    }
  }
  return out;
}

/** Where each command is exercised: `run` here (below), or the file that runs it in CI. */
const COVERED: Array<[RegExp, string]> = [
  [/^portico (--help|-h)$/, "run"],
  // Run when the file is in the repository; a deployment path (/etc/...) is an example config's.
  [/^(portico|node dist\/cli\.js) (check|explain) -c /, "run"],
  [/^(portico|node dist\/cli\.js) dns /, "test/e2e/dns-command.test.ts"],
  [/^(portico|node dist\/cli\.js) (reload|stop) -c /, "test/e2e/control.test.ts"],
  [/^(portico|node dist\/cli\.js) start -c /, "test/helpers/portico.ts"],
  // The admin listener's endpoints, as an operator calls them.
  [/^curl .*:9901\/(status|metrics|dns|dns\/flush|reload|healthz|readyz)\b/, "test/e2e/admin.test.ts"],
  // Installing the systemd unit on a host: the unit itself is checked by systemd-analyze verify.
  [/^(sudo )?(systemctl|journalctl|cp deploy\/systemd\/)/, "test/deploy/systemd.test.ts"],
  [/^npm install && npm start$|^npm start$/, "run"],
  [/^curl -i?k? ?-?i?k? ?https?:\/\/127\.0\.0\.1:(8080|8443)\/$/, "run"],
  [/^npm (test|ci)$|^npm run (build|lint|typecheck)$|^bash \.ci\/run$|^npm ci && npm run build$/, ".ci/run"],
  [/^npm run schema$/, "test/docs/reference.test.ts"],
  [/^npm run reference$/, "test/docs/reference.test.ts"],
  [
    /^npm run bench( -- --quick)?$|^npm run bench:(dns|reload|https)$|^npm run build && node bench\/rate-limit\.js$/,
    "run",
  ],
  // Optional tools the benchmark uses when present (it says so when they are missing).
  [/^apt-get install -y (nginx|haproxy|wrk|nghttp2-client| )+$/, "bench/proxy.js"],
];

function coverage(command: string): string | undefined {
  return COVERED.find(([re]) => re.test(command))?.[1];
}

/** True when nothing listens on 127.0.0.1:`port`. */
function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

describe("documented commands", () => {
  const commands = documentedCommands();

  it("each is exercised by something in CI", () => {
    expect(commands.length).toBeGreaterThan(10);
    const missing = commands.filter((c) => coverage(c.command) === undefined);
    expect(
      missing,
      `not exercised anywhere: ${missing.map((c) => `${c.file}: ${c.command}`).join("; ")}`,
    ).toEqual([]);
    for (const c of commands) {
      const by = coverage(c.command) as string;
      if (by !== "run") expect(existsSync(`${root}${by}`), `${c.command}: ${by} does not exist`).toBe(true);
    }
  });

  it("the CLI's own: --help, check and explain on the shipped config", async () => {
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    for (const sub of ["start", "check", "reload", "stop", "dns", "explain"])
      expect(help.stdout).toContain(`  ${sub} `);
    for (const c of commands.filter((x) =>
      /^(portico|node dist\/cli\.js) (check|explain) /.test(x.command),
    )) {
      const args = c.command
        .replace(/^node dist\/cli\.js/, "portico")
        .split(/\s+/)
        .slice(1);
      if (!existsSync(`${root}${args[2]}`)) {
        expect(existsSync(`${root}test/config/examples.test.ts`)).toBe(true);
        continue;
      }
      const result = await runCli(args);
      expect(result.code, `${c.command}: ${result.stderr}`).toBe(0);
    }
  });

  it("npm start's demo answers the curls README suggests, from both app servers", async () => {
    const ports = [8080, 8443, 9001, 9002];
    const taken = [];
    for (const port of ports) if (!(await free(port))) taken.push(port);
    if (taken.length > 0) {
      console.warn(
        `readme-commands: SKIPPING the npm start demo: 127.0.0.1 ports ${taken.join(", ")} are taken`,
      );
      return;
    }
    // What `npm start` runs after its build (prestart): the build is CI's own step.
    const demo = spawn(process.execPath, [`${root}dist/demo/start.js`], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let text = "";
    demo.stderr?.on("data", (c: Buffer) => {
      text += c.toString();
    });
    demo.stdout?.resume();
    const exited = new Promise((r) => demo.once("exit", r));
    let master: number | undefined;
    try {
      const deadline = Date.now() + 20_000;
      while (!text.includes("portico ready") && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const ready = text.split("\n").find((l) => l.includes('"portico ready"'));
      master = ready ? (JSON.parse(ready) as { pid: number }).pid : undefined;
      expect(master).toBeGreaterThan(0);
      const names = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const res = await request("http://127.0.0.1:8080/");
        expect(res.status).toBe(200);
        names.add(/app-\d/.exec(res.body.toString())?.[0] ?? "");
      }
      expect([...names].sort()).toEqual(["app-1", "app-2"]);
      const curl = findTool("curl");
      if (curl) {
        for (const c of commands.filter((x) =>
          /^curl -i?k? https?:\/\/127\.0\.0\.1:(8080|8443)\/$/.test(x.command),
        )) {
          const args = [...c.command.split(/\s+/).slice(1), "-sS", "--max-time", "5"];
          const result = await run(curl, args, { timeoutMs: 10_000 });
          expect(result.code, `${c.command}: ${result.stderr}`).toBe(0);
          expect(result.stdout).toMatch(/^HTTP\/(1\.1|2) 200/);
        }
      } else
        console.warn("readme-commands: curl is not installed: the demo was checked with node's client only");
    } finally {
      // Ctrl-C, as README says: the demo passes it to Portico, which stops gracefully.
      demo.kill("SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      // Portico runs in its own process group: if it is still up, a second signal stops it at once.
      if (master !== undefined) {
        for (const signal of ["SIGTERM", "SIGTERM"] as const) {
          try {
            process.kill(master, signal);
          } catch {
            break; // gone
          }
        }
      }
      if (demo.exitCode === null) demo.kill("SIGKILL");
    }
    expect(demo.exitCode).toBe(0);
  }, 60_000);

  it("the benchmarks run end to end on their smallest settings (figures are not checked)", async () => {
    const node = process.execPath;
    const env = {
      ...process.env,
      BENCH_SECONDS: "1",
      BENCH_ROUNDS: "1",
      BENCH_SCENARIOS: "a",
      BENCH_TARGETS: "portico-1,undici",
    };
    const runs: Array<[string, string[], Record<string, string>]> = [
      ["proxy --quick", [`${root}bench/proxy.js`, "--quick", "--no-record"], {}],
      ["proxy --https --quick", [`${root}bench/proxy.js`, "--https", "--quick", "--no-record"], {}],
      ["dns", [`${root}bench/dns.js`], { BENCH_QUERIES: "300" }],
      ["reload", [`${root}bench/reload.js`], { BENCH_RELOADS: "1", BENCH_CONNECTIONS: "4" }],
      ["rate-limit", [`${root}bench/rate-limit.js`], { BENCH_CHECKS: "300", BENCH_CONNECTIONS: "4" }],
    ];
    // bench:dns's own prestep: the test DNS server, compiled for the benchmark.
    const tsc = await run(
      node,
      [`${root}node_modules/typescript/bin/tsc`, "-p", `${root}tsconfig.bench.json`],
      {
        timeoutMs: 120_000,
      },
    );
    expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);
    for (const [name, args, extra] of runs) {
      const result = await run(node, args, { timeoutMs: 120_000, env: { ...env, ...extra } });
      expect(result.code, `bench ${name}: ${result.stderr.slice(-2000)}`).toBe(0);
    }
  }, 300_000);
});
