/**
 * A `tls://` or `https://` nameserver that is in fact a plain DNS port never finishes the TLS
 * handshake: the server reads the ClientHello's first two bytes (0x1603) as a message length
 * and waits for 5,635 bytes that never come, so the query would wait out its whole timeout.
 * When a handshake has not finished after `PROBE_AFTER_MS`, the same port is asked a plain DNS
 * question over TCP; if it answers, the TLS socket is destroyed at once with an error that
 * says what the port is. A real TLS server does not answer the probe, so a slow handshake is
 * left to finish: the probe can only turn a certain failure into a quick one.
 */
import { connect, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { DnsError } from "../errors.js";
import { encodeQuery, randomId } from "../message.js";
import type { Endpoint } from "./transport.js";

/** A handshake still running after this long gets the probe (a real one takes one round trip). */
export const PROBE_AFTER_MS = 250;

/** Watch `socket`'s handshake; `kind` names the transport in the error. */
export function watchHandshake(socket: TLSSocket, endpoint: Endpoint, kind: "tls" | "https"): void {
  let done = false;
  const finish = () => {
    done = true;
    clearTimeout(timer);
  };
  const timer = setTimeout(() => {
    answersPlainDns(endpoint, PROBE_AFTER_MS * 4).then((plain) => {
      if (done || !plain) return;
      const { url, host, port } = endpoint;
      const hostPort = `${host.includes(":") ? `[${host}]` : host}:${port}`;
      const usual = kind === "tls" ? "853 for DNS over TLS" : "443 for DNS over HTTPS";
      socket.destroy(
        new DnsError(
          "NETWORK",
          `${url}: no TLS handshake: ${hostPort} answers plain DNS over TCP, so it is not a DNS-over-${kind === "tls" ? "TLS" : "HTTPS"} port; write tcp://${hostPort}, or give the server's TLS port (usually ${usual})`,
          { server: url, transport: kind },
        ),
      );
    });
  }, PROBE_AFTER_MS);
  timer.unref();
  socket.once("secureConnect", finish);
  socket.once("close", finish);
}

/** Whether host:port answers a DNS query over plain TCP (any rcode) within `timeoutMs`. */
function answersPlainDns(endpoint: Endpoint, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const id = randomId();
    // RFC 6761 §6.4: `invalid.` never exists; any answer, even REFUSED, shows the port speaks DNS.
    const query = encodeQuery({ name: "invalid", type: "A" }, id);
    const frame = Buffer.allocUnsafe(2 + query.length);
    frame.writeUInt16BE(query.length, 0);
    query.copy(frame, 2);
    let received = Buffer.alloc(0);
    let socket: Socket | undefined;
    const settle = (plain: boolean) => {
      clearTimeout(timer);
      socket?.destroy();
      resolve(plain);
    };
    const timer = setTimeout(() => settle(false), timeoutMs);
    socket = connect({ host: endpoint.host, port: endpoint.port }, () => socket?.write(frame));
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // Length, then the header: the same ID with the QR (response) bit set.
      if (received.length >= 5) settle(received.readUInt16BE(2) === id && (received[4] as number) >= 0x80);
    });
    socket.on("error", () => settle(false));
    socket.on("close", () => settle(false));
  });
}
