/**
 * Escaped JSON Pointers (RFC 6901). Patch paths are built only here, so an
 * annotation key such as `example.com/inject` or `a~b` can never break a patch.
 * @module
 */

/** Escapes one reference token: `~` becomes `~0`, then `/` becomes `~1`. */
export function escapeToken(token: string | number): string {
  if (typeof token === "number") return String(token);
  const s = token;
  if (!s.includes("~") && !s.includes("/")) return s;
  return s.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Joins reference tokens into a JSON Pointer, escaping each. `pointer()` is the root `""`. */
export function pointer(...tokens: ReadonlyArray<string | number>): string {
  let out = "";
  for (const t of tokens) out += "/" + escapeToken(t);
  return out;
}

/** Prefixes every path of `ops` with an already escaped pointer (for pod templates). */
export function prefixPaths<T extends { path: string }>(prefix: string, ops: readonly T[]): T[] {
  if (prefix === "") return [...ops];
  return ops.map((op) => ({ ...op, path: prefix + op.path }));
}
