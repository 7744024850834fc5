/**
 * deploy/kubernetes/ (issue 15, item 6): every document of every manifest validates against
 * the Kubernetes schemas (kubernetes-models: its schema, and no field the API does not know),
 * and an unknown kind, a schema error or a misspelled field is shown to fail. The Portico
 * config inside the ConfigMap passes `portico check`, and the manifests agree with it and
 * with each other: the headless Service that makes its SRV and A names, the Redis its rate
 * limit names, probes on the admin port with its token, a stop that outlasts preStop and the
 * drain, the config path of the image, the reloader sidecar on the same file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { request } from "../helpers/http.js";
import { runCli } from "../helpers/portico.js";
import { runAppSnippet } from "./app-snippet.js";
import { checkDockerfile } from "./dockerfile.js";
import { loadManifests, type Manifest, manifestErrors } from "./kubernetes.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const dir = join(root, "deploy/kubernetes");
const manifests = loadManifests(dir);
const NAMESPACE = "portico";

// biome-ignore lint/suspicious/noExplicitAny: manifests are data; the schema tests type them.
type Doc = any;
const find = (kind: string, name: string): Doc =>
  manifests.find((m) => m.doc.kind === kind && m.doc.metadata?.name === name)?.doc;
const configMap = find("ConfigMap", "portico-config");
const porticoDeployment = find("Deployment", "portico");
const podSpec = porticoDeployment?.spec.template.spec;
const porticoContainer = podSpec?.containers.find((c: Doc) => c.name === "portico");
const reloader = podSpec?.containers.find((c: Doc) => c.name === "config-reloader");
const config = parse(configMap?.data["portico.yaml"] ?? "") as {
  timeouts: { shutdown: string; drain_grace: string };
  admin: { listen: string; token: string };
  upstreams: Record<string, { servers: Array<{ address?: string; service?: string }> }>;
  servers: Array<{ listen: string; routes: Array<{ rate_limit?: { store?: string } }> }>;
};
const seconds = (t: string) => Number(/^(\d+)s$/.exec(t)?.[1]);
const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

const scratch = mkdtempSync(join(tmpdir(), "portico-k8s-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The manifests with one document replaced by what `change` makes of a copy of it. */
function mutated(kind: string, name: string, change: (doc: Doc) => void): Manifest[] {
  return manifests.map((m) => {
    if (m.doc.kind !== kind || m.doc.metadata?.name !== name) return m;
    const doc = structuredClone(m.doc);
    change(doc);
    return { ...m, doc };
  });
}

describe("deploy/kubernetes manifests", () => {
  it("are the expected objects", () => {
    const kinds = manifests.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        "Namespace/portico",
        "ConfigMap/portico-config",
        "Deployment/portico",
        "Service/portico",
        "PodDisruptionBudget/portico",
        "Deployment/app",
        "Service/app",
        "Deployment/redis",
        "Service/redis",
      ].sort(),
    );
  });

  it("validate against the Kubernetes schemas, with no unknown field", async () => {
    expect(await manifestErrors(manifests)).toEqual([]);
  });

  it.each<[string, string, string, (d: Doc) => void, RegExp]>([
    ["an unknown kind", "Service", "app", (d) => (d.kind = "Servise"), /unknown kind Servise of v1/],
    [
      "an unknown apiVersion",
      "Deployment",
      "app",
      (d) => (d.apiVersion = "apps/v9"),
      /unknown kind Deployment of apps\/v9/,
    ],
    ["a wrong type", "Deployment", "portico", (d) => (d.spec.replicas = "three"), /replicas must be integer/],
    ["a missing field", "Deployment", "app", (d) => delete d.spec.template.spec.containers[0].name, /name/],
    [
      "a probe without a port",
      "Deployment",
      "portico",
      (d) => delete d.spec.template.spec.containers[0].readinessProbe.httpGet.port,
      /httpGet must have required property port/,
    ],
    ["a misspelled field", "Deployment", "portico", (d) => (d.spec.replica = 3), /'replica' does not exist/],
    [
      "a misspelled nested field",
      "Deployment",
      "portico",
      (d) => (d.spec.template.spec.terminationGracePeriodSecond = 45),
      /'terminationGracePeriodSecond' does not exist/,
    ],
  ])("fail with %s", async (_, kind, name, change, message) => {
    expect((await manifestErrors(mutated(kind, name, change))).join("\n")).toMatch(message);
  });

  it("live in the namespace the config's DNS names name, created first", () => {
    expect(manifests[0]?.doc).toMatchObject({ kind: "Namespace", metadata: { name: NAMESPACE } });
    for (const m of manifests.slice(1)) expect(m.doc.metadata.namespace, `${m.file}`).toBe(NAMESPACE);
  });

  it("have Deployments whose selectors match their pods, and Services that select pods", () => {
    const podLabels = manifests
      .filter((m) => m.doc.kind === "Deployment")
      .map((m) => {
        expect(selects(m.doc.spec.selector.matchLabels, m.doc.spec.template.metadata.labels)).toBe(true);
        return m.doc.spec.template.metadata.labels;
      });
    for (const m of manifests.filter(
      (x) => x.doc.kind === "Service" || x.doc.kind === "PodDisruptionBudget",
    )) {
      const selector = m.doc.spec.selector.matchLabels ?? m.doc.spec.selector;
      expect(
        podLabels.some((l) => selects(selector, l)),
        `${m.doc.kind}/${m.doc.metadata.name}`,
      ).toBe(true);
    }
  });
});

