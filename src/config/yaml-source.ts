/**
 * The parsed YAML file with its source positions: turns a path into the data (`servers/0/listen`)
 * back into the YAML node it came from, so every message can say `file:line:col`.
 */

import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  visit,
} from "yaml";
import type { ConfigIssue } from "./types.js";

/** Most values aliases may expand to in one file (yaml's `maxAliasCount`). */
const MAX_ALIAS_COUNT = 1000;

/** A path into the config data: map keys and sequence indexes (ajv's `instancePath`, split). */
export type DataPath = readonly (string | number)[];

/** Line and column, both 1-based; line 0 means "the file as a whole". */
export interface LineCol {
  line: number;
  col: number;
}

function stripPrefix(message: string): string {
  // yaml's messages start with a capital and repeat the position we already print.
  const text = message.replace(/ at line \d+, column \d+[\s\S]*$/, "");
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** One parsed config file: the YAML document plus a line index for positions. */
export class SourceDocument {
  readonly doc: Document.Parsed;
  private readonly lines = new LineCounter();

  /** Parses `text`; syntax problems are kept and reported by `syntaxIssues()`. */
  constructor(
    text: string,
    readonly file: string,
  ) {
    // uniqueKeys is off so that duplicates are found by duplicateKeyIssues(), which can
    // name the key and point at both occurrences.
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: false });
  }

  /** Line/column (1-based) of a character offset in the file. */
  positionAt(offset: number): LineCol {
    return this.lines.linePos(offset);
  }

  /** Where a node starts; the start of the file when the node is missing. */
  positionOf(node: Node | null | undefined): LineCol {
    return node?.range ? this.positionAt(node.range[0]) : { line: 1, col: 1 };
  }

  /** Builds an issue at a position in this file. */
  issue(at: LineCol, message: string, severity: ConfigIssue["severity"] = "error"): ConfigIssue {
    return { file: this.file, line: at.line, col: at.col, message, severity };
  }

  /** YAML syntax errors and warnings, positioned. */
  syntaxIssues(): ConfigIssue[] {
    const all = [
      ...this.doc.errors.map((e) => ({ e, severity: "error" as const })),
      ...this.doc.warnings.map((e) => ({ e, severity: "warning" as const })),
    ];
    return all.map(({ e, severity }) => {
      const message =
        e.code === "MULTIPLE_DOCS"
          ? "the file holds more than one YAML document ('---'); a config is a single document"
          : stripPrefix(e.message);
      return this.issue(this.positionAt(e.pos[0]), `YAML syntax: ${message}`, severity);
    });
  }

  /** One error per key written twice in the same mapping, at the second occurrence. */
  duplicateKeyIssues(): ConfigIssue[] {
    const issues: ConfigIssue[] = [];
    const seen = new Set<Node>();
    const visit = (node: unknown): void => {
      if (isAlias(node) || !node || seen.has(node as Node)) return;
      seen.add(node as Node);
      if (isSeq(node)) for (const item of node.items) visit(item);
      if (!isMap(node)) return;
      const firstByKey = new Map<string, Node>();
      for (const pair of node.items) {
        const key = pair.key as Node | null;
        const name = isScalar(key) ? String(key.value) : undefined;
        if (name !== undefined && key) {
          const first = firstByKey.get(name);
          if (first) {
            const at = this.positionOf(first);
            issues.push(
              this.issue(
                this.positionOf(key),
                `duplicate key '${name}' (first at line ${at.line}); a key may appear only once in a mapping`,
              ),
            );
          } else {
            firstByKey.set(name, key);
          }
        }
        visit(pair.value);
      }
    };
    visit(this.doc.contents);
    return issues;
  }

  /** The plain data of the document (aliases expanded; on duplicate keys the last one wins). */
  toData(): unknown {
    return this.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  }

  /**
   * The issue for an error `toData` threw, or undefined when it is not about aliases: yaml
   * refuses an alias whose anchor is not set before it, and aliases that expand to more than
   * MAX_ALIAS_COUNT nodes (a "billion laughs" file).
   */
  aliasIssue(error: unknown): ConfigIssue | undefined {
    if (!(error instanceof ReferenceError)) return undefined;
    // In document order, as yaml resolves them: the first alias with no anchor before it.
    const anchors = new Set<string>();
    let first: Node | undefined;
    let unresolved: Node | undefined;
    visit(this.doc, {
      Node: (_key, node) => {
        if (isAlias(node)) {
          first ??= node;
          if (!anchors.has(node.source)) unresolved ??= node;
        } else if (node.anchor) anchors.add(node.anchor);
      },
    });
    if (isAlias(unresolved)) {
      const name = unresolved.source;
      return this.issue(
        this.positionOf(unresolved),
        `alias '*${name}' refers to no anchor '&${name}' written before it`,
      );
    }
    if (!/alias count/i.test(error.message)) return undefined;
    return this.issue(
      this.positionOf(first),
      `aliases ('*name') expand to more than ${MAX_ALIAS_COUNT} values (aliases of aliases multiply): write the values out, or use fewer aliases`,
    );
  }

  private resolve(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }

  /** The key/value pair for `key` in a YAML mapping node, if written. */
  private pairOf(map: unknown, key: string): Pair<Node, Node> | undefined {
    const node = this.resolve(map);
    if (!isMap(node)) return undefined;
    const pairs = node.items.filter((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key);
    return pairs.at(-1) as Pair<Node, Node> | undefined;
  }

  /**
   * The YAML node at `path`, or the deepest ancestor that exists (a value filled in from a
   * default has no node of its own). The root mapping for an empty path.
   */
  nodeAt(path: DataPath): Node | undefined {
    let node = this.resolve(this.doc.contents) as Node | undefined;
    for (const segment of path) {
      const here = this.resolve(node);
      let next: unknown;
      if (isSeq(here) && typeof segment === "number") next = here.items[segment];
      else if (isMap(here)) next = this.pairOf(here, String(segment))?.value;
      const resolved = this.resolve(next) as Node | undefined;
      if (!resolved) return node;
      node = resolved;
    }
    return node;
  }

  /** Position of the value at `path` (or of its nearest written ancestor). */
  valueAt(path: DataPath): LineCol {
    return this.positionOf(this.nodeAt(path));
  }

  /** Position of the key `key` inside the mapping at `path` (for unknown or misplaced keys). */
  keyAt(path: DataPath, key: string): LineCol {
    const pair = this.pairOf(this.nodeAt(path), key);
    return pair ? this.positionOf(pair.key) : this.valueAt(path);
  }
}
