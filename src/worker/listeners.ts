/**
 * The listen sockets of a worker: one HTTP server per distinct `listen` address, serving
 * every virtual server configured on it. Under node:cluster the master owns the socket and
 * the workers share it; `listen` here asks the master for it, and with SCHED_NONE (set by
 * the master) the master sends the socket itself, so this worker accepts from it directly.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Config, Server } from "../config/types.js";
import type { BoundAddress } from "../ipc.js";
import { createRequestHandler, type HandlerContext } from "./handler.js";
import { HostRouter } from "./router.js";

/** An open listen socket and the servers it carries. */
export interface Listener {
  listen: string;
  server: http.Server;
}

/** A listen address that could not be opened. */
export class ListenError extends Error {
  readonly listen: string;
  readonly code: string;
  constructor(listen: string, code: string, message: string) {
    super(message);
    this.listen = listen;
    this.code = code;
  }
}

/** Servers grouped by the listen address they share, in config order. */
function groupByListen(
  servers: readonly Server[],
): Map<string, { host: string; port: number; servers: Server[] }> {
  const groups = new Map<string, { host: string; port: number; servers: Server[] }>();
  for (const server of servers) {
    for (const l of server.listen) {
      const key = `${l.host}|${l.port}`;
      let group = groups.get(key);
      if (!group) {
        group = { host: l.host, port: l.port, servers: [] };
        groups.set(key, group);
      }
      group.servers.push(server);
    }
  }
  return groups;
}

/** Open every listen address of `config`; rejects with a ListenError naming the first that failed. */
export async function openListeners(
  config: Config,
  ctx: HandlerContext,
  opened: Listener[] = [],
): Promise<{ listeners: Listener[]; bound: BoundAddress[] }> {
  const listeners = opened;
  const bound: BoundAddress[] = [];
  for (const group of groupByListen(config.servers).values()) {
    const text = group.host.includes(":") ? `[${group.host}]:${group.port}` : `${group.host}:${group.port}`;
    const server = http.createServer(
      {
        keepAliveTimeout: config.timeouts.clientKeepalive,
        // Node closes a keep-alive socket this long after keepAliveTimeout; keep it short.
        requestTimeout: 0,
      },
      createRequestHandler(ctx, new HostRouter(group.servers), "http"),
    );
    ctx.connections.watch(server);
    server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
      if (err.code === "ECONNRESET" || !socket.writable) {
        socket.destroy();
        return;
      }
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    });
    listeners.push({ listen: text, server });
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(new ListenError(text, err.code ?? "UNKNOWN", err.message)),
      );
      server.listen({ host: group.host, port: group.port }, () => resolve());
    });
    const address = server.address() as AddressInfo;
    bound.push({ listen: text, address: address.address, port: address.port });
  }
  return { listeners, bound };
}
