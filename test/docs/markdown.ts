/**
 * Just enough Markdown for the docs tests: fenced code blocks, headings and their GitHub
 * anchors, and inline links outside code.
 */

/** A fenced code block: its info string's first word (`yaml`, `sh`), text and first line number. */
export interface CodeBlock {
  lang: string;
  text: string;
  line: number;
}

/** A link target as written (`../conf/x.yaml#anchor`) and the line it is on. */
export interface Link {
  target: string;
  line: number;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;

/** The file split into fenced blocks and the lines outside them (fences blanked, so line numbers hold). */
function split(markdown: string): { blocks: CodeBlock[]; prose: string[] } {
  const blocks: CodeBlock[] = [];
  const prose: string[] = [];
  let open: { fence: string; lang: string; line: number; lines: string[] } | undefined;
  markdown.split("\n").forEach((line, i) => {
    const fence = FENCE.exec(line);
    if (open) {
      prose.push("");
      if (fence?.[1]?.startsWith(open.fence) && line.trim() === fence[1]) {
        blocks.push({ lang: open.lang, text: open.lines.join("\n"), line: open.line });
        open = undefined;
      } else open.lines.push(line);
    } else if (fence) {
      prose.push("");
      open = { fence: fence[1] as string, lang: (fence[2] ?? "").toLowerCase(), line: i + 2, lines: [] };
    } else prose.push(line);
  });
  return { blocks, prose };
}

export function codeBlocks(markdown: string): CodeBlock[] {
  return split(markdown).blocks;
}

/**
 * GitHub's heading anchor: the heading's text (inline code and link targets reduced to their
 * text), lower case, everything but letters, digits, spaces, `-` and `_` dropped, each space
 * a `-`; a repeated anchor gets `-1`, `-2`, ...
 */
export function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** Every anchor the file's headings make (ATX headings outside code blocks). */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of split(markdown).prose) {
    const heading = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = slug(heading[1] as string);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    out.add(count === 0 ? base : `${base}-${count}`);
  }
  return out;
}

/** Inline links and images outside code blocks and code spans: `[text](target)`, `![alt](target)`. */
export function links(markdown: string): Link[] {
  const out: Link[] = [];
  split(markdown).prose.forEach((line, i) => {
    const text = line.replace(/(`+)[^`]*?\1/g, (span) => " ".repeat(span.length));
    for (const match of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ target: match[1] as string, line: i + 1 });
    }
  });
  return out;
}
