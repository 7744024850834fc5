/**
 * The docs stay true: the generated configuration reference and the published JSON Schema are
 * current, every relative link and `#anchor` resolves, every complete config shown passes
 * `portico check`, and every `portico` command shown is a real subcommand with real flags.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { renderReference } from "../../src/config/write-reference.js";
import { renderSchema } from "../../src/config/write-schema.js";
import { runCli } from "../helpers/portico.js";
import { anchors, codeBlocks, links } from "./markdown.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const docsDir = join(root, "docs");
const read = (path: string) => readFileSync(path, "utf8");

/** docs/*.md and README.md, absolute paths. */
const pages = [
  ...readdirSync(docsDir)
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => join(docsDir, f)),
  join(root, "README.md"),
];
const docPages = pages.filter((p) => p.startsWith(docsDir));
const rel = (path: string) => relative(root, path);

describe("generated files are current", () => {
  it("docs/configuration.md is what the schema generates (run npm run reference)", () => {
    const onDisk = read(join(docsDir, "configuration.md"));
    expect(onDisk === renderReference(), "docs/configuration.md is stale: run npm run reference").toBe(true);
  });

  it("conf/portico.schema.json is what the schema generates (run npm run schema)", () => {
    const onDisk = read(join(root, "conf/portico.schema.json"));
    expect(onDisk === renderSchema(), "conf/portico.schema.json is stale: run npm run schema").toBe(true);
  });
});

describe("links", () => {
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOf = (file: string) => {
    const known = anchorCache.get(file);
    if (known) return known;
    const found = anchors(read(file));
    anchorCache.set(file, found);
    return found;
  };

  it("every relative link in docs/*.md and README.md names a file that exists, and its #anchor a heading", () => {
    const broken: string[] = [];
    let checked = 0;
    for (const page of pages) {
      for (const { target, line } of links(read(page))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        checked++;
        const [path = "", anchor] = target.split("#", 2);
        const file = path === "" ? page : resolve(dirname(page), decodeURI(path));
        const where = `${rel(page)}:${line}: ${target}`;
        if (!existsSync(file)) {
          broken.push(`${where}: no such file ${rel(file)}`);
          continue;
        }
        // Anchors are checked within the docs and the README (the pages GitHub renders here).
        if (anchor !== undefined && file.endsWith(".md") && pages.includes(file)) {
          if (!anchorsOf(file).has(anchor))
            broken.push(`${where}: no heading makes #${anchor} in ${rel(file)}`);
        }
      }
    }
    expect(broken).toEqual([]);
    expect(checked).toBeGreaterThan(20);
  });
});

/** The YAML blocks of the docs that are whole configs (they have a top-level `servers:`). */
const configBlocks = docPages.flatMap((page) =>
  codeBlocks(read(page))
    .filter((b) => (b.lang === "yaml" || b.lang === "yml") && /^servers:/m.test(b.text))
    .map((b) => ({ where: `${rel(page)}:${b.line}`, text: b.text })),
);

describe("every complete config shown in docs/*.md passes portico check", () => {
  const dir = mkdtempSync(join(tmpdir(), "portico-docs-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("there are some", () => {
    expect(configBlocks.length).toBeGreaterThan(3);
  });

  it.each(configBlocks)("$where", async ({ where, text }) => {
    const file = join(dir, `${where.replace(/[/:.]/g, "_")}.yaml`);
    writeFileSync(file, `${text}\n`);
    const { code, stdout, stderr } = await runCli(["check", "-c", file]);
    expect(`${stdout}${stderr}`, where).toContain("configuration OK");
    expect(code, `${where}:\n${stderr}`).toBe(0);
  });
});

/** What `portico --help` says: the subcommands, and the flags each takes (global ones included). */
interface Usage {
  commands: Set<string>;
  /** Flags by command; "" holds the global ones. */
  flags: Map<string, Set<string>>;
  /** Flags followed by a value (`-c FILE`). */
  takesValue: Set<string>;
}

