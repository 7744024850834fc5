/**
 * Fuzzing the DNS layer (issue 13, item 6): the resolver the master uses, over real UDP and TCP
 * sockets on loopback, against a server that answers every query with an answer built by
 * dns-packet for the question asked and then mutated (see dns-mutations.ts), followed (or
 * preceded, or not) by the real answer.
 *
 * The mutated answer is built from decoy data (addresses in 198.18.0.0/15 and 2001:db8::/32,
 * targets named `d.` / `evil`) that the real answer never holds, so a forged answer the
 * resolver wrongly takes shows up in what it returns. Three modes: UDP, TCP (a tcp://
 * nameserver) and UDP answered with TC so the resolver retries over TCP.
 *
 * Properties, for every case:
 * - no uncaught exception or unhandled rejection in the process;
 * - the lookup settles (resolves, or rejects with a DnsError) within what the resolver's
 *   timeouts allow for the names it asked (attempts x (UDP + TCP) x timeout, plus slack);
 * - never an answer accepted for a question not asked: every record returned (and every CNAME
 *   followed) is one that a message answering exactly a query the resolver sent contained
 *   (same ID, one question with the same name, type and class, from the nameserver's own
 *   address and port), that is the real answer, or a mutated one that still answers exactly;
 * - the resolver recovers: a clean lookup right after the case gets the right answer.
 */

import type { Answer, DecodedPacket, Packet } from "dns-packet";
import dnsPacket from "dns-packet";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type DnsAnswer, DnsError, type QueryType, Resolver } from "../../src/dns/index.js";
import { type Delivery, FuzzDnsServer, type ReceivedQuery } from "./dns-fuzz-server.js";
import {
  answerKeys,
  answersExactly,
  type ByteMutation,
  byteMutation,
  type CaseNames,
  canonical,
  type DeliveryPlan,
  deliveryPlan,
  type MessageMutation,
  messageMutation,
  mutateBytes,
  mutateMessage,
} from "./dns-mutations.js";
import { FUZZ_PATH, FUZZ_SECONDS, fuzzTestTimeout, ProcessErrorWatch, runFuzz } from "./fuzz-options.js";

/** Per attempt, ms: short, so that many cases run. */
const TIMEOUT_MS = 200;
const ATTEMPTS = 2;
/** Scheduling slack on a busy machine, added to the timeout-derived bound, ms. */
const SLACK_MS = 1500;
/** A lookup that has not settled by then never will: the case fails. */
const HARD_DEADLINE_MS = 15_000;

type Mode = "udp" | "tcp" | "tc";
type Shape = "direct" | "cname-inline" | "cname-follow" | "nxdomain" | "nodata";

interface DnsCase {
  mode: Mode;
  qtype: QueryType;
  shape: Shape;
  /** Records in the RRset (1..3) and a number the data is derived from. */
  count: number;
  dataSeed: number;
  message: MessageMutation[];
  bytes: ByteMutation[];
  delivery: DeliveryPlan;
}

const dnsCase: fc.Arbitrary<DnsCase> = fc.record({
  mode: fc.constantFrom("udp", "tcp", "tc" as const),
  qtype: fc.constantFrom("A", "AAAA", "SRV", "CNAME" as const),
  shape: fc.constantFrom("direct", "cname-inline", "cname-follow", "nxdomain", "nodata" as const),
  count: fc.integer({ min: 1, max: 3 }),
  dataSeed: fc.integer({ min: 0, max: 0xffff }),
  message: fc.array(messageMutation, { maxLength: 3 }),
  bytes: fc.oneof(
    { weight: 1, arbitrary: fc.constant<never[]>([]) },
    { weight: 3, arbitrary: fc.array(byteMutation, { minLength: 1, maxLength: 4 }) },
  ),
  delivery: deliveryPlan,
});

/** The names one case uses, unique to the case so the resolver's cache never answers for it. */
interface Zone extends CaseNames {
  target: string;
  decoyTarget: string;
  clean: string;
  cleanAddress: string;
}

function zoneFor(token: string, n: number): Zone {
  const parent = `${token}.fuzz.test`;
  return {
    question: `q.${parent}`,
    sibling: `t.${parent}`,
    target: `t.${parent}`,
    decoyTarget: `d.${parent}`,
    parent,
    child: `x.q.${parent}`,
    otherCase: `q.c${Math.max(0, n - 1)}.fuzz.test`,
    clean: `ok.${parent}`,
    cleanAddress: `127.0.${(n >> 8) & 0xff}.${n & 0xff}`,
  };
}

