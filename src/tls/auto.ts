/**
 * `tls: auto`: a self-signed certificate for development, made with `selfsigned` for a
 * server's names plus localhost and the loopback addresses, saved (key and certificate in
 * one file, mode 0600) in the state directory and reused on every start and reload until it
 * nears its end. Browsers and curl will not trust it (`curl -k`): it is never for production.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { generate } from "selfsigned";
import { type CertificatePem, checkPair } from "./material.js";

/** Validity of a made certificate. */
const VALID_DAYS = 90;
/** A saved certificate with less than this left is made again. */
const RENEW_BEFORE_MS = 7 * 86_400_000;

/** The saved file for a set of names: one per distinct set, so servers do not share one by accident. */
function fileFor(stateDir: string, names: readonly string[]): string {
  const hash = createHash("sha256")
    .update([...names].sort().join("\n"))
    .digest("hex")
    .slice(0, 12);
  return join(stateDir, `tls-auto-${hash}.pem`);
}

/** The saved certificate at `file`, when it is readable, covers `names` and is not near its end. */
function reusable(file: string, names: readonly string[]): CertificatePem | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const checked = checkPair(text, text, { cert: file, key: file }, Date.now() + RENEW_BEFORE_MS);
  if (!checked.pem || checked.warnings.length > 0) return undefined;
  const dnsNames = names.filter((n) => isIP(n) === 0);
  return dnsNames.every((n) => checked.pem?.names.includes(n)) ? checked.pem : undefined;
}

/**
 * The `tls: auto` certificate for `names`: reused from `stateDir`, or made and saved there
 * when `create` is set. `pem` is undefined when there is none and `create` is not set.
 */
export async function autoCertificate(
  stateDir: string,
  names: readonly string[],
  create: boolean,
): Promise<{ pem?: CertificatePem; file: string; created: boolean } | { error: string }> {
  const file = fileFor(stateDir, names);
  const existing = reusable(file, names);
  if (existing) return { pem: existing, file, created: false };
  if (!create) return { file, created: false };
  // selfsigned's SAN entries: type 2 = dNSName, type 7 = iPAddress (RFC 5280 §4.2.1.6).
  const altNames = names.map((name) =>
    isIP(name) === 0 ? { type: 2 as const, value: name } : { type: 7 as const, ip: name },
  );
  const notBeforeDate = new Date(Date.now() - 60_000);
  const pems = await generate([{ name: "commonName", value: names[0] ?? "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + VALID_DAYS * 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames },
    ],
  });
  const text = `${pems.private.trim()}\n${pems.cert.trim()}\n`;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return {
      error: `tls: auto cannot save its development certificate in '${stateDir}' (${reason}): set state_dir to a directory Portico may write to`,
    };
  }
  const made = checkPair(text, text, { cert: file, key: file });
  if (!made.pem) return { error: `tls: auto made an unusable certificate: ${made.errors.join("; ")}` };
  return { pem: made.pem, file, created: true };
}
