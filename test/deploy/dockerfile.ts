/**
 * A small Dockerfile reader and the rules Portico's image must keep (issue 15), for
 * test/deploy/dockerfile.test.ts. Docker Hub cannot be reached from CI, so the image is never
 * built there; these rules are what can be held without building it.
 *
 * The reader follows the Dockerfile reference for what this file uses: `#` comment lines
 * (parser directives included), `\` line continuations (comment lines inside one are
 * dropped), instruction keywords in any case, `--flag=value` options, and the JSON (exec) form.
 */

/** One instruction: its keyword upper-cased, its `--flags`, and the rest. */
export interface Instruction {
  keyword: string;
  flags: Record<string, string>;
  /** The arguments after the flags, as written (continuations joined with a space). */
  args: string;
  /** The exec form's array when `args` is a JSON array of strings. */
  exec?: string[];
  /** 1-based line the instruction starts on. */
  line: number;
}

/** A build stage: its `FROM` and what follows until the next one. */
export interface Stage {
  image: string;
  name?: string;
  instructions: Instruction[];
}

/** Instructions in file order. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]?.trim() ?? "";
    if (first === "" || first.startsWith("#")) continue;
    const start = i + 1;
    let joined = first;
    while (joined.endsWith("\\") && i + 1 < lines.length) {
      joined = joined.slice(0, -1).trimEnd();
      i++;
      const next = lines[i]?.trim() ?? "";
      if (next.startsWith("#")) {
        joined += " \\"; // a comment line inside a continuation is dropped
        continue;
      }
      joined += ` ${next}`;
    }
    const m = /^(\S+)\s*(.*)$/.exec(joined);
    if (!m) continue;
    let rest = m[2] ?? "";
    const flags: Record<string, string> = {};
    for (let f = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest); f; f = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest)) {
      flags[f[1] as string] = f[2] ?? "";
      rest = rest.slice(f[0].length);
    }
    const instruction: Instruction = {
      keyword: (m[1] as string).toUpperCase(),
      flags,
      args: rest,
      line: start,
    };
    const exec = jsonArray(rest);
    if (exec) instruction.exec = exec;
    out.push(instruction);
  }
  return out;
}

/** `text` as the exec form's JSON array of strings, or undefined for the shell form. */
function jsonArray(text: string): string[] | undefined {
  if (!text.startsWith("[")) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) && parsed.every((s) => typeof s === "string") ? parsed : undefined;
  } catch {
    return undefined; // not JSON: Docker reads it as the shell form
  }
}

/** The stages of a parsed Dockerfile (instructions before the first FROM, ARGs, are dropped). */
export function stagesOf(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?\s*$/i.exec(ins.args);
      stages.push({ image: m?.[1] ?? ins.args, name: m?.[2], instructions: [] });
    } else stages.at(-1)?.instructions.push(ins);
  }
  return stages;
}

/** An official Node image of an LTS line the project supports in images: 22 or 24. */
const NODE_IMAGE =
  /^(?:docker\.io\/(?:library\/)?)?node:(\d+)(?:\.\d+){0,2}(?:-[a-z0-9.-]+)?(?:@sha256:[0-9a-f]{64})?$/;

/** What the rules read out of a Dockerfile besides its problems. */
export interface ImageFacts {
  /** The config path the image's command starts Portico with (`-c PATH`). */
  configPath?: string;
  /** Where each file of the build context is copied in the final stage: source -> destination. */
  copies: Map<string, string>;
  /** Every path of the build context that any stage copies. */
  contextSources: Set<string>;
  /** Ports of `EXPOSE` in the final stage. */
  exposed: number[];
  /** The command of `HEALTHCHECK CMD`, exec form. */
  healthcheck?: string[];
}