function rrset(c: DnsCase, owner: string, decoy: boolean, zone: Zone): Answer[] {
  const base = { name: owner, class: "IN" as const, ttl: 60 };
  const hi = (c.dataSeed >> 8) & 0xff;
  const lo = c.dataSeed & 0xff;
  const out: Answer[] = [];
  for (let i = 0; i < c.count; i++) {
    if (c.qtype === "A")
      out.push({ ...base, type: "A", data: decoy ? `198.18.${lo}.${i + 1}` : `10.${hi}.${lo}.${i + 1}` });
    else if (c.qtype === "AAAA")
      out.push({
        ...base,
        type: "AAAA",
        data: `${decoy ? "2001:db8" : "fd00"}::${c.dataSeed.toString(16)}:${i + 1}`,
      });
    else if (c.qtype === "SRV") {
      const target = `${decoy ? "evil" : "srv"}${i}.${zone.parent}`;
      out.push({
        ...base,
        type: "SRV",
        data: { priority: i, weight: 1, port: (decoy ? 6000 : 1000) + i, target },
      });
    }
  }
  if (c.qtype === "CNAME") out.push({ ...base, type: "CNAME", data: decoy ? zone.decoyTarget : zone.target });
  return out;
}

interface Content {
  rcode: number;
  answers: Answer[];
  negative: boolean;
}

const NOERROR = 0;
const NXDOMAIN = 3;

/** What the zone holds for a question, real or decoy. */
function content(c: DnsCase, zone: Zone, name: string, type: string, decoy: boolean): Content | undefined {
  const cname = (target: string): Answer => ({
    type: "CNAME",
    name: zone.question,
    class: "IN",
    ttl: 60,
    data: target,
  });
  if (name === zone.question && type === c.qtype) {
    const target = decoy ? zone.decoyTarget : zone.target;
    switch (c.shape) {
      case "direct":
        return { rcode: NOERROR, answers: rrset(c, name, decoy, zone), negative: false };
      case "cname-inline":
        if (c.qtype === "CNAME") return { rcode: NOERROR, answers: [cname(target)], negative: false };
        return {
          rcode: NOERROR,
          answers: [cname(target), ...rrset(c, target, decoy, zone)],
          negative: false,
        };
      case "cname-follow":
        return { rcode: NOERROR, answers: [cname(target)], negative: false };
      case "nxdomain":
        return decoy
          ? { rcode: NOERROR, answers: rrset(c, name, true, zone), negative: false }
          : { rcode: NXDOMAIN, answers: [], negative: true };
      case "nodata":
        return decoy
          ? { rcode: NOERROR, answers: rrset(c, name, true, zone), negative: false }
          : { rcode: NOERROR, answers: [], negative: true };
    }
  }
  if ((name === zone.target || name === zone.decoyTarget) && type === c.qtype) {
    return {
      rcode: NOERROR,
      answers: rrset(c, name, decoy || name === zone.decoyTarget, zone),
      negative: false,
    };
  }
  if (name === zone.clean && type === "A") {
    return {
      rcode: NOERROR,
      answers: [{ type: "A", name, class: "IN", ttl: 60, data: zone.cleanAddress }],
      negative: false,
    };
  }
  return undefined;
}

/** The response packet to `query` with `body`: QR, AA, RA, RD copied, the question echoed, OPT if asked. */
function responsePacket(query: DecodedPacket, body: Content, _zone: Zone): Packet {
  const soa: Answer = {
    type: "SOA",
    name: "fuzz.test",
    class: "IN",
    ttl: 30,
    data: {
      mname: "ns.fuzz.test",
      rname: "hostmaster.fuzz.test",
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: 30,
    },
  };
  const hasOpt = query.additionals?.some((rr) => rr.type === "OPT") ?? false;
  return {
    type: "response",
    id: query.id ?? 0,
    flags:
      ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
      dnsPacket.AUTHORITATIVE_ANSWER |
      dnsPacket.RECURSION_AVAILABLE |
      body.rcode,
    questions: query.questions ?? [],
    answers: body.answers,
    authorities: body.negative ? [soa] : [],
    additionals: hasOpt
      ? [
          {
            type: "OPT",
            name: ".",
            udpPayloadSize: 1232,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0,
            flag_do: false,
            options: [],
          },
        ]
      : [],
  };
}

const stats = {
  resolvedReal: 0,
  resolvedMutated: 0,
  rejected: new Map<string, number>(),
  encodeFallbacks: 0,
};
let server: FuzzDnsServer;
const watch = new ProcessErrorWatch();
let caseNumber = 0;

