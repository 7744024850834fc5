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

/** Whether a response answers exactly this question (RFC 5452 §9.1: ID, name and type must match). */
export function answersQuestion(response: Response, question: Question): boolean {
  const q = response.questions?.[0];
  return (
    q !== undefined &&
    response.questions?.length === 1 &&
    q.type === question.type &&
    canonicalName(q.name) === canonicalName(question.name)
  );
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
