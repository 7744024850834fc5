/**
 * Validates Kubernetes manifests without a cluster, for test/deploy/kubernetes.test.ts, with
 * kubernetes-models (the Kubernetes OpenAPI schemas as validators and TypeScript types) in
 * two passes:
 * - the schema: each document's class, found by its apiVersion and kind (none: an unknown
 *   kind), validates it (types, required fields, enums, formats);
 * - unknown fields: the schemas allow any extra key, which the API server refuses
 *   (`kubectl apply` validates strictly) but the validators accept, so a misspelled key would
 *   pass. Each document is type-checked by the TypeScript compiler as an object literal of
 *   the model's interface, whose excess-property check names every key the API does not
 *   know, at any depth.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { parseAllDocuments } from "yaml";

/** One YAML document of a manifest file. */
export interface Manifest {
  file: string;
  /** 0-based position of the document in its file. */
  index: number;
  // biome-ignore lint/suspicious/noExplicitAny: a manifest is read as data, then validated.
  doc: any;
}

/** Every document of every `.yaml` file in `dir`, in file-name order; YAML errors throw. */
export function loadManifests(dir: string): Manifest[] {
  const out: Manifest[] = [];
  for (const name of readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()) {
    const file = join(dir, name);
    parseAllDocuments(readFileSync(file, "utf8")).forEach((document, index) => {
      if (document.errors.length > 0)
        throw new Error(`${file}: ${document.errors.map((e) => e.message).join("; ")}`);
      out.push({ file, index, doc: document.toJS() });
    });
  }
  return out;
}

/** The module of kubernetes-models holding `kind` of `apiVersion` (core `v1` is `v1/`). */
function modelPath(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

const label = (m: Manifest) =>
  `${m.file.split("/").at(-1)} document ${m.index + 1} (${m.doc?.kind ?? "no kind"} ${m.doc?.metadata?.name ?? "unnamed"})`;

/** The schema pass: every problem of `m` as `label: message`. */
export async function schemaErrors(m: Manifest): Promise<string[]> {
  const { apiVersion, kind } = (m.doc ?? {}) as { apiVersion?: unknown; kind?: unknown };
  if (typeof apiVersion !== "string" || typeof kind !== "string")
    return [`${label(m)}: no apiVersion or kind`];
  if (!/^([a-z0-9.-]+\/)?v\d+(alpha\d+|beta\d+)?$/.test(apiVersion) || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
    return [`${label(m)}: unknown kind ${kind} of ${apiVersion}`];
  }
  let model: { new (data: unknown): { validate(): void }; apiVersion?: string; kind?: string } | undefined;
  try {
    model = (await import(modelPath(apiVersion, kind)))[kind];
  } catch {
    model = undefined;
  }
  if (!model || model.apiVersion !== apiVersion || model.kind !== kind) {
    return [
      `${label(m)}: unknown kind ${kind} of ${apiVersion} (not in the Kubernetes API that kubernetes-models has)`,
    ];
  }
  try {
    new model(m.doc).validate();
    return [];
  } catch (err) {
    return [`${label(m)}: ${(err as Error).message}`];
  }
}

/** Declaration files parsed by earlier runs of the unknown-field pass, by path. */
const parsedFiles = new Map<string, ts.SourceFile>();

/**
 * The unknown-field pass over every manifest at once (one compiler run): `label: message`
 * for each key the API does not know. Documents whose kind is unknown are left to the schema
 * pass.
 */
export function unknownFieldErrors(manifests: Manifest[]): string[] {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  // A file that exists only in memory, next to this one, so node_modules resolves as usual.
  const virtual = join(root, "test/deploy/__manifests__.ts");
  const lines: string[] = [];
  const spans: Array<{ from: number; to: number; manifest: Manifest }> = [];
  manifests.forEach((m, i) => {
    const kind = m.doc?.kind;
    if (typeof kind !== "string" || typeof m.doc?.apiVersion !== "string") return;
    lines.push(`import type { I${kind} as T${i} } from "${modelPath(m.doc.apiVersion, kind)}";`);
    const from = lines.length;
    lines.push(...`export const doc${i}: T${i} = ${JSON.stringify(m.doc, null, 1)};`.split("\n"));
    spans.push({ from, to: lines.length, manifest: m });
  });
  const source = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) => {
    if (name === virtual) return ts.createSourceFile(name, source, version);
    // The models' and lib's declarations are parsed once for every run of this module.
    let file = parsedFiles.get(name);
    if (!file) {
      file = getSourceFile(name, version, ...rest);
      if (file) parsedFiles.set(name, file);
    }
    return file;
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === virtual || fileExists(name);
  const program = ts.createProgram([virtual], options, host);
  const errors: string[] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    // The models quote their property names ('"replica"'): say them as written.
    const message = ts.flattenDiagnosticMessageText(d.messageText, " ").replace(/'"([^"]*)"'/g, "'$1'");
    if (d.file?.fileName !== virtual || d.start === undefined) {
      errors.push(`type check: ${message}`);
      continue;
    }
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    const span = spans.find((s) => line >= s.from && line < s.to);
    // An import of an unknown kind fails here too; the schema pass names it.
    if (!span) continue;
    errors.push(`${label(span.manifest)}: ${message}`);
  }
  return errors;
}

/** Both passes over `manifests`: every problem, or none. */
export async function manifestErrors(manifests: Manifest[]): Promise<string[]> {
  const schema = (await Promise.all(manifests.map(schemaErrors))).flat();
  return [...schema, ...unknownFieldErrors(manifests)];
}
