// The targets of `npm run bench`, all started once per run in front of one backend: the
// backend directly, Portico with `workers: 1` (pinned to the proxy CPU) and `workers: auto`
// (not pinned), the minimal undici proxy, http-proxy, nginx and HAProxy when installed, and
// node:http answering by itself (no proxying: what node:http alone costs, the floor of any
// proxy built on it).
// Each target: { key, name, port, roots (PIDs whose process trees are its CPU), accessLog
// (file of Portico's access log, when on), workers (Portico's worker PIDs), errorLog
// (Portico's JSON log lines), resumeLog (nginx over TLS: its access log), stop }.
// The HTTPS scenarios start their own instances (`tls` passed to `start`: { cert, key,
// combined } files) of the targets that terminate TLS (`tls: true`: Portico with workers: 1,
// nginx, HAProxy), once the plain scenarios are done, so a plain run is the same as before.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startBackend, startNodeServer, startPortico } from "./lib.js";
import { HAPROXY, startHaproxy } from "./peers/haproxy.js";
import { NGINX, startNginx } from "./peers/nginx.js";

const peer = (name) => fileURLToPath(new URL(`./peers/${name}`, import.meta.url));

/**
 * Portico's bench config: every feature on (routes, a return route, request ids, X-Forwarded-*,
 * Via, access log); with `tls`, the listener is a `tls` one with the run's certificate and
 * HTTP/2 is on with 128 concurrent streams (as nginx's and HAProxy's TLS configs). Requests per
 * client connection are held to 1,000,000, as nginx's `keepalive_requests` in bench/peers/nginx.js
 * (HAProxy has no such limit): with Portico's default of 1000, an HTTP/2 session ends with
 * GOAWAY after 1000 streams, and h2load does not reconnect, so (f) measured the limit.
 */
function porticoYaml({ workers, dir, tag, backendPort, accessLog, tls }) {
  const listen = tls
    ? `["127.0.0.1:0 tls"]
    tls:
      certificates:
        - { cert: ${tls.cert}, key: ${tls.key} }`
    : "127.0.0.1:0";
  return `
workers: ${workers}
pid_file: ${join(dir, `portico-${tag}.pid`)}
log: { level: info, access: ${accessLog ? join(dir, `portico-${tag}-access.log`) : "off"}, error: stderr }
limits: { max_requests_per_connection: 1000000 }
${tls ? "http2: { enabled: true, max_concurrent_streams: 128 }\n" : ""}upstreams:
  bench: { servers: [{ address: 127.0.0.1:${backendPort} }] }
servers:
  - listen: ${listen}
    default: true
    routes:
      - exact: /healthz
        return: { status: 200, body: "ok\\n" }
      - path: /
        upstream: bench
`;
}

/**
 * Every target's definition, in the order they run. `only` (keys) restricts the list;
 * nginx and HAProxy are left out when not installed; `tls` keeps only those that terminate TLS.
 */
export function targetList({ only, tls = false } = {}) {
  const all = [
    {
      key: "direct",
      start: async ({ backend }) => ({ name: "backend directly", port: backend.port, roots: [] }),
    },
    {
      key: "portico-1",
      tls: true,
      start: (o) =>
        portico({
          ...o,
          workers: 1,
          tag: o.tls ? "1-tls" : "1",
          cpus: o.proxyCpus,
          name: `Portico, workers: 1${o.pin}`,
        }),
    },
    {
      key: "portico-auto",
      start: (o) => portico({ ...o, workers: "auto", tag: "auto", name: "Portico, workers: auto" }),
    },
    {
      key: "undici",
      start: async ({ backend, proxyCpus, pin }) => {
        const p = await startNodeServer(peer("undici-proxy.js"), [String(backend.port)], { cpus: proxyCpus });
        return { name: `minimal undici proxy${pin}`, port: p.port, roots: [p.proc.pid], stop: p.stop };
      },
    },
    {
      key: "http-proxy",
      start: async ({ backend, proxyCpus, pin }) => {
        const p = await startNodeServer(peer("http-proxy.js"), [String(backend.port)], { cpus: proxyCpus });
        return { name: `http-proxy${pin}`, port: p.port, roots: [p.proc.pid], stop: p.stop };
      },
    },
    {
      // A second bench backend on the proxy's CPU: node:http serving the same bodies itself.
      // No proxy can cost less per request than this on node:http (it is one of its legs).
      key: "node-floor",
      start: async ({ proxyCpus, pin }) => {
        const p = await startBackend({ cpus: proxyCpus });
        return {
          name: `node:http answering itself, no proxying${pin}`,
          port: p.port,
          roots: [p.proc.pid],
          stop: p.stop,
        };
      },
    },
    NGINX && {
      key: "nginx",
      tls: true,
      start: async ({ backend, dir, accessLog, proxyCpus, pin, tls }) => {
        const p = await startNginx({ dir, backendPort: backend.port, accessLog, cpus: proxyCpus, tls });
        // resumeLog: over TLS, its access log says which handshakes were resumed.
        const resumeLog = tls ? p.accessFile : undefined;
        return { name: `nginx, 1 worker${pin}`, port: p.port, roots: [p.proc.pid], resumeLog, stop: p.stop };
      },
    },
    HAPROXY && {
      key: "haproxy",
      tls: true,
      start: async ({ backend, dir, accessLog, proxyCpus, pin, tls }) => {
        const p = await startHaproxy({ dir, backendPort: backend.port, accessLog, cpus: proxyCpus, tls });
        return { name: `HAProxy, nbthread 1${pin}`, port: p.port, roots: [p.proc.pid], stop: p.stop };
      },
    },
  ].filter((t) => t && (!tls || t.tls));
  return only ? all.filter((t) => only.includes(t.key)) : all;
}

async function portico({ backend, dir, accessLog, workers, tag, cpus, name, tls }) {
  const yaml = porticoYaml({ workers, dir, tag, backendPort: backend.port, accessLog, tls });
  const p = await startPortico(yaml, { cpus, dir, name: `portico-${tag}.yaml` });
  return {
    name: workers === "auto" ? `${name} (${p.pids.length}), not pinned` : name,
    port: p.port,
    roots: [p.proc.pid],
    accessLog: accessLog ? join(dir, `portico-${tag}-access.log`) : undefined,
    workers: p.pids,
    errorLog: p.lines, // its master's and workers' JSON log lines, for the warnings of a run
    stop: p.stop,
  };
}

/** Start the targets of `list` one after another; resolves with the started targets. */
export async function startTargets(list, options) {
  const started = [];
  for (const t of list) started.push({ key: t.key, ...(await t.start(options)) });
  return started;
}
