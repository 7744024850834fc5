/**
 * How a `regex` route's source becomes a RegExp. The config check and the worker's router
 * both call this, so a pattern that passes `portico check` compiles the same way at runtime.
 */

/**
 * Compiles a route regex: JavaScript syntax, tested against the request path; `ignore_case`
 * adds the `i` flag. Throws a SyntaxError for an invalid pattern.
 */
export function compileRouteRegex(source: string, caseInsensitive: boolean): RegExp {
  return new RegExp(source, caseInsensitive ? "i" : "");
}
