// nginx as a peer for `npm run bench`: a config generated into a temp dir (pid, logs and temp
// paths inside it), 1 worker process, upstream keep-alive, HTTP/1.1 to the upstream, the same
// request headers as Portico (X-Forwarded-*, X-Request-Id, Via), an exact /healthz return
// before the proxied path, and an access log to a file or off. Run as the current user:
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

/** The nginx.conf text. */
function config({ dir, port, backendPort, accessLog }) {
  // As root, nginx would switch its worker to `nobody`, which cannot write into the temp dir.
  const user = os.userInfo();
  const group = user.uid === 0 ? execFileSync("id", ["-gn"], { encoding: "utf8" }).trim() : "";
  return `
${user.uid === 0 ? `user ${user.username} ${group};` : ""}
worker_processes 1;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "nginx-error.log")} warn;
events { worker_connections 4096; }
http {
  access_log ${accessLog ? join(dir, "nginx-access.log") : "off"};
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
    listen 127.0.0.1:${port};
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

/** Start nginx in `dir` in front of the backend; resolves with { port, proc, stop }. */
export async function startNginx({ dir, backendPort, accessLog, cpus }) {
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  writeFileSync(conf, config({ dir, port, backendPort, accessLog }));
  const args = [
    "-p",
    dir,
    "-c",
    conf,
    "-e",
    join(dir, "nginx-error.log"),
    "-g",
    "daemon off; master_process on;",
  ];
  const proc = spawnTracked(NGINX, args, { cpus, stdio: ["ignore", "inherit", "inherit"] });
  await waitForPort(port, proc);
  return { port, proc, stop: () => stop(proc) };
}