/** The server's answers to `query` during the fuzzed lookup (`fuzz`) or the clean one. */
function respond(c: DnsCase, zone: Zone, query: ReceivedQuery, fuzz: boolean): Delivery[] {
  const question = query.packet.questions?.[0];
  if (!question) return [];
  const name = canonical(question.name);
  const real = content(c, zone, name, question.type, false);
  // A name outside the case (a mutated CNAME target): NXDOMAIN without SOA, so it is not cached.
  const body = real ?? { rcode: NXDOMAIN, answers: [], negative: false };
  const realPacket = responsePacket(query.packet, body, zone);
  const realBytes = dnsPacket.encode(realPacket);
  const fuzzed = fuzz && real !== undefined && name !== zone.clean;
  if (query.transport === "udp" && fuzzed && c.mode === "tc") {
    // RFC 7766 §5: a truncated UDP answer is asked again over TCP, where the mutation waits.
    return [
      {
        bytes: dnsPacket.encode({
          ...realPacket,
          flags: (realPacket.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
          answers: [],
          authorities: [],
        }),
      },
    ];
  }
  if (!fuzzed || (query.transport === "tcp" && c.mode === "udp")) return [{ bytes: realBytes }];

  const decoy = responsePacket(query.packet, content(c, zone, name, question.type, true) ?? body, zone);
  let encoded: Buffer;
  try {
    encoded = dnsPacket.encode(mutateMessage(decoy, c.message, zone));
  } catch {
    stats.encodeFallbacks++;
    encoded = dnsPacket.encode(decoy);
  }
  const d = c.delivery;
  const mutated: Delivery = {
    bytes: mutateBytes(encoded, c.bytes),
    delayMs: d.mutatedDelayMs + (d.real === "before" ? 1 : 0),
    spoof: d.spoof,
    lengthDelta: d.lengthDelta,
    unframed: d.unframed,
    splitAt: d.splitAt,
    closeAfter: d.closeAfter,
  };
  const out: Delivery[] = [mutated];
  if (d.duplicate) out.push({ ...mutated, closeAfter: false });
  if (d.real === "after") out.push({ bytes: realBytes, delayMs: d.mutatedDelayMs + 3 });
  if (d.real === "before") out.unshift({ bytes: realBytes });
  return out;
}

/** Every record a correct resolver may return for this case: those of the messages that answer exactly a query it sent. */
function acceptable(log: ReturnType<FuzzDnsServer["takeLog"]>): Set<string> {
  const allowed = new Set<string>();
  for (const message of log.parsed) {
    if (message.spoofed) continue;
    const matches = log.queries.some(
      (q) => q.channel === message.channel && answersExactly(message.bytes, q.raw),
    );
    if (matches) for (const key of answerKeys(message.bytes)) allowed.add(key);
  }
  return allowed;
}

function recordKey(r: DnsAnswer["records"][number]): string {
  if (r.type === "A" || r.type === "AAAA") return `${r.type} ${r.name} ${r.address}`;
  if (r.type === "CNAME") return `CNAME ${r.name} ${r.target}`;
  const srv = r as Extract<DnsAnswer["records"][number], { type: "SRV" }>;
  return `SRV ${srv.name} ${srv.priority} ${srv.weight} ${srv.port} ${srv.target}`;
}

type Outcome = { ok: true; answer: DnsAnswer; ms: number } | { ok: false; error: unknown; ms: number };

async function lookup(resolver: Resolver, name: string, type: QueryType): Promise<Outcome> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`lookup ${name} ${type} did not settle within ${HARD_DEADLINE_MS} ms`)),
      HARD_DEADLINE_MS,
    );
  });
  try {
    const answer = await Promise.race([resolver.resolve(name, type), deadline]);
    return { ok: true, answer, ms: performance.now() - started };
  } catch (error) {
    if (error instanceof Error && error.message.includes("did not settle")) throw error;
    return { ok: false, error, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** Longest a lookup may take: per name asked, every attempt over UDP and then TCP times out. */
function boundMs(names: number): number {
  return Math.max(1, names) * ATTEMPTS * 2 * TIMEOUT_MS + SLACK_MS;
}

const DNS_ERROR_CODES = new Set([
  "NXDOMAIN",
  "NODATA",
  "SERVFAIL",
  "REFUSED",
  "TIMEOUT",
  "MALFORMED",
  "NETWORK",
  "CNAME_LOOP",
  "BAD_NAME",
]);

function checkOutcome(
  outcome: Outcome,
  names: number,
  allowed: Set<string>,
  name: string,
  type: QueryType,
): "real" | "mutated" | string {
  expect(outcome.ms, "the lookup settles within the resolver's timeouts").toBeLessThanOrEqual(boundMs(names));
  if (!outcome.ok) {
    const err = outcome.error;
    if (!(err instanceof DnsError))
      throw new Error(
        `rejected with something else than a DnsError: ${err instanceof Error ? err.stack : String(err)}`,
      );
    expect(DNS_ERROR_CODES.has(err.code), `error code ${err.code}`).toBe(true);
    expect(err.message.length).toBeGreaterThan(0);
    return err.code;
  }
  const { answer } = outcome;
  expect(answer.name).toBe(name);
  expect(answer.type).toBe(type);
  expect(answer.records.length).toBeGreaterThan(0);
  const returned = [...answer.records, ...answer.cnames].map(recordKey);
  const forged = returned.filter((key) => !allowed.has(key));
  if (forged.length > 0) {
    throw new Error(
      `accepted records no exact answer held: ${forged.join(", ")}\n  returned: ${returned.join(", ")}\n  allowed: ${[...allowed].join(", ")}`,
    );
  }
  for (const r of answer.records) expect(r.type).toBe(type);
  return returned.some(
    (key) =>
      key.includes("198.18.") || key.includes("2001:db8") || key.includes("evil") || key.includes(" d."),
  )
    ? "mutated"
    : "real";
}

async function fuzzCase(c: DnsCase): Promise<void> {
  const mark = watch.errors.length;
  const n = ++caseNumber;
  const zone = zoneFor(`c${n}`, n);
  // A resolver of its own per case, so a case never depends on the ones before it (and
  // fast-check's replay and shrinking reproduce it exactly).
  const scheme = c.mode === "tcp" ? "tcp" : "udp";
  const resolver = new Resolver({
    nameservers: [`${scheme}://127.0.0.1:${server.port}`],
    hostsFile: false,
    timeoutMs: TIMEOUT_MS,
    attempts: ATTEMPTS,
  });
  try {
    await runCase(c, zone, resolver);
  } finally {
    await resolver.close();
  }
  await new Promise((resolve) => setImmediate(resolve));
  watch.check(mark);
}

async function runCase(c: DnsCase, zone: Zone, resolver: Resolver): Promise<void> {
  server.takeLog();
  server.responder = (query) => respond(c, zone, query, true);
  const outcome = await lookup(resolver, zone.question, c.qtype);
  await server.flushed();
  const log = server.takeLog();
  const names = new Set(log.queries.map((q) => canonical(q.packet.questions?.[0]?.name ?? ""))).size;
  const kind = checkOutcome(outcome, names, acceptable(log), zone.question, c.qtype);
  if (kind === "real") stats.resolvedReal++;
  else if (kind === "mutated") stats.resolvedMutated++;
  else stats.rejected.set(kind, (stats.rejected.get(kind) ?? 0) + 1);

  // Recovery: whatever the case did to the resolver's sockets, a clean lookup now succeeds.
  server.responder = (query) => respond(c, zone, query, false);
  const clean = await lookup(resolver, zone.clean, "A");
  await server.flushed();
  server.takeLog();
  if (!clean.ok) {
    throw new Error(
      `the resolver did not recover: a clean lookup after the case failed: ${String(clean.error)}`,
    );
  }
  expect(clean.answer.records.map(recordKey)).toEqual([`A ${zone.clean} ${zone.cleanAddress}`]);
}

beforeAll(async () => {
  watch.install();
  server = await FuzzDnsServer.start();
});

afterAll(async () => {
  await server?.close();
  watch.uninstall();
});

it(
  "mutated and random answers: no crash, every lookup settles, no forged answer accepted, the resolver recovers",
  async () => {
    await runFuzz(dnsCase, fuzzCase, {
      name: "dns",
      minCasesPerSecond: 5,
      summary: () =>
        `resolved ${stats.resolvedReal} with the real answer, ${stats.resolvedMutated} with a mutated one that still answered exactly; rejected ${[...stats.rejected].map(([code, count]) => `${code} ${count}`).join(", ")}`,
    });
    watch.check();
    if (FUZZ_SECONDS >= 10 && FUZZ_PATH === undefined) {
      // A generator that only ever produced failures (or only successes) would prove little.
      expect(stats.resolvedReal).toBeGreaterThan(0);
      expect([...stats.rejected.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    }
  },
  fuzzTestTimeout(),
);
