/**
 * The certificates of a config, read and checked by the master (as nginx's master reads
 * them, before any worker runs): every file readable and PEM, each key belonging to its
 * certificate, expiry warned about, `tls: auto` certificates made or reused. Workers get the
 * PEM text over IPC with their config, so a reload that cannot read a certificate fails in
 * the master and the running generation keeps serving.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readPemFile } from "../config/checks.js";
import type { Config, ConfigIssue, Server, SourcePosition } from "../config/types.js";
import { autoCertificate } from "./auto.js";

/** One certificate of a server, as PEM text. */
export interface CertificatePem {
  /** The certificate chain (CERTIFICATE blocks only). */
  cert: string;
  key: string;
  /** DNS names it is valid for, lower case (`*.example.com` for a wildcard). */
  names: string[];
}

/** Certificates by server, in `config.servers` order; null for a server without `tls`. */
export type TlsMaterial = Array<CertificatePem[] | null>;

/** A `tls: auto` certificate in use, for the master's one log line about it. */
export interface AutoCertificateNote {
  server: string;
  file: string;
  created: boolean;
}

/** What `prepareTls` found. */
export interface TlsPreparation {
  material: TlsMaterial;
  issues: ConfigIssue[];
  auto: AutoCertificateNote[];
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const KEY_BLOCK = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?)PRIVATE KEY-----[\s\S]+?-----END \1PRIVATE KEY-----/;
/** Warn this long before a certificate expires. */
const EXPIRY_WARNING_MS = 14 * 86_400_000;

function issueAt(position: SourcePosition, message: string, severity: ConfigIssue["severity"] = "error") {
  return { file: position.file, line: position.line, col: position.col, message, severity };
}

/** DNS names of a certificate: its subjectAltName DNS entries, else its common name. */
export function certificateNames(x509: X509Certificate): string[] {
  const names = (x509.subjectAltName ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith("DNS:"))
    .map((entry) => entry.slice(4).toLowerCase());
  if (names.length > 0) return names;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/**
 * Parse and check one certificate and key: the problems come back as text (the caller adds
 * the position), plus warnings for expiry.
 */
export function checkPair(
  certText: string,
  keyText: string,
  where: { cert: string; key: string },
  now = Date.now(),
): { pem?: CertificatePem; errors: string[]; warnings: string[] } {
  const blocks = certText.match(CERT_BLOCK);
  if (!blocks)
    return {
      errors: [`'${where.cert}' has no certificate: no '-----BEGIN CERTIFICATE-----' block`],
      warnings: [],
    };
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(blocks[0]);
  } catch (error) {
    return {
      errors: [`'${where.cert}': the certificate cannot be parsed: ${(error as Error).message}`],
      warnings: [],
    };
  }
  const keyBlock = KEY_BLOCK.exec(keyText)?.[0];
  if (!keyBlock) {
    const hint = where.key === where.cert ? ": give the key file with 'key:'" : "";
    return {
      errors: [`'${where.key}' has no private key: no '-----BEGIN ... PRIVATE KEY-----' block${hint}`],
      warnings: [],
    };
  }
  if (keyBlock.includes("ENCRYPTED")) {
    return {
      errors: [
        `'${where.key}': the private key is encrypted; Portico needs it unencrypted (openssl pkey -in KEY -out KEY.plain)`,
      ],
      warnings: [],
    };
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(keyBlock));
  } catch (error) {
    return {
      errors: [`'${where.key}': the private key cannot be parsed: ${(error as Error).message}`],
      warnings: [],
    };
  }
  if (!matches) {
    return {
      errors: [
        `the private key in '${where.key}' does not belong to the certificate in '${where.cert}' (${x509.subject.replace(/\n/g, ", ")})`,
      ],
      warnings: [],
    };
  }
  const warnings: string[] = [];
  const notAfter = Date.parse(x509.validTo);
  const notBefore = Date.parse(x509.validFrom);
  if (notAfter <= now) {
    warnings.push(
      `the certificate in '${where.cert}' expired on ${x509.validTo}: clients will refuse it; renew it`,
    );
  } else if (notAfter - now < EXPIRY_WARNING_MS) {
    warnings.push(`the certificate in '${where.cert}' expires on ${x509.validTo}: renew it soon`);
  }
  if (notBefore > now) {
    warnings.push(
      `the certificate in '${where.cert}' is not valid before ${x509.validFrom}: clients will refuse it until then`,
    );
  }
  return {
    pem: { cert: blocks.join("\n"), key: keyBlock, names: certificateNames(x509) },
    errors: [],
    warnings,
  };
}

/** The names a `tls: auto` certificate is made for: the server's names, localhost and loopback. */
function autoNames(server: Server): string[] {
  const names = [...server.exactNames, ...server.wildcardNames.map((suffix) => `*${suffix}`)];
  return [...new Set([...names, "localhost", "127.0.0.1", "::1"])];
}

function describeServer(server: Server, index: number): string {
  const name = server.exactNames[0] ?? (server.wildcardNames[0] ? `*${server.wildcardNames[0]}` : undefined);
  return name ? `${name} (servers[${index}])` : `servers[${index}]`;
}

/**
 * Read and check every server's certificates. With `generate`, a missing or expiring
 * `tls: auto` certificate is made and saved in `config.stateDir`; without it (`portico
 * check`), a missing one is not an issue (it would be made on start).
 */
export async function prepareTls(config: Config, opts: { generate: boolean }): Promise<TlsPreparation> {
  const issues: ConfigIssue[] = [];
  const auto: AutoCertificateNote[] = [];
  const material: TlsMaterial = [];
  for (const [index, server] of config.servers.entries()) {
    const tls = server.tls;
    if (!tls) {
      material.push(null);
      continue;
    }
    if (tls.auto) {
      const made = await autoCertificate(config.stateDir, autoNames(server), opts.generate);
      if ("error" in made) issues.push(issueAt(tls.position, made.error));
      else if (made.pem) {
        material.push([made.pem]);
        auto.push({ server: describeServer(server, index), file: made.file, created: made.created });
        continue;
      }
      material.push([]);
      continue;
    }
    const pems: CertificatePem[] = [];
    for (const files of tls.certificates) {
      const cert = readPemFile("cert", files.cert);
      if ("error" in cert) {
        issues.push(issueAt(files.position, cert.error));
        continue;
      }
      const key = files.key === undefined ? cert : readPemFile("key", files.key);
      if ("error" in key) {
        issues.push(issueAt(files.position, key.error));
        continue;
      }
      const checked = checkPair(cert.text, key.text, { cert: files.cert, key: files.key ?? files.cert });
      for (const error of checked.errors) issues.push(issueAt(files.position, error));
      for (const warning of checked.warnings) issues.push(issueAt(files.position, warning, "warning"));
      if (checked.pem) pems.push(checked.pem);
    }
    material.push(pems);
  }
  return { material, issues, auto };
}
