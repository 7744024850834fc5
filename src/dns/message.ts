/**
 * DNS messages: building queries and reading answers with `dns-packet` (the wire codec).
 * Transports move bytes; this module decides what a response means.
 */
import { randomInt } from "node:crypto";
import * as packet from "dns-packet";
import { DnsError } from "./errors.js";
import type { DnsRecord, Question } from "./types.js";

/** RFC 6891 EDNS0 payload size; 1232 avoids IP fragmentation (DNS flag day 2020). */
export const EDNS_PAYLOAD_SIZE = 1232;

/** A decoded response, with the rcode dns-packet adds but does not type. */
export type Response = packet.DecodedPacket & { rcode?: string };

/** A random 16-bit query ID (RFC 5452: IDs must not be predictable). */
export function randomId(): number {
  return randomInt(0, 0x10000);
}

/** Encode a recursive query with an EDNS0 OPT record. */
export function encodeQuery(question: Question, id: number): Buffer {
  return packet.encode({
    type: "query",
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ type: question.type, name: question.name, class: "IN" }],
    additionals: [
      {
        type: "OPT",
        name: ".",
        udpPayloadSize: EDNS_PAYLOAD_SIZE,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ],
  });
}

/** Decode a response; undecodable bytes are a MALFORMED error. */
export function decodeResponse(bytes: Buffer, server: string): Response {
  try {
    const decoded = packet.decode(bytes) as Response;
    if (decoded.type !== "response") throw new Error("not a response (QR bit clear)");
    return decoded;
  } catch (err) {
    throw new DnsError("MALFORMED", `${server}: undecodable answer (${(err as Error).message})`, {
      server,
      cause: err,
    });
  }
}

/** Lower case, no trailing dot: the form names are compared and cached in. */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/** Class IN (RFC 1035 §3.2.4), the only one we ask. */
const CLASS_IN = 1;
const DOT = 0x2e;

/**
 * Whether the first question on the wire is `name` (canonical), label by label, ASCII letters
 * in either case (RFC 4343), with class IN. The decoded name cannot tell: one label `a.b`
 * decodes like the two labels `a`, `b`. A compressed or overrunning name is not ours.
 */
function wireQuestionIs(bytes: Buffer, name: string): boolean {
  let at = 12;
  let i = 0;
  for (;;) {
    const length = bytes[at];
    if (length === undefined || (length & 0xc0) !== 0) return false;
    at++;
    if (length === 0) break;
    if (at + length > bytes.length) return false;
    if (i > 0 && name.charCodeAt(i++) !== DOT) return false;
    for (let k = 0; k < length; k++) {
      let c = bytes[at + k] as number;
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      if (c === DOT || c !== name.charCodeAt(i + k)) return false;
    }
    i += length;
    at += length;
  }
  return i === name.length && at + 4 <= bytes.length && bytes.readUInt16BE(at + 2) === CLASS_IN;
}

/**
 * Whether a response answers exactly this question (RFC 5452 §9.1: ID, name, type and class
 * must match). `bytes` is the response as received, for the name and class on the wire.
 */
export function answersQuestion(response: Response, question: Question, bytes: Buffer): boolean {
  const q = response.questions?.[0];
  if (q === undefined || response.questions?.length !== 1 || q.type !== question.type) return false;
  const name = canonicalName(question.name);
  return canonicalName(q.name) === name && wireQuestionIs(bytes, name);
}

/** The records of the answer section we understand (A, AAAA, SRV, CNAME), in canonical form. */
export function answerRecords(response: Response): DnsRecord[] {
  const out: DnsRecord[] = [];
  for (const rr of response.answers ?? []) {
    if (rr.type === "OPT") continue;
    const name = canonicalName(rr.name);
    const ttl = rr.ttl ?? 0;
    if (rr.type === "A" || rr.type === "AAAA") out.push({ type: rr.type, name, ttl, address: rr.data });
    else if (rr.type === "CNAME") out.push({ type: "CNAME", name, ttl, target: canonicalName(rr.data) });
    else if (rr.type === "SRV") {
      const { priority = 0, weight = 0, port, target } = rr.data;
      out.push({ type: "SRV", name, ttl, priority, weight, port, target: canonicalName(target) });
    }
  }
  return out;
}

/**
 * RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA minimum) of the SOA in the
 * authority section. Undefined without an SOA: then it must not be cached.
 */
export function negativeTtl(response: Response): number | undefined {
  for (const rr of response.authorities ?? []) {
    if (rr.type === "SOA") return Math.min(rr.ttl ?? 0, rr.data.minimum ?? 0);
  }
  return undefined;
}