/** Every rule of issue 15 the Dockerfile `text` breaks (empty: none), and what it says. */
export function checkDockerfile(text: string): { problems: string[]; facts: ImageFacts } {
  const problems: string[] = [];
  const stages = stagesOf(parseDockerfile(text));
  const facts: ImageFacts = { copies: new Map(), contextSources: new Set(), exposed: [] };
  if (stages.length < 2) problems.push(`a multi-stage build is required (found ${stages.length} FROM)`);
  const names = new Set(stages.map((s) => s.name).filter((n) => n !== undefined));
  for (const stage of stages) {
    if (names.has(stage.image)) continue; // FROM an earlier stage
    const m = NODE_IMAGE.exec(stage.image);
    if (!m) problems.push(`FROM ${stage.image}: not an official node image (node:22-... or node:24-...)`);
    else if (m[1] !== "22" && m[1] !== "24") {
      problems.push(`FROM ${stage.image}: Node ${m[1]} (only 22 or 24; Node 20 is past its end of life)`);
    }
  }
  const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
  const builds = (stage: Stage) =>
    runs(stage).some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r)) &&
    runs(stage).some((r) => /\bnpm run build\b/.test(r));
  const prodDeps = (stage: Stage) => runs(stage).some((r) => /\bnpm ci\b[^&;]*--omit=dev/.test(r));
  if (!stages.some(builds)) problems.push("no build stage running `npm ci` and `npm run build`");

  const final = stages.at(-1);
  if (!final) return { problems, facts };
  const byName = new Map(stages.map((s) => [s.name, s]));
  const fromStage = (dest: RegExp) =>
    final.instructions
      .filter((i) => i.keyword === "COPY" && i.flags.from !== undefined && dest.test(i.args))
      .map((i) => byName.get(i.flags.from));
  if (runs(final).some((r) => /\bnpm (ci|install)\b/.test(r) && !/--omit=dev/.test(r))) {
    problems.push("the runtime stage installs dev dependencies");
  }
  if (!prodDeps(final) && !fromStage(/node_modules/).some((s) => s && prodDeps(s))) {
    problems.push("the runtime stage's node_modules do not come from `npm ci --omit=dev`");
  }
  if (!fromStage(/\bdist\b/).some((s) => s && builds(s))) {
    problems.push("the runtime stage does not copy dist/ from the build stage");
  }

  const last = (keyword: string) => final.instructions.filter((i) => i.keyword === keyword).at(-1);
  const user = last("USER")?.args.trim();
  if (!user) problems.push("no USER in the runtime stage: it would run as root");
  else if (/^(root|0)(:|$)/.test(user)) problems.push(`USER ${user} is root`);

  const stop = last("STOPSIGNAL")?.args.trim();
  if (stop !== "SIGTERM" && stop !== "SIGQUIT") {
    problems.push(`STOPSIGNAL ${stop ?? "(none)"}: Portico's graceful stop is SIGTERM or SIGQUIT`);
  }

  const health = last("HEALTHCHECK");
  const healthCmd = health ? /^CMD\s+(.*)$/.exec(health.args)?.[1] : undefined;
  if (healthCmd === undefined) problems.push("no HEALTHCHECK CMD in the runtime stage");
  else {
    const exec = jsonArray(healthCmd);
    if (!exec) problems.push("HEALTHCHECK CMD is not in exec form (no shell needed, signals reach it)");
    facts.healthcheck = exec ?? healthCmd.split(/\s+/);
    if (facts.healthcheck[0] !== "node")
      problems.push("HEALTHCHECK does not run node (slim images have no curl)");
    if (!facts.healthcheck.some((a) => a.includes("healthz")))
      problems.push("HEALTHCHECK does not ask /healthz");
    if (/\b(curl|wget)\b/.test(healthCmd))
      problems.push("HEALTHCHECK uses curl or wget, which slim images lack");
  }

  for (const stage of stages) {
    for (const ins of stage.instructions) {
      if (ins.keyword !== "COPY" && ins.keyword !== "ADD") continue;
      if (ins.flags.from !== undefined) continue;
      const parts = ins.exec ?? ins.args.split(/\s+/);
      for (const src of parts.slice(0, -1)) facts.contextSources.add(src.replace(/^\.\//, ""));
      if (stage === final) {
        for (const src of parts.slice(0, -1))
          facts.copies.set(src.replace(/^\.\//, ""), parts.at(-1) as string);
      }
    }
  }
  for (const ins of final.instructions) {
    if (ins.keyword === "EXPOSE")
      facts.exposed.push(...ins.args.split(/\s+/).map((p) => Number.parseInt(p, 10)));
  }

  const entrypoint = last("ENTRYPOINT")?.exec ?? [];
  const command = [...entrypoint, ...(last("CMD")?.exec ?? [])];
  if (command[0] !== "node" || !command[1]?.endsWith("dist/cli.js") || command[2] !== "start") {
    problems.push(
      `the image's command is not \`node .../dist/cli.js start -c FILE\` (got ${JSON.stringify(command)})`,
    );
  }
  const c = command.indexOf("-c");
  facts.configPath = c >= 0 ? command[c + 1] : undefined;
  if (!facts.configPath) problems.push("the image's command names no config file (-c)");
  return { problems, facts };
}
