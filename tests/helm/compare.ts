/**
 * Comparing rendered or stored Kubernetes objects field by field, for the chart's equivalence
 * with k8s/: a difference is reported as its path and both values.
 * @module
 */

/** Every path where `a` (kustomize) and `b` (helm) differ, with both values. */
export function diff(a: unknown, b: unknown, path = ""): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const show = (v: unknown) => v === undefined ? "(absent)" : JSON.stringify(v);
  if (Array.isArray(a) && Array.isArray(b)) {
    const out: string[] = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      out.push(...diff(a[i], b[i], `${path}[${i}]`));
    }
    return out;
  }
  const isMap = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (isMap(a) && isMap(b)) {
    const out: string[] = [];
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      out.push(...diff(a[k], b[k], path ? `${path}.${k}` : k));
    }
    return out;
  }
  return [`${path || "(whole object)"}: kustomize ${show(a)}, helm ${show(b)}`];
}

/**
 * CEL ignores whitespace, and kustomize's YAML library folds the more-indented lines of a `>-`
 * scalar differently from Helm's (an extra newline, stored as such by the apiserver): CEL
 * `expression`s are compared with whitespace collapsed.
 */
export function collapseCel(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(collapseCel);
  if (typeof v !== "object" || v === null) return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [
      k,
      k === "expression" && typeof x === "string" ? x.replace(/\s+/g, " ").trim() : collapseCel(x),
    ]),
  );
}
