import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configSchema, type JsonSchema } from "../../src/config/schema.js";
import { renderSchema } from "../../src/config/write-schema.js";

const schemaFile = new URL("../../conf/portico.schema.json", import.meta.url);

/** Every property schema in the tree, with its dotted path. */
function properties(schema: JsonSchema, path = ""): [string, JsonSchema][] {
  const found: [string, JsonSchema][] = [];
  const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
  for (const [key, child] of Object.entries(props)) {
    const here = path ? `${path}.${key}` : key;
    found.push([here, child], ...properties(child, here));
  }
  for (const key of ["items", "additionalProperties"] as const) {
    const child = schema[key];
    if (child && typeof child === "object") found.push(...properties(child as JsonSchema, `${path}[]`));
  }
  return found;
}

describe("conf/portico.schema.json", () => {
  it("is in sync with configSchema (regenerate with `npm run schema`)", () => {
    const onDisk = readFileSync(schemaFile, "utf8");
    expect(JSON.parse(onDisk)).toEqual(configSchema);
    expect(onDisk).toBe(renderSchema());
  });

  it("describes every property, and the description of a defaulted one states its default", () => {
    const all = properties(configSchema);
    expect(all.length).toBeGreaterThan(40);
    for (const [path, schema] of all) {
      expect(typeof schema.description, path).toBe("string");
      if ("default" in schema) expect(schema.description, path).toMatch(/Default: /);
    }
  });

  it("closes every object with additionalProperties: false or a schema for the values", () => {
    const objects = properties(configSchema)
      .map(([path, schema]) => [path, schema] as const)
      .filter(([, schema]) => schema.type === "object");
    expect(objects.length).toBeGreaterThan(8);
    for (const [path, schema] of objects) {
      expect(schema.additionalProperties, path).toBeDefined();
    }
  });
});