describe("the Portico config in the ConfigMap", () => {
  it("passes portico check", async () => {
    const file = join(scratch, "portico.yaml");
    writeFileSync(file, configMap.data["portico.yaml"]);
    const result = await runCli(["check", "-c", file]);
    // The cluster's names do not resolve here: warnings about them are expected.
    expect(result.stderr.split("\n").filter((l) => l && !/: warning: /.test(l))).toEqual([]);
    expect([result.code, result.stdout]).toEqual([0, "configuration OK\n"]);
  });

  it("finds the app through its headless Service, by SRV and by A", () => {
    const servers = Object.values(config.upstreams).flatMap((u) => u.servers);
    const app = find("Service", "app");
    const appPods = find("Deployment", "app").spec.template.spec.containers[0];
    expect(app.spec.clusterIP).toBe("None");

    const srv = servers.map((s) => s.service).find(Boolean);
    const [, portName, proto, service, namespace, rest] =
      /^_([a-z0-9-]+)\._(tcp|udp)\.([a-z0-9-]+)\.([a-z0-9-]+)\.(svc\.cluster\.local)$/.exec(srv ?? "") ?? [];
    expect([service, namespace, rest]).toEqual(["app", NAMESPACE, "svc.cluster.local"]);
    const named = app.spec.ports.find((p: Doc) => p.name === portName);
    expect(named, `a port named ${portName}`).toBeDefined();
    expect((named.protocol ?? "TCP").toLowerCase()).toBe(proto);
    expect(appPods.ports.map((p: Doc) => p.name)).toContain(named.targetPort);

    const address = servers.map((s) => s.address).find(Boolean) ?? "";
    expect(address).toBe(`app.${NAMESPACE}.svc.cluster.local:${named.port}`);
  });

  it("shares its rate limits through the Redis Service", () => {
    const stores = config.servers.flatMap((s) => s.routes.map((r) => r.rate_limit?.store).filter(Boolean));
    expect(stores.length).toBeGreaterThan(0);
    const redis = find("Service", "redis");
    for (const store of stores) {
      const url = new URL(store as string);
      expect(url.hostname).toBe(`redis.${NAMESPACE}.svc.cluster.local`);
      expect(redis.spec.ports.map((p: Doc) => String(p.port))).toContain(url.port || "6379");
    }
  });
});

