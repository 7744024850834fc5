/**
 * Self-signed certificates for tests, generated in memory with selfsigned (no files on disk).
 * One certificate serves as the server's certificate and as the CA its clients trust
 * (`ca: cert`); with `extKeyUsage` clientAuth as well it also works as an mTLS client certificate.
 */
import { isIP } from "node:net";
import { generate } from "selfsigned";

/** Subject alternative names every certificate carries unless `altNames` replaces them. */
export const DEFAULT_ALT_NAMES: readonly string[] = ["localhost", "dns.test", "127.0.0.1", "::1"];

/** Options for `generateCert`. */
export interface CertOptions {
  /** Subject common name; default `localhost`. Also added as a DNS SAN when not already listed. */
  commonName?: string;
  /** DNS names and IP addresses (IPv4 or IPv6) for the subjectAltName; default `DEFAULT_ALT_NAMES`. */
  altNames?: readonly string[];
  /** Validity in days from one minute ago (clock skew); default 30. */
  days?: number;
}

/** A PEM private key and its PEM certificate. */
export interface CertPair {
  key: string;
  cert: string;
}

/**
 * Generate a self-signed P-256 certificate with SANs DNS:localhost, DNS:dns.test, IP:127.0.0.1 and
 * IP:::1 (by default), usable as a TLS server certificate, as a client certificate (mTLS) and as
 * the `ca` a peer trusts. EC keys keep generation to a few milliseconds per certificate.
 */
export async function generateCert(opts: CertOptions = {}): Promise<CertPair> {
  const commonName = opts.commonName ?? "localhost";
  const names = [...(opts.altNames ?? DEFAULT_ALT_NAMES)];
  if (!names.includes(commonName)) names.push(commonName);
  // selfsigned's SAN entries: type 2 = dNSName, type 7 = iPAddress (RFC 5280 §4.2.1.6).
  const altNames = names.map((name) =>
    isIP(name) === 0 ? { type: 2 as const, value: name } : { type: 7 as const, ip: name },
  );
  const notBeforeDate = new Date(Date.now() - 60_000);
  const notAfterDate = new Date(notBeforeDate.getTime() + (opts.days ?? 30) * 86_400_000);
  const pems = await generate([{ name: "commonName", value: commonName }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate,
    notAfterDate,
    extensions: [
      // A self-signed end-entity certificate: OpenSSL accepts it as its own trust anchor, so no
      // separate CA is needed for `ca: cert`.
      { name: "basicConstraints", cA: false, critical: true },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", serverAuth: true, clientAuth: true },
      { name: "subjectAltName", altNames },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}
