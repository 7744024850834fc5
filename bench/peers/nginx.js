// nginx as a peer for `npm run bench`: a config generated into a temp dir (pid, logs and temp
// paths inside it), 1 worker process, upstream keep-alive, HTTP/1.1 to the upstream, the same
// request headers as Portico (X-Forwarded-*, X-Request-Id, Via), an exact /healthz return
// before the proxied path, and an access log to a file or off. With `tls` (the HTTPS
// scenarios): TLS 1.2 and 1.3 with the run's certificate, HTTP/2 by ALPN, at most 128
// concurrent streams (as Portico's bench config), session tickets on (nginx's default, as
// Portico's), and the access log's lines end with $ssl_session_reused (`r` or `.`), so the
// benchmark can tell how many of the handshakes were resumed. Run as the current user:
// `nginx -p DIR -c DIR/nginx.conf -e DIR/error.log -g 'daemon off; master_process on;'`.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { freePort, spawnTracked, stop, waitForPort, which } from "../lib.js";

export const NGINX = which("nginx");

/** `nginx version: nginx/1.22.1` (printed on stderr) -> `nginx 1.22.1`. */
export function nginxVersion() {
  const out = execFileSync("sh", ["-c", `"${NGINX}" -v 2>&1`], { encoding: "utf8" });
  return out.trim().replace("nginx version: nginx/", "nginx ");
}

/** True for nginx 1.25.1 and later, where `http2 on;` replaces `listen ... http2` (deprecated there). */
function http2Directive() {
  const [major, minor, patch] = (/(\d+)\.(\d+)\.(\d+)/.exec(nginxVersion()) ?? []).slice(1).map(Number);
  return major > 1 || (major === 1 && (minor > 25 || (minor === 25 && patch >= 1)));
}

/** The server block's listen and TLS lines: plain, or TLS with HTTP/2 when `tls` is { cert, key }. */
function listen(port, tls) {
  if (!tls) return `listen 127.0.0.1:${port};`;
  const h2 = http2Directive();
  return `listen 127.0.0.1:${port} ssl${h2 ? "" : " http2"};
    ${h2 ? "http2 on;\n    " : ""}ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 128;`;
}

/** The nginx.conf text. */
function config({ dir, name, port, backendPort, accessLog, tls }) {
  // As root, nginx would switch its worker to `nobody`, which cannot write into the temp dir.
  const user = os.userInfo();
  const group = user.uid === 0 ? execFileSync("id", ["-gn"], { encoding: "utf8" }).trim() : "";
  return `
${user.uid === 0 ? `user ${user.username} ${group};` : ""}
worker_processes 1;
pid ${join(dir, `${name}.pid`)};
error_log ${join(dir, `${name}-error.log`)} warn;
events { worker_connections 4096; }
http {
  ${accessLog && tls ? `log_format bench_tls '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $ssl_session_reused';\n  ` : ""}access_log ${accessLog ? `${join(dir, `${name}-access.log`)}${tls ? " bench_tls" : ""}` : "off"};
  client_body_temp_path ${join(dir, "client_body")};
  proxy_temp_path ${join(dir, "proxy")};
  fastcgi_temp_path ${join(dir, "fastcgi")};
  uwsgi_temp_path ${join(dir, "uwsgi")};
  scgi_temp_path ${join(dir, "scgi")};
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  upstream bench {
    server 127.0.0.1:${backendPort};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 4s;
  }
  server {
    ${listen(port, tls)}
    location = /healthz { default_type text/plain; return 200 "ok\\n"; }
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header Via "1.1 nginx";
    }
  }
}
`;
}

/**
 * Start nginx in `dir` in front of the backend (over TLS when `tls` is { cert, key }: the
 * config, pid and log files are then nginx-tls.*, so a plain and a TLS nginx can share `dir`); resolves
 * with { port, proc, stop }.
 */
export async function startNginx({ dir, backendPort, accessLog, cpus, tls }) {
  const port = await freePort();
  const name = tls ? "nginx-tls" : "nginx";
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, config({ dir, name, port, backendPort, accessLog, tls }));
  const args = [
    "-p",
    dir,
    "-c",
    conf,
    "-e",
    join(dir, `${name}-error.log`),
    "-g",
    "daemon off; master_process on;",
  ];
  const proc = spawnTracked(NGINX, args, { cpus, stdio: ["ignore", "inherit", "inherit"] });
  await waitForPort(port, proc);
  const accessFile = accessLog ? join(dir, `${name}-access.log`) : undefined;
  return { port, proc, accessFile, stop: () => stop(proc) };
}

/** The OpenSSL nginx runs with: `3.0.19` from `running with OpenSSL 3.0.19 ...`, else the one it was built with. */
export function nginxOpenssl() {
  const out = execFileSync("sh", ["-c", `"${NGINX}" -V 2>&1`], { encoding: "utf8" });
  return (/running with OpenSSL (\S+)/.exec(out) ?? /built with OpenSSL (\S+)/.exec(out))?.[1] ?? "unknown";
}