function parseUsage(text: string): Usage {
  const commands = new Set<string>();
  const flags = new Map<string, Set<string>>([["", new Set()]]);
  const takesValue = new Set<string>();
  let section: string | undefined;
  for (const line of text.split("\n")) {
    const header = /^(?:(\w+) )?(Commands|Options|options):$/.exec(line);
    if (header) {
      section = header[2] === "Commands" ? "commands" : (header[1] ?? "");
      if (section !== "commands" && !flags.has(section)) flags.set(section, new Set());
      continue;
    }
    if (section === undefined || !line.startsWith("  ")) continue;
    if (section === "commands") {
      const command = /^ {2}(\w+)\s/.exec(line)?.[1];
      if (command) commands.add(command);
      continue;
    }
    // `  -c, --config FILE   text`: the part before the description names the flags.
    const synopsis = line.trim().split(/\s{2,}/)[0] ?? "";
    const named = synopsis.match(/(?<![\w-])--?[a-zA-Z][\w-]*/g) ?? [];
    const placeholder = /\s['"A-Z]/.test(synopsis.replace(/(?<![\w-])--?[a-zA-Z][\w-]*,?/g, ""));
    for (const flag of named) {
      flags.get(section)?.add(flag);
      if (placeholder) takesValue.add(flag);
    }
  }
  return { commands, flags, takesValue };
}

/** Split one shell line into words (quotes kept together, `# comments` dropped). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(#.*$)|(\S+)/g;
  for (const m of line.matchAll(re)) {
    if (m[3] !== undefined) break;
    out.push(m[1] ?? m[2] ?? (m[4] as string));
  }
  return out;
}

/** The `portico ...` invocations of a shell block: at a command's start (after `$`, sudo, env assignments, `--`, `&&`, `;`, `|`). */
function porticoCommands(block: string): string[][] {
  const found: string[][] = [];
  const lines = block.replace(/\\\n/g, " ").split("\n");
  for (const line of lines) {
    const tokens = words(line.replace(/^\s*\$\s+/, ""));
    let start = true;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i] as string;
      if (["&&", "||", ";", "|", "--"].includes(t)) {
        start = true;
        continue;
      }
      if (start && (t === "sudo" || t === "exec" || t === "npx" || /^[A-Z_][A-Z0-9_]*=/.test(t))) continue;
      const isPortico =
        t === "portico" || t.endsWith("/portico") || (t === "node" && tokens[i + 1]?.endsWith("dist/cli.js"));
      if (start && isPortico) {
        const from = t === "node" ? i + 2 : i + 1;
        const rest: string[] = [];
        for (let j = from; j < tokens.length && !["&&", "||", ";", "|"].includes(tokens[j] as string); j++)
          rest.push(tokens[j] as string);
        found.push(rest);
      }
      start = false;
    }
  }
  return found;
}

/** What is wrong with one `portico` invocation, or undefined. */
function invocationProblem(args: string[], usage: Usage): string | undefined {
  let command: string | undefined;
  const used: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg.startsWith("-")) {
      const flag = arg.split("=")[0] as string;
      used.push(flag);
      if (usage.takesValue.has(flag) && !arg.includes("=")) i++;
    } else command ??= arg;
  }
  if (command === undefined) {
    const bare = used.filter((f) => !["-h", "--help", "-v", "--version"].includes(f));
    return bare.length === 0 && used.length > 0 ? undefined : "no subcommand";
  }
  if (!usage.commands.has(command))
    return `'${command}' is not a subcommand (${[...usage.commands].join(", ")})`;
  const allowed = new Set([...(usage.flags.get("") ?? []), ...(usage.flags.get(command) ?? [])]);
  const unknown = used.filter((f) => !allowed.has(f));
  return unknown.length > 0 ? `${unknown.join(", ")} is not a flag of 'portico ${command}'` : undefined;
}

describe("commands shown in docs/*.md", () => {
  const shellBlocks = docPages.flatMap((page) =>
    codeBlocks(read(page))
      .filter((b) => ["sh", "shell", "bash", "console"].includes(b.lang))
      .map((b) => ({ where: `${rel(page)}:${b.line}`, text: b.text })),
  );

  it("every portico command is a real subcommand with flags it takes (portico --help)", async () => {
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    const usage = parseUsage(help.stdout);
    expect([...usage.commands]).toEqual(expect.arrayContaining(["start", "check", "reload", "stop", "dns"]));
    expect(usage.takesValue.has("-c") && usage.takesValue.has("--config")).toBe(true);

    const problems: string[] = [];
    let count = 0;
    for (const { where, text } of shellBlocks) {
      for (const args of porticoCommands(text)) {
        count++;
        const problem = invocationProblem(args, usage);
        if (problem) problems.push(`${where}: portico ${args.join(" ")}: ${problem}`);
      }
    }
    expect(problems).toEqual([]);
    expect(count).toBeGreaterThan(5);
  });

  it("every npm run script shown exists in package.json", () => {
    const scripts = Object.keys(
      (JSON.parse(read(join(root, "package.json"))) as { scripts: object }).scripts,
    );
    const problems: string[] = [];
    for (const { where, text } of shellBlocks) {
      for (const m of text.matchAll(/\bnpm run ([\w:-]+)/g)) {
        if (!scripts.includes(m[1] as string)) problems.push(`${where}: npm run ${m[1]}: no such script`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("the checker itself refuses a made-up subcommand and a made-up flag", async () => {
    const usage = parseUsage((await runCli(["--help"])).stdout);
    expect(invocationProblem(["restart"], usage)).toMatch(/not a subcommand/);
    expect(invocationProblem(["check", "-c", "x.yaml", "--dry-run"], usage)).toMatch(/not a flag/);
    expect(invocationProblem(["dns", "api.internal", "--server", "udp://10.0.0.53"], usage)).toBeUndefined();
    expect(invocationProblem(["check", "--server", "udp://10.0.0.53"], usage)).toMatch(/not a flag/);
    expect(
      porticoCommands(
        "$ sudo portico reload -c /etc/portico/portico.yaml # reload\ndocker kill -s HUP portico",
      ),
    ).toEqual([["reload", "-c", "/etc/portico/portico.yaml"]]);
  });
});
