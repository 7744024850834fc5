/**
 * deploy/compose.yaml (issue 15, item 4): valid against the Compose Specification's JSON
 * schema (vendored in deploy/schema/, validated with ajv; an unknown key or a wrong type is
 * shown to fail), and consistent with the Portico config it mounts: two app replicas behind
 * the DNS name the config's upstream uses, the Redis its rate limit names, a stop grace
 * longer than the drain, the config passing `portico check`. The app's few lines of node:http
 * are run to show they serve and stop on SIGTERM.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { request } from "../helpers/http.js";
import { runCli } from "../helpers/portico.js";
import { type RunningSnippet, runAppSnippet } from "./app-snippet.js";

const deploy = fileURLToPath(new URL("../../deploy/", import.meta.url));
const composeText = readFileSync(`${deploy}compose.yaml`, "utf8");

interface ComposeService {
  build?: { context: string; dockerfile: string };
  volumes?: string[];
  command?: string[];
  expose?: string[];
  deploy?: { replicas?: number };
  stop_grace_period?: string;
  depends_on?: Record<string, unknown>;
}
/** A compose file as parsed, for the tests that change it. */
type ComposeDoc = { services: Record<string, ComposeService> } & Record<string, unknown>;
const compose = parse(composeText) as ComposeDoc;

/** The Compose Specification's validator (JSON Schema draft-07, as its `$schema` says). */
function composeValidator(): ValidateFunction {
  const schema = JSON.parse(readFileSync(`${deploy}schema/compose-spec.json`, "utf8")) as { $schema: string };
  // strict: false: the schema uses union types and keywords ajv's strict mode would refuse.
  const ajv = new Ajv({ allErrors: true, strict: false });
  // It names the draft-07 meta-schema by its https URL, which ajv knows by its http one.
  const draft7 = JSON.parse(
    readFileSync(fileURLToPath(import.meta.resolve("ajv/dist/refs/json-schema-draft-07.json")), "utf8"),
  ) as object;
  ajv.addMetaSchema({ ...draft7, $id: schema.$schema });
  return ajv.compile(schema);
}
const validate = composeValidator();
const errorsOf = (doc: unknown) =>
  validate(doc)
    ? []
    : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);

/** Seconds in a Compose or Portico duration (`30s`, `1m30s`, `500ms`). */
function seconds(text: string): number {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit as "ms" | "s" | "m" | "h"];
  }
  return total;
}

const portico = compose.services.portico as ComposeService;
const mount = (portico.volumes ?? []).find((v) => v.endsWith(":/etc/portico/portico.yaml:ro")) ?? "";
const configFile = resolve(deploy, mount.split(":")[0] as string);
const config = parse(readFileSync(configFile, "utf8")) as {
  timeouts: { shutdown: string };
  upstreams: Record<string, { servers: Array<{ address?: string }> }>;
  servers: Array<{ routes: Array<{ rate_limit?: { store?: string } }> }>;
};

let app: RunningSnippet | undefined;
afterEach(async () => {
  await app?.stop();
  app = undefined;
});

describe("deploy/compose.yaml", () => {
  it("is valid against the Compose Specification", () => {
    expect(errorsOf(parse(composeText))).toEqual([]);
  });

  it.each([
    [
      "an unknown key",
      (c: ComposeDoc) => Object.assign(c.services.app?.deploy ?? {}, { replica: 2 }),
      /replica/,
    ],
    [
      "a wrong type",
      (c: ComposeDoc) => Object.assign(c.services.portico ?? {}, { ports: "8080:8080" }),
      /array/,
    ],
    ["an unknown top-level key", (c: ComposeDoc) => Object.assign(c, { servics: {} }), /servics/],
  ])("is refused by the schema with %s", (_, mutate, message) => {
    const doc = parse(composeText) as ComposeDoc;
    mutate(doc);
    expect(errorsOf(doc).join("\n")).toMatch(message);
  });

  it("builds the image from the repository's Dockerfile and mounts the config read-only", () => {
    expect(existsSync(resolve(deploy, portico.build?.context ?? "", portico.build?.dockerfile ?? ""))).toBe(
      true,
    );
    expect(mount).not.toBe("");
    expect(existsSync(configFile)).toBe(true);
  });

  it("runs two replicas of the app that the config's upstream finds by DNS, and the Redis it names", () => {
    const addresses = Object.values(config.upstreams).flatMap((u) => u.servers.map((s) => s.address ?? ""));
    expect(addresses).toContain("app:8080");
    for (const address of addresses) {
      const [host, port] = address.split(":");
      const service = compose.services[host as string];
      expect(service, `upstream host ${host} is a Compose service`).toBeDefined();
      expect(service?.deploy?.replicas).toBeGreaterThanOrEqual(2);
      expect(service?.expose).toContain(port);
      expect(portico.depends_on).toHaveProperty(host as string);
    }
    const stores = config.servers.flatMap((s) => s.routes.map((r) => r.rate_limit?.store).filter(Boolean));
    expect(stores.length).toBeGreaterThan(0);
    for (const store of stores) {
      const url = new URL(store as string);
      expect(url.protocol).toBe("redis:");
      expect(compose.services[url.hostname]?.expose).toContain(url.port || "6379");
      expect(portico.depends_on).toHaveProperty(url.hostname);
    }
  });

  it("waits longer for a stop than the config's drain", () => {
    expect(seconds(portico.stop_grace_period ?? "10s")).toBeGreaterThan(
      seconds(config.timeouts.shutdown) + 1,
    );
  });

  it("mounts a config that passes portico check", async () => {
    const result = await runCli(["check", "-c", configFile]);
    // `app` and `redis` resolve only inside Compose: warnings about them are expected.
    expect(result.stderr.split("\n").filter((l) => l && !/: warning: /.test(l))).toEqual([]);
    expect([result.code, result.stdout]).toEqual([0, "configuration OK\n"]);
  });

  it("has an app that serves its replica's name and /healthz, and stops on SIGTERM", async () => {
    // Compose reads `$$` as a literal `$`.
    const script = (compose.services.app?.command ?? []).at(-1)?.replaceAll("$$", "$") ?? "";
    app = await runAppSnippet(script);
    expect((await request(`${app.url}/healthz`)).body.toString()).toBe("ok\n");
    expect((await request(`${app.url}/`)).body.toString()).toMatch(/^hello from \S+\n$/);
    const code = await app.stop();
    app = undefined;
    expect(code).toBe(0);
  });
});
