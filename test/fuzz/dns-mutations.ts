/**
 * What the DNS fuzzer does to an answer before it reaches the resolver, as fast-check
 * arbitraries: changes to the message (ID, question name/type/class, question count, QR bit,
 * rcode, owner names, injected records, TTLs) and to its bytes (bit flips, byte writes,
 * truncation, appended or inserted garbage, deleted ranges, wrong section counts, compression
 * pointers that loop or point forward or into the header, random bytes), plus how it is
 * delivered. And the wire-level facts the fuzzer's oracle needs: the question section as bytes,
 * and the records of an answer section in the resolver's canonical form.
 */
import type { Answer, DecodedPacket, Packet } from "dns-packet";
import dnsPacket from "dns-packet";
import fc from "fast-check";

/** A change to the decoded message, made before it is encoded. */
export type MessageMutation =
  | { kind: "id"; xor: number }
  | { kind: "qname"; to: "other-case" | "sibling" | "parent" | "child" | "root" | "similar" }
  | { kind: "qtype"; to: string }
  | { kind: "qclass"; to: "CH" | "HS" | "ANY" | "CS" }
  | { kind: "questions"; to: "none" | "twice" | "extra" }
  | { kind: "not-a-response" }
  | { kind: "rcode"; rcode: number }
  | { kind: "owner"; index: number; to: "sibling" | "other-case" | "parent" }
  | { kind: "inject"; owner: "question" | "sibling" | "other-case"; type: "A" | "AAAA" | "CNAME" | "SRV" }
  | { kind: "drop-answers" }
  | { kind: "ttl"; ttl: number };

/** A change to the encoded bytes. */
export type ByteMutation =
  | { kind: "flip"; pos: number; bit: number }
  | { kind: "byte"; pos: number; value: number }
  | { kind: "flag"; bit: number }
  | { kind: "truncate"; at: number }
  | { kind: "append"; bytes: Uint8Array }
  | { kind: "insert"; pos: number; bytes: Uint8Array }
  | { kind: "delete"; pos: number; length: number }
  | { kind: "count"; section: number; value: number }
  | { kind: "pointer"; at: "question" | "answer"; to: "self" | "forward" | "header" | "question" | "answer" }
  | { kind: "join-labels" }
  | { kind: "case-flip"; pos: number }
  | { kind: "random"; bytes: Uint8Array; keepId: boolean };

/** How the mutated answer and the real one are sent. */
export interface DeliveryPlan {
  /** The real (unmutated) answer: after the mutated one, before it, or not at all. */
  real: "after" | "before" | "none";
  /** Delay of the mutated answer, ms (some land after the resolver's 200 ms timeout). */
  mutatedDelayMs: number;
  /** UDP: the mutated answer comes from another source port. */
  spoof: boolean;
  /** The mutated answer is sent twice. */
  duplicate: boolean;
  /** TCP framing of the mutated answer. */
  lengthDelta: number;
  unframed: boolean;
  splitAt: number[];
  /** TCP: the server closes the connection after the mutated answer. */
  closeAfter: boolean;
}

/** Names a mutation can point at, for the case being run. */
export interface CaseNames {
  question: string;
  sibling: string;
  parent: string;
  child: string;
  otherCase: string;
}

const pos = fc.nat({ max: 4096 });
const bytes = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max });