describe("the Portico Deployment", () => {
  const port = (name: string) => porticoContainer.ports.find((p: Doc) => p.name === name)?.containerPort;
  const listenPort = (listen: string) => Number(listen.split(":").at(-1));

  it("runs several replicas, rolled one at a time behind a Service and a PodDisruptionBudget", () => {
    expect(porticoDeployment.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(porticoDeployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    const service = find("Service", "portico");
    expect(service.spec.ports.map((p: Doc) => p.targetPort)).toEqual(["http"]);
    expect(port("http")).toBe(listenPort(config.servers[0]?.listen ?? ""));
  });

  it("probes /readyz and /healthz on the admin port, with the config's token", () => {
    expect(port("admin")).toBe(listenPort(config.admin.listen));
    expect(config.admin.listen.startsWith("0.0.0.0:")).toBe(true); // the kubelet probes the pod's address
    const probes = {
      readinessProbe: "/readyz",
      livenessProbe: "/healthz",
      startupProbe: "/healthz",
    } as const;
    for (const [probe, path] of Object.entries(probes)) {
      expect(porticoContainer[probe].httpGet, probe).toEqual({
        path,
        port: "admin",
        httpHeaders: [{ name: "Authorization", value: `Bearer ${config.admin.token}` }],
      });
    }
  });

  it("stops later than preStop plus the drain, and preStop waits before the SIGTERM", () => {
    const preStop = porticoContainer.lifecycle.preStop.exec.command as string[];
    expect(preStop[0]).toBe("sleep");
    const stop =
      Number(preStop[1]) + seconds(config.timeouts.shutdown) + seconds(config.timeouts.drain_grace);
    expect(podSpec.terminationGracePeriodSeconds).toBeGreaterThan(stop);
  });

  it("runs the image's config path as the image's user, and reloads that file from a sidecar", () => {
    const { facts } = checkDockerfile(readFileSync(join(root, "Dockerfile"), "utf8"));
    const configPath = facts.configPath as string;
    expect(porticoContainer.args).toEqual(["start", "-c", configPath]);
    const volume = podSpec.volumes.find((v: Doc) => v.configMap?.name === configMap.metadata.name);
    for (const container of [porticoContainer, reloader]) {
      const mount = container.volumeMounts.find((m: Doc) => m.name === volume.name);
      // The folder, not a subPath: a subPath mount never sees the ConfigMap change.
      expect(mount).toEqual({
        name: volume.name,
        mountPath: configPath.replace(/\/[^/]+$/, ""),
        readOnly: true,
      });
      expect(mount.subPath).toBeUndefined();
    }
    expect(Object.keys(configMap.data)).toEqual([configPath.split("/").at(-1)]);
    expect(reloader.image).toBe(porticoContainer.image);
    const script = [...facts.copies].find(([src]) => src.endsWith("admin.mjs"))?.[1];
    expect(reloader.command).toEqual([
      "node",
      `/app/${script?.replace(/^\.\//, "")}`,
      "watch-reload",
      "-c",
      configPath,
      "--interval",
      "5s",
    ]);
    const dockerUser = readFileSync(join(root, "Dockerfile"), "utf8").match(/^USER (\d+):(\d+)$/m);
    expect([String(podSpec.securityContext.runAsUser), String(podSpec.securityContext.runAsGroup)]).toEqual([
      dockerUser?.[1],
      dockerUser?.[2],
    ]);
  });

  it("gives the config's pid_file and state_dir writable volumes under a read-only root", () => {
    const written = parse(configMap.data["portico.yaml"]) as { pid_file: string; state_dir: string };
    expect(porticoContainer.securityContext.readOnlyRootFilesystem).toBe(true);
    const mounts = porticoContainer.volumeMounts.filter((m: Doc) => !m.readOnly).map((m: Doc) => m.mountPath);
    expect(mounts).toContain(written.pid_file.replace(/\/[^/]+$/, ""));
    expect(mounts).toContain(written.state_dir);
  });
});

describe("the app Deployment", () => {
  it("runs an app that serves /healthz and its pod's name, and stops on SIGTERM", async () => {
    const command = find("Deployment", "app").spec.template.spec.containers[0].command as string[];
    const app = await runAppSnippet(command.at(-1) as string);
    try {
      expect((await request(`${app.url}/healthz`)).body.toString()).toBe("ok\n");
      expect((await request(`${app.url}/`)).body.toString()).toMatch(/^hello from \S+\n$/);
    } finally {
      expect(await app.stop()).toBe(0);
    }
  });
});
