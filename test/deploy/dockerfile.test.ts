/**
 * The container image (issue 15, item 4), without building it (CI cannot reach Docker Hub):
 * the Dockerfile's rules (multi-stage on node 22/24, production dependencies only, a
 * non-root user, a graceful STOPSIGNAL, a HEALTHCHECK by node on /healthz), the config path
 * it documents being the one Compose mounts (Kubernetes': kubernetes.test.ts), the
 * .dockerignore letting in what the Dockerfile copies, and the image's default config passing
 * `portico check`. Each rule is also shown to fail on a Dockerfile that breaks it.
 */
import { readFileSync } from "node:fs";
import { dirname, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { runCli } from "../helpers/portico.js";
import { checkDockerfile, parseDockerfile } from "./dockerfile.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string) => readFileSync(`${root}${path}`, "utf8");
const dockerfile = read("Dockerfile");
const { problems, facts } = checkDockerfile(dockerfile);
const CONFIG_PATH = "/etc/portico/portico.yaml";

describe("Dockerfile", () => {
  it("keeps every rule", () => {
    expect(problems).toEqual([]);
  });

  it("starts Portico on the documented config path, where the default config is copied", () => {
    expect(facts.configPath).toBe(CONFIG_PATH);
    expect(facts.copies.get("deploy/container/portico.yaml")).toBe(CONFIG_PATH);
  });

  it("runs the health check script it copies, on the same config", () => {
    const script = facts.copies.get("deploy/container/admin.mjs");
    expect(script).toBeDefined();
    expect(facts.healthcheck).toEqual([
      "node",
      posix.resolve("/app", script as string),
      "healthz",
      "-c",
      CONFIG_PATH,
    ]);
  });

  it("exposes the default config's listen and admin ports", () => {
    const config = parse(read("deploy/container/portico.yaml")) as {
      servers: Array<{ listen: string }>;
      admin: { listen: string };
    };
    const port = (listen: string) => Number(listen.split(":").at(-1));
    for (const s of config.servers) expect(facts.exposed).toContain(port(s.listen));
    expect(facts.exposed).toContain(port(config.admin.listen));
    // The HEALTHCHECK runs inside the container: loopback needs no token.
    expect(config.admin.listen.startsWith("127.0.0.1:")).toBe(true);
  });

  it("makes the default config's pid_file and state_dir folders, owned by its user", () => {
    const config = parse(read("deploy/container/portico.yaml")) as { pid_file: string; state_dir: string };
    const run = parseDockerfile(dockerfile)
      .filter((i) => i.keyword === "RUN")
      .map((i) => i.args)
      .join("\n");
    for (const dir of [dirname(config.pid_file), config.state_dir]) {
      expect(run).toMatch(new RegExp(`mkdir -p [^&]*${dir}\\b`));
      expect(run).toMatch(new RegExp(`chown portico:portico [^&]*${dir}\\b`));
    }
  });

  it("is the config path that deploy/compose.yaml mounts (deploy/kubernetes: kubernetes.test.ts)", () => {
    const compose = parse(read("deploy/compose.yaml")) as {
      services: Record<string, { volumes?: string[] }>;
    };
    expect(compose.services.portico?.volumes).toContain(`./compose/portico.yaml:${CONFIG_PATH}:ro`);
  });

  it("has a .dockerignore that lets in only what the Dockerfile copies", () => {
    const patterns = read(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    expect(patterns[0]).toBe("*");
    const allowed = patterns.filter((p) => p.startsWith("!")).map((p) => p.slice(1));
    expect(new Set(allowed)).toEqual(facts.contextSources);
    for (const kept of ["node_modules", "dist", ".git", "test"]) expect(allowed).not.toContain(kept);
  });

  it.each([
    [
      "one stage",
      (d: string) => d.replace(/FROM node:22-bookworm-slim AS (build|deps)\n/g, ""),
      /multi-stage/,
    ],
    ["Node 20", (d: string) => d.replaceAll("node:22-bookworm-slim", "node:20-bookworm-slim"), /Node 20/],
    [
      "another base image",
      (d: string) => d.replace(/(FROM )node:22-bookworm-slim( AS runtime)/, "$1debian:12$2"),
      /official node/,
    ],
    ["no USER", (d: string) => d.replace(/^USER .*$/m, ""), /no USER/],
    ["USER root", (d: string) => d.replace(/^USER .*$/m, "USER root"), /is root/],
    [
      "STOPSIGNAL SIGKILL",
      (d: string) => d.replace(/^STOPSIGNAL .*$/m, "STOPSIGNAL SIGKILL"),
      /STOPSIGNAL SIGKILL/,
    ],
    ["no HEALTHCHECK", (d: string) => d.replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, ""), /no HEALTHCHECK/],
    [
      "a curl HEALTHCHECK",
      (d: string) => d.replace(/CMD \["node".*\]$/m, "CMD curl -f http://127.0.0.1:9901/healthz"),
      /curl/,
    ],
    ["dev dependencies", (d: string) => d.replace("npm ci --omit=dev", "npm ci"), /--omit=dev/],
    ["no build", (d: string) => d.replace("RUN npm run build", ""), /build stage/],
    ["no config path", (d: string) => d.replace(/^CMD \["start".*$/m, 'CMD ["start"]'), /no config/],
  ])("fails with %s", (_, mutate, message) => {
    const mutated = mutate(dockerfile);
    expect(mutated).not.toBe(dockerfile);
    expect(checkDockerfile(mutated).problems.join("\n")).toMatch(message);
  });

  it("reads continuations, comments inside them, flags and the exec form", () => {
    const [run, health] = parseDockerfile(
      '# syntax=docker/dockerfile:1\nrun a \\\n  # inside\n  && b\nHEALTHCHECK --interval=5s CMD ["node", "x"]\n',
    );
    expect(run).toMatchObject({ keyword: "RUN", args: "a && b", line: 2 });
    expect(health).toMatchObject({
      keyword: "HEALTHCHECK",
      flags: { interval: "5s" },
      args: 'CMD ["node", "x"]',
    });
  });
});

describe("the image's default config (deploy/container/portico.yaml)", () => {
  it("passes portico check", async () => {
    const result = await runCli(["check", "-c", `${root}deploy/container/portico.yaml`]);
    expect(result.stderr).toBe("");
    expect([result.code, result.stdout]).toEqual([0, "configuration OK\n"]);
  });
});