export const messageMutation: fc.Arbitrary<MessageMutation> = fc.oneof(
  fc.record({ kind: fc.constant("id" as const), xor: fc.integer({ min: 1, max: 0xffff }) }),
  fc.record({
    kind: fc.constant("qname" as const),
    to: fc.constantFrom("other-case", "sibling", "parent", "child", "root", "similar" as const),
  }),
  fc.record({
    kind: fc.constant("qtype" as const),
    to: fc.constantFrom("A", "AAAA", "SRV", "CNAME", "TXT", "MX", "NS", "PTR", "ANY", "SOA", "OPT"),
  }),
  fc.record({ kind: fc.constant("qclass" as const), to: fc.constantFrom("CH", "HS", "ANY", "CS" as const) }),
  fc.record({
    kind: fc.constant("questions" as const),
    to: fc.constantFrom("none", "twice", "extra" as const),
  }),
  fc.record({ kind: fc.constant("not-a-response" as const) }),
  fc.record({ kind: fc.constant("rcode" as const), rcode: fc.integer({ min: 0, max: 15 }) }),
  fc.record({
    kind: fc.constant("owner" as const),
    index: fc.nat({ max: 8 }),
    to: fc.constantFrom("sibling", "other-case", "parent" as const),
  }),
  fc.record({
    kind: fc.constant("inject" as const),
    owner: fc.constantFrom("question", "sibling", "other-case" as const),
    type: fc.constantFrom("A", "AAAA", "CNAME", "SRV" as const),
  }),
  fc.record({ kind: fc.constant("drop-answers" as const) }),
  fc.record({
    kind: fc.constant("ttl" as const),
    ttl: fc.oneof(fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff), fc.nat()),
  }),
);

