// HAProxy as a peer for `npm run bench`: a config generated into a temp dir, `nbthread 1`,
// http mode, `http-reuse always` (keep-alive to the backend shared between clients), the same
// request headers as Portico (X-Forwarded-*, X-Request-Id, Via), a /healthz return before the
// proxied path, and an access log (option httplog) to stdout, redirected to a file, or none.
// With `tls` (the HTTPS scenarios): the run's certificate (cert and key in one PEM file, as
// `crt` wants them), TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN, at most 128 concurrent
// streams (as Portico's bench config), session tickets on (HAProxy's default).
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
function config({ port, backendPort, accessLog, tls }) {
  return `
global
  nbthread 1
  maxconn 4096
${tls ? "  ssl-default-bind-options ssl-min-ver TLSv1.2\n  tune.h2.max-concurrent-streams 128\n" : ""}${accessLog ? "  log stdout format raw local0\n" : ""}
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
  bind 127.0.0.1:${port}${tls ? ` ssl crt ${tls.combined} alpn h2,http/1.1` : ""}
  http-request return status 200 content-type text/plain string "ok\\n" if { path /healthz }
  option forwardfor
  http-request set-header X-Forwarded-Proto ${tls ? "https" : "http"}
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Request-Id %[uuid()]
  http-request add-header Via "1.1 haproxy"
  default_backend bench

backend bench
  server backend 127.0.0.1:${backendPort}
`;
}

/**
 * Start haproxy in `dir` in front of the backend (over TLS when `tls` is { combined }: the
 * files are then haproxy-tls.*); resolves with { port, proc, stop }.
 */
export async function startHaproxy({ dir, backendPort, accessLog, cpus, tls }) {
  const port = await freePort();
  const name = tls ? "haproxy-tls" : "haproxy";
  const cfg = join(dir, `${name}.cfg`);
  writeFileSync(cfg, config({ port, backendPort, accessLog, tls }));
  const out = openSync(join(dir, `${name}-access.log`), "a");
  const proc = spawnTracked(HAPROXY, ["-db", "-f", cfg], { cpus, stdio: ["ignore", out, "inherit"] });
  closeSync(out);
  await waitForPort(port, proc);
  return { port, proc, stop: () => stop(proc) };
}

/** The OpenSSL HAProxy runs with: `3.0.19` from `haproxy -vv`'s `Running on OpenSSL version : OpenSSL 3.0.19 ...`. */
export function haproxyOpenssl() {
  const out = execFileSync(HAPROXY, ["-vv"], { encoding: "utf8" });
  return /Running on OpenSSL version : OpenSSL (\S+)/.exec(out)?.[1] ?? "unknown";
}
