// HAProxy as a peer for `npm run bench`: a config generated into a temp dir, `nbthread 1`,
// http mode, `http-reuse always` (keep-alive to the backend shared between clients), the same
// request headers as Portico (X-Forwarded-*, X-Request-Id, Via), a /healthz return before the
// proxied path, and an access log (option httplog) to stdout, redirected to a file, or none.
// Run in the foreground as the current user: `haproxy -db -f DIR/haproxy.cfg`.
import { execFileSync } from "node:child_process";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, spawnTracked, stop, waitForPort, which } from "../lib.js";

export const HAPROXY = which("haproxy");

/** `HAProxy version 2.6.12-1+deb12u4 2026/10/17 - ...` -> `HAProxy 2.6.12-1+deb12u4`. */
export function haproxyVersion() {
  const line = execFileSync(HAPROXY, ["-v"], { encoding: "utf8" }).split("\n")[0];
  return line.replace(/^HAProxy version (\S+).*/, "HAProxy $1");
}

/** The haproxy.cfg text. */
function config({ port, backendPort, accessLog }) {
  return `
global
  nbthread 1
  maxconn 4096
${accessLog ? "  log stdout format raw local0\n" : ""}
defaults
  mode http
${accessLog ? "  log global\n  option httplog\n" : ""}
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 75s
  timeout server 60s
  timeout http-keep-alive 75s

frontend bench
  bind 127.0.0.1:${port}
  http-request return status 200 content-type text/plain string "ok\\n" if { path /healthz }
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Request-Id %[uuid()]
  http-request add-header Via "1.1 haproxy"
  default_backend bench

backend bench
  server backend 127.0.0.1:${backendPort}
`;
}

/** Start haproxy in `dir` in front of the backend; resolves with { port, proc, stop }. */
export async function startHaproxy({ dir, backendPort, accessLog, cpus }) {
  const port = await freePort();
  const cfg = join(dir, "haproxy.cfg");
  writeFileSync(cfg, config({ port, backendPort, accessLog }));
  const out = openSync(join(dir, "haproxy-access.log"), "a");
  const proc = spawnTracked(HAPROXY, ["-db", "-f", cfg], { cpus, stdio: ["ignore", out, "inherit"] });
  closeSync(out);
  await waitForPort(port, proc);
  return { port, proc, stop: () => stop(proc) };
}
