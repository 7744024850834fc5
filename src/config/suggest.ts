/**
 * "Did you mean ...?" for misspelled keys and names: the nearest candidate by edit distance,
 * offered only when it is close enough to be a plausible typo.
 */

/** Damerau-Levenshtein (optimal string alignment) distance: insert, delete, substitute, swap. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1);
      }
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/**
 * The candidate nearest to `input` (case-insensitive), or undefined when none is within
 * a third of the input's length (at least 1, at most 3 edits).
 */
export function nearest(input: string, candidates: readonly string[]): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(input.length / 3)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    const distance = editDistance(input.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Quotes and joins names for a message: `'a', 'b', 'c'`. */
export function quoteList(names: readonly string[]): string {
  return names.map((n) => `'${n}'`).join(", ");
}

/**
 * The tail of a message about an unknown name: `; did you mean 'x'?` when one is close,
 * else the list of valid names (or `none` when there are none).
 */
export function suggestion(input: string, candidates: readonly string[], what = "valid keys"): string {
  const near = nearest(input, candidates);
  if (near !== undefined) return `; did you mean '${near}'?`;
  return candidates.length > 0 ? `; ${what} are: ${quoteList(candidates)}` : `; there are no ${what}`;
}