export const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant("flip" as const), pos, bit: fc.integer({ min: 0, max: 7 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("byte" as const),
      pos,
      value: fc.integer({ min: 0, max: 255 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("flag" as const), bit: fc.integer({ min: 0, max: 15 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: pos }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("append" as const), bytes: bytes(64) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("insert" as const), pos, bytes: bytes(16) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("delete" as const),
      pos,
      length: fc.integer({ min: 1, max: 16 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("count" as const),
      section: fc.integer({ min: 0, max: 3 }),
      value: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 0xffff })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("pointer" as const),
      at: fc.constantFrom("question", "answer" as const),
      to: fc.constantFrom("self", "forward", "header", "question", "answer" as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("join-labels" as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("case-flip" as const), pos }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("random" as const), bytes: bytes(600), keepId: fc.boolean() }),
  },
);

export const deliveryPlan: fc.Arbitrary<DeliveryPlan> = fc.record({
  real: fc.oneof(
    { weight: 16, arbitrary: fc.constant("after" as const) },
    { weight: 4, arbitrary: fc.constant("before" as const) },
    { weight: 1, arbitrary: fc.constant("none" as const) },
  ),
  mutatedDelayMs: fc.oneof(
    { weight: 16, arbitrary: fc.constant(0) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 20 }) },
    { weight: 1, arbitrary: fc.integer({ min: 150, max: 260 }) },
  ),
  spoof: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  duplicate: fc.oneof(
    { weight: 6, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  lengthDelta: fc.oneof(
    { weight: 20, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.integer({ min: -4, max: 4 }) },
    { weight: 1, arbitrary: fc.integer({ min: -0xffff, max: 0xffff }) },
  ),
  unframed: fc.oneof(
    { weight: 25, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  splitAt: fc.oneof(
    { weight: 4, arbitrary: fc.constant<never[]>([]) },
    { weight: 1, arbitrary: fc.array(fc.nat({ max: 600 }), { minLength: 1, maxLength: 3 }) },
  ),
  closeAfter: fc.oneof(
    { weight: 10, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
});

/** Lower case, no trailing dot (the resolver's canonical form of a name). */
export function canonical(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

function nameFor(names: CaseNames, to: string): string {
  switch (to) {
    case "other-case":
      return names.otherCase;
    case "sibling":
      return names.sibling;
    case "parent":
      return names.parent;
    case "child":
      return names.child;
    case "root":
      return ".";
    default:
      // One character off: "q.c12.fuzz.test" -> "r.c12.fuzz.test".
      return String.fromCharCode(names.question.charCodeAt(0) + 1) + names.question.slice(1);
  }
}

function injected(owner: string, type: "A" | "AAAA" | "CNAME" | "SRV"): Answer {
  const base = { name: owner, class: "IN" as const, ttl: 60 };
  switch (type) {
    case "A":
      return { ...base, type, data: "203.0.113.66" };
    case "AAAA":
      return { ...base, type, data: "2001:db8:bad::66" };
    case "CNAME":
      return { ...base, type, data: `injected.${owner === "." ? "test" : owner}` };
    default:
      return { ...base, type, data: { priority: 0, weight: 0, port: 6666, target: "injected.test" } };
  }
}

/** Apply message-level mutations to a copy of `packet`. */
export function mutateMessage(
  packet: Packet,
  mutations: readonly MessageMutation[],
  names: CaseNames,
): Packet {
  const out: Packet = {
    ...packet,
    questions: (packet.questions ?? []).map((q) => ({ ...q })),
    answers: [...(packet.answers ?? [])].map((a) => ({ ...a })) as Answer[],
  };
  for (const m of mutations) {
    const q = out.questions?.[0];
    switch (m.kind) {
      case "id":
        out.id = ((out.id ?? 0) ^ m.xor) & 0xffff;
        break;
      case "qname":
        if (q) q.name = nameFor(names, m.to);
        break;
      case "qtype":
        if (q) q.type = m.to as never;
        break;
      case "qclass":
        if (q) q.class = m.to;
        break;
      case "questions":
        if (m.to === "none") out.questions = [];
        else if (q && m.to === "twice") out.questions = [q, { ...q }];
        else if (q) out.questions = [q, { ...q, name: names.sibling }];
        break;
      case "not-a-response":
        out.type = "query";
        break;
      case "rcode":
        out.flags = ((out.flags ?? 0) & ~0xf) | m.rcode;
        break;
      case "owner": {
        const answers = out.answers ?? [];
        const rr = answers[m.index % Math.max(1, answers.length)];
        if (rr) rr.name = nameFor(names, m.to);
        break;
      }
      case "inject":
        out.answers = [...(out.answers ?? []), injected(nameFor(names, m.owner), m.type)];
        break;
      case "drop-answers":
        out.answers = [];
        break;
      case "ttl":
        for (const rr of out.answers ?? []) (rr as { ttl?: number }).ttl = m.ttl;
        break;
    }
  }
  return out;
}

/** Offset just past the uncompressed name at `offset`, or undefined (pointer, overrun). */
export function nameEnd(buf: Buffer, offset: number): number | undefined {
  let at = offset;
  for (;;) {
    const len = buf[at];
    if (len === undefined || (len & 0xc0) !== 0) return undefined;
    if (len === 0) return at + 1;
    at += 1 + len;
    if (at > buf.length) return undefined;
  }
}

/** Offset of the first answer record's owner name (after one question), or undefined. */
function firstAnswerOffset(buf: Buffer): number | undefined {
  const end = nameEnd(buf, 12);
  return end === undefined || end + 4 >= buf.length ? undefined : end + 4;
}

/** Replace the name at `at` by a 2-byte compression pointer to `target`. */
function pointerAt(buf: Buffer, at: number, target: number): Buffer {
  const end = nameEnd(buf, at) ?? Math.min(buf.length, at + 2);
  const pointer = Buffer.from([0xc0 | ((target >> 8) & 0x3f), target & 0xff]);
  return Buffer.concat([buf.subarray(0, at), pointer, buf.subarray(end)]);
}

/** Apply byte-level mutations in order. */
export function mutateBytes(input: Buffer, mutations: readonly ByteMutation[]): Buffer {
  let buf: Buffer = Buffer.from(input);
  for (const m of mutations) {
    const len = buf.length;
    switch (m.kind) {
      case "flip":
        if (len > 0) buf[m.pos % len] = (buf[m.pos % len] as number) ^ (1 << m.bit);
        break;
      case "byte":
        if (len > 0) buf[m.pos % len] = m.value;
        break;
      case "flag":
        if (len >= 4) buf.writeUInt16BE(buf.readUInt16BE(2) ^ (1 << m.bit), 2);
        break;
      case "truncate":
        buf = buf.subarray(0, m.at % (len + 1));
        break;
      case "append":
        buf = Buffer.concat([buf, m.bytes]);
        break;
      case "insert": {
        const at = m.pos % (len + 1);
        buf = Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
        break;
      }
      case "delete": {
        const at = m.pos % (len + 1);
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.length)]);
        break;
      }
      case "count":
        if (len >= 12) buf.writeUInt16BE(m.value, 4 + 2 * m.section);
        break;
      case "pointer": {
        const question = 12;
        const answer = firstAnswerOffset(buf);
        const at = m.at === "question" ? question : answer;
        if (at === undefined || at >= len) break;
        const target =
          m.to === "self"
            ? at
            : m.to === "forward"
              ? Math.min(0x3fff, at + 2 + (len - at) / 2)
              : m.to === "header"
                ? 0
                : m.to === "question"
                  ? question
                  : (answer ?? at);
        buf = pointerAt(buf, at, Math.floor(target));
        break;
      }
      case "join-labels": {
        // "q" "c12" "fuzz" "test" -> "q.c12" "fuzz" "test": one label holding a dot.
        const first = buf[12];
        if (first === undefined || first === 0 || (first & 0xc0) !== 0) break;
        const second = buf[13 + first];
        if (second === undefined || second === 0 || (second & 0xc0) !== 0) break;
        if (first + 1 + second > 63) break;
        buf[12] = first + 1 + second;
        buf[13 + first] = 0x2e;
        break;
      }
      case "case-flip": {
        // DNS 0x20: a letter of the question name in the other case (still the same name).
        const end = nameEnd(buf, 12);
        if (end === undefined) break;
        for (let i = 0; i < end - 12; i++) {
          const at = 12 + ((m.pos + i) % (end - 12));
          const c = buf[at] as number;
          if ((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) {
            buf[at] = c ^ 0x20;
            break;
          }
        }
        break;
      }
      case "random": {
        const out = Buffer.from(m.bytes);
        if (m.keepId && out.length >= 2 && len >= 2) buf.copy(out, 0, 0, 2);
        buf = out;
        break;
      }
    }
  }
  return buf;
}

/** The question section as the wire has it, for an exact comparison. */
interface WireQuestion {
  count: number;
  /** The name's bytes, letters lowered (DNS names compare case-insensitively, RFC 4343). */
  name: string;
  type: number;
  cls: number;
}

function wireQuestion(buf: Buffer): WireQuestion | undefined {
  if (buf.length < 12) return undefined;
  const end = nameEnd(buf, 12);
  if (end === undefined || end + 4 > buf.length) return undefined;
  const name = Buffer.from(buf.subarray(12, end));
  for (let i = 0; i < name.length; i++) {
    const c = name[i] as number;
    if (c >= 0x41 && c <= 0x5a) name[i] = c | 0x20;
  }
  return {
    count: buf.readUInt16BE(4),
    name: name.toString("hex"),
    type: buf.readUInt16BE(end),
    cls: buf.readUInt16BE(end + 2),
  };
}

/**
 * Whether `response` answers `query` exactly: a decodable response (QR set) with the query's
 * ID and one question whose name (label by label, case-insensitive), type and class are those
 * of the query (RFC 5452 §9.1). This is the oracle: a resolver may accept such a message and
 * no other.
 */
export function answersExactly(response: Buffer, query: Buffer): boolean {
  let decoded: DecodedPacket;
  try {
    decoded = dnsPacket.decode(response);
  } catch {
    return false;
  }
  if (decoded.type !== "response" || decoded.id !== query.readUInt16BE(0)) return false;
  const asked = wireQuestion(query);
  const answered = wireQuestion(response);
  return (
    asked !== undefined &&
    answered !== undefined &&
    answered.count === 1 &&
    answered.name === asked.name &&
    answered.type === asked.type &&
    answered.cls === asked.cls
  );
}

/** The answer section's A, AAAA, CNAME and SRV records as `TYPE name data` keys (the resolver's canonical form). */
export function answerKeys(response: Buffer): string[] {
  const decoded = dnsPacket.decode(response);
  const keys: string[] = [];
  for (const rr of decoded.answers ?? []) {
    const name = canonical(rr.name);
    if (rr.type === "A" || rr.type === "AAAA") keys.push(`${rr.type} ${name} ${rr.data}`);
    else if (rr.type === "CNAME") keys.push(`CNAME ${name} ${canonical(rr.data)}`);
    else if (rr.type === "SRV") {
      const { priority = 0, weight = 0, port, target } = rr.data;
      keys.push(`SRV ${name} ${priority} ${weight} ${port} ${canonical(target)}`);
    }
  }
  return keys;
}
