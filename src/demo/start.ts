/**
 * `npm start`: the two demo app servers of the shipped config, then `portico start` on
 * conf/portico.yaml in front of them. Ctrl-C stops Portico gracefully, then the demos.
 */
import { spawn } from "node:child_process";
import type http from "node:http";
import { fileURLToPath } from "node:url";
import { startDemoBackend } from "./backend.js";

const DEMOS = [
  { name: "app-1", port: 9001 },
  { name: "app-2", port: 9002 },
];

async function main(): Promise<void> {
  const servers: http.Server[] = [];
  for (const demo of DEMOS) {
    try {
      servers.push(await startDemoBackend(demo.name, "127.0.0.1", demo.port));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      process.stderr.write(
        `demo: cannot start ${demo.name} on 127.0.0.1:${demo.port} (${code}); is another 'npm start' running? Stop it and try again.\n`,
      );
      process.exit(1);
    }
    process.stderr.write(`demo: ${demo.name} listening on http://127.0.0.1:${demo.port}\n`);
  }
  const cli = fileURLToPath(new URL("../cli.js", import.meta.url));
  const config = process.argv[2] ?? "conf/portico.yaml";
  // Its own process group: a terminal's Ctrl-C reaches only us, and we pass it on once
  // (Portico takes a second SIGINT as "stop at once").
  const portico = spawn(process.execPath, [cli, "start", "-c", config], { stdio: "inherit", detached: true });
  process.stderr.write("demo: try  curl -i http://127.0.0.1:8080/  (twice, to see both backends)\n");
  process.stderr.write(
    "demo:  or  curl -ik https://127.0.0.1:8443/  (HTTP/2, a self-signed development certificate: -k)\n",
  );
  const forward = (signal: NodeJS.Signals) => portico.kill(signal);
  process.on("SIGINT", () => forward("SIGINT"));
  process.on("SIGTERM", () => forward("SIGTERM"));
  process.on("SIGHUP", () => forward("SIGHUP"));
  portico.on("exit", (code, signal) => {
    for (const server of servers) server.close();
    process.exit(code ?? (signal ? 1 : 0));
  });
}

void main();
