/**
 * Kubernetes label selectors (`matchLabels`, `matchExpressions`) evaluated
 * as the apiserver evaluates a webhook's `namespaceSelector` and `objectSelector`.
 * @module
 */
import { isRecord } from "../json/mod.ts";

/** A label selector, validated. An empty one matches everything. */
export interface LabelSelector {
  matchLabels: Record<string, string>;
  matchExpressions: Array<{
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values: string[];
  }>;
}

const OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"] as const;

/** Validates a selector read from the API (`unknown`); `undefined` means "match everything". */
export function parseSelector(value: unknown, where: string): LabelSelector {
  const selector: LabelSelector = { matchLabels: {}, matchExpressions: [] };
  if (value === undefined || value === null) return selector;
  if (!isRecord(value)) throw new TypeError(`${where} must be an object`);
  const labels = value.matchLabels ?? {};
  if (!isRecord(labels)) throw new TypeError(`${where}.matchLabels must be an object`);
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== "string") throw new TypeError(`${where}.matchLabels.${k} must be a string`);
    selector.matchLabels[k] = v;
  }
  const exprs = value.matchExpressions ?? [];
  if (!Array.isArray(exprs)) throw new TypeError(`${where}.matchExpressions must be a list`);
  exprs.forEach((e: unknown, i) => {
    const at = `${where}.matchExpressions[${i}]`;
    if (!isRecord(e) || typeof e.key !== "string") throw new TypeError(`${at} needs a key`);
    const operator = OPERATORS.find((o) => o === e.operator);
    if (!operator) throw new TypeError(`${at}.operator ${String(e.operator)} is not supported`);
    const values = e.values ?? [];
    if (!Array.isArray(values) || !values.every((v) => typeof v === "string")) {
      throw new TypeError(`${at}.values must be a list of strings`);
    }
    selector.matchExpressions.push({ key: e.key, operator, values });
  });
  return selector;
}

/**
 * True when `labels` satisfy every requirement of `selector`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { matches, parseSelector } from "./selector.ts";
 * const s = parseSelector({ matchExpressions: [{ key: "team", operator: "NotIn", values: ["ops"] }] }, "s");
 * assert.equal(matches(s, { team: "web" }), true);
 * assert.equal(matches(s, {}), true);
 * assert.equal(matches(s, { team: "ops" }), false);
 * ```
 */
export function matches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels)) {
    if (labels[k] !== v) return false;
  }
  return selector.matchExpressions.every(({ key, operator, values }) => {
    const has = Object.hasOwn(labels, key);
    switch (operator) {
      case "In":
        return has && values.includes(labels[key] as string);
      case "NotIn":
        return !has || !values.includes(labels[key] as string);
      case "Exists":
        return has;
      case "DoesNotExist":
        return !has;
    }
  });
}
