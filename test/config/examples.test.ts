// Every shipped config (conf/portico.yaml and conf/examples/) names the JSON schema for
// editors on its first line and passes `portico check`, as CI runs it.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runCli } from "../helpers/portico.js";

const conf = fileURLToPath(new URL("../../conf/", import.meta.url));
const shipped = [
  join(conf, "portico.yaml"),
  ...readdirSync(join(conf, "examples"))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => join(conf, "examples", f)),
];

describe("shipped configs", () => {
  it("there are the default config and at least four examples", () => {
    expect(shipped.length).toBeGreaterThanOrEqual(5);
  });

  it.each(shipped.map((f) => [f.slice(conf.length), f]))(
    "%s names the schema and passes portico check",
    async (_, file) => {
      const first = readFileSync(file, "utf8").split("\n")[0];
      const schema = file.includes("/examples/") ? "../portico.schema.json" : "./portico.schema.json";
      expect(first).toBe(`# yaml-language-server: $schema=${schema}`);
      const result = await runCli(["check", "-c", file]);
      expect(result.stderr).not.toMatch(/: error|invalid/);
      expect([result.code, result.stdout]).toEqual([0, "configuration OK\n"]);
    },
  );
});
