// TLS material and checks for the HTTPS scenarios of `npm run bench`: one self-signed P-256
// certificate (selfsigned, as test/helpers/certs.ts makes them) written into the run's temp
// dir and served by every target, so Portico, nginx and HAProxy sign with the same key type;
// and a probe that tells what a target negotiates and whether it resumes a session, since
// wrk and h2load offer the session of a connection's previous handshake when they reconnect.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import tls from "node:tls";
import { generate } from "selfsigned";

/**
 * Write cert.pem, key.pem and cert+key.pem (HAProxy's `crt` wants both in one file) into `dir`;
 * resolves with their paths { cert, key, combined }.
 */
export async function makeCertificate(dir) {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate,
    // 90 days: Portico warns about a certificate that expires within 14 days.
    notAfterDate: new Date(notBeforeDate.getTime() + 90 * 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      // selfsigned's SAN entries: type 2 = dNSName, type 7 = iPAddress.
      {
        name: "subjectAltName",
        altNames: [
          { type: 2, value: "localhost" },
          { type: 7, ip: "127.0.0.1" },
        ],
      },
    ],
  });
  const files = {
    cert: join(dir, "cert.pem"),
    key: join(dir, "key.pem"),
    combined: join(dir, "cert+key.pem"),
  };
  writeFileSync(files.cert, pems.cert);
  writeFileSync(files.key, pems.private, { mode: 0o600 });
  writeFileSync(files.combined, `${pems.cert.trim()}\n${pems.private.trim()}\n`, { mode: 0o600 });
  return files;
}

/** One TLS connection to 127.0.0.1:`port` (offering `session` if given), a GET of /1k, read to the end. */
function connectOnce(port, session) {
  return new Promise((resolve, reject) => {
    let ticket;
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      rejectUnauthorized: false, // self-signed; what is checked here is the handshake, not trust
      ALPNProtocols: ["http/1.1"],
      session,
    });
    // TLS 1.3 tickets arrive after the handshake, with or before the response.
    socket.on("session", (s) => {
      ticket = s;
    });
    socket.setTimeout(5000, () => socket.destroy(new Error("TLS probe timed out")));
    let info;
    socket.once("secureConnect", () => {
      info = {
        protocol: socket.getProtocol(),
        cipher: socket.getCipher()?.name,
        group: socket.getEphemeralKeyInfo()?.name,
        reused: socket.isSessionReused(),
      };
      socket.write("GET /1k HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    });
    let head = "";
    socket.on("data", (d) => {
      if (head.length < 64) head += d.toString("latin1");
    });
    socket.once("error", reject);
    socket.once("close", () => {
      if (!info) reject(new Error("TLS probe: closed before the handshake completed"));
      else resolve({ ...info, status: head.split(" ")[1], ticket });
    });
  });
}

/**
 * What the target on `port` negotiates with Node's client (protocol, cipher, key exchange
 * group) and whether a second connection offering the first one's session is resumed:
 * `TLSv1.3 TLS_AES_256_GCM_SHA384 X25519, resumes sessions`.
 */
export async function probeTls(port) {
  const first = await connectOnce(port);
  const second = first.ticket ? await connectOnce(port, first.ticket) : undefined;
  const resumes = second
    ? second.reused
      ? "resumes sessions"
      : "does not resume sessions"
    : "sends no session ticket";
  return `${first.protocol} ${first.cipher} ${first.group}, ${resumes} (status ${first.status})`;
}
