/**
 * Writes the config JSON Schema to `conf/portico.schema.json`, for editors and for readers.
 * Run after a build: `node dist/config/write-schema.js` (or `npm run schema`).
 */

import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { configSchema } from "./schema.js";

/** The schema file as it is written to disk: two-space JSON with a final newline. */
export function renderSchema(): string {
  return `${JSON.stringify(configSchema, null, 2)}\n`;
}

const target = new URL("../../conf/portico.schema.json", import.meta.url);

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  writeFileSync(target, renderSchema());
  console.log(`wrote ${fileURLToPath(target)}`);
}
