import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type AccessEntry, createAccessLogger, flushLogFiles } from "../../src/observability/logger.js";

const dir = mkdtempSync(join(os.tmpdir(), "portico-access-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function entry(over: Partial<AccessEntry> = {}): AccessEntry {
  return {
    requestId: "0123abcd-0000-0000-0000-000000000001",
    remote: "127.0.0.1",
    method: "GET",
    host: "example.com",
    path: "/",
    status: 200,
    bytes: 1024,
    ms: 1.25,
    ...over,
  };
}

function lines(file: string): Array<Record<string, unknown>> {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe("access log", () => {
  it("writes one JSON line per request, with what the client sent escaped", async () => {
    const file = join(dir, "escape.log");
    const log = createAccessLogger(file);
    const nasty = 'a"b\\c\u0001d\u00e9\u2028\ud83d\ude00';
    log.write(
      entry({
        requestId: 'client-"id"\\',
        host: nasty,
        path: `/p?q=${nasty}`,
        upstream: "10.0.0.1:8080",
        upstreamMs: 0.5,
      }),
    );
    log.write(entry({ status: 502, error: "PRT_ERR_UPSTREAM_CONNECT", reason: 'peer "x" refused' }));
    await flushLogFiles();
    const [first, second] = lines(file);
    expect(first).toMatchObject({
      level: 30,
      pid: process.pid,
      requestId: 'client-"id"\\',
      remote: "127.0.0.1",
      method: "GET",
      host: nasty,
      path: `/p?q=${nasty}`,
      status: 200,
      bytes: 1024,
      ms: 1.25,
      upstream: "10.0.0.1:8080",
      upstreamMs: 0.5,
    });
    expect(Number.isNaN(Date.parse(first?.time as string))).toBe(false);
    expect(first).not.toHaveProperty("error");
    expect(second).toMatchObject({
      status: 502,
      error: "PRT_ERR_UPSTREAM_CONNECT",
      reason: 'peer "x" refused',
    });
    expect(second).not.toHaveProperty("upstream");
  });

  it("keeps lines in memory until a block is full or the log is flushed", async () => {
    const file = join(dir, "blocks.log");
    const log = createAccessLogger(file);
    log.write(entry());
    // One line is far from a block: nothing written yet (the once-a-second timer has not run).
    expect(statSync(file).size).toBe(0);
    // Lines of this entry are about 200 bytes: 400 fill one 64 KiB block and start another.
    const count = 400;
    for (let i = 0; i < count; i++) log.write(entry({ path: `/${i}` }));
    // A full block went out by itself, without a flush; the rest waits.
    const written = statSync(file).size;
    expect(written).toBeGreaterThanOrEqual(64 * 1024);
    expect(written).toBeLessThan(count * 200);
    await flushLogFiles();
    const all = lines(file);
    expect(all.length).toBe(1 + count);
    expect(all.at(-1)?.path).toBe(`/${count - 1}`);
  });

  it("writes nothing when off", () => {
    const log = createAccessLogger("off");
    expect(log.enabled).toBe(false);
    expect(() => log.write(entry())).not.toThrow();
  });
});
