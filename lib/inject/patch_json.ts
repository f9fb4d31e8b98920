/**
 * The JSON Patch as text, byte for byte what `JSON.stringify(patch)` gives,
 * but reusing the JSON of values rendered once per config (the sidecar, the
 * agent config text) instead of escaping them again for every pod.
 * @module
 */
import type { Operation } from "fast-json-patch";

/** The JSON of `value`: known (`encoded`) for it or, one level down, for its items. */
function encodeValue(value: unknown, encoded: ReadonlyMap<unknown, string>): string {
  const known = encoded.get(value);
  if (known !== undefined) return known;
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ",";
      const v: unknown = value[i];
      out += encoded.get(v) ?? JSON.stringify(v) ?? "null";
    }
    return out + "]";
  }
  if (
    typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype
  ) {
    let out = "{";
    let first = true;
    for (const [k, v] of Object.entries(value)) {
      const json = encoded.get(v) ?? JSON.stringify(v);
      if (json === undefined) continue; // as JSON.stringify: undefined members are left out
      out += `${first ? "" : ","}${JSON.stringify(k)}:${json}`;
      first = false;
    }
    return out + "}";
  }
  return JSON.stringify(value);
}

/**
 * Encodes `patch` as `JSON.stringify` would, taking the JSON of values found
 * in `encoded` (keyed by the value itself) as is.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodePatch } from "./patch_json.ts";
 * const sidecar = { name: "agent" };
 * const patch = [{ op: "add" as const, path: "/spec/containers/-", value: sidecar }];
 * const encoded = new Map([[sidecar, JSON.stringify(sidecar)]]);
 * assert.equal(encodePatch(patch, encoded), JSON.stringify(patch));
 * ```
 */
export function encodePatch(
  patch: readonly Operation[],
  encoded?: ReadonlyMap<unknown, string>,
): string {
  if (!encoded || encoded.size === 0) return JSON.stringify(patch);
  let out = "[";
  for (let i = 0; i < patch.length; i++) {
    const op = patch[i]!;
    if (i > 0) out += ",";
    // Only the shape inject() builds ({op, path, value} in that order) takes the fast way.
    const keys = Object.keys(op);
    if (
      op.op === "add" && op.value !== undefined && keys.length === 3 && keys[0] === "op" &&
      keys[1] === "path" && keys[2] === "value"
    ) {
      out += `{"op":"add","path":${JSON.stringify(op.path)},"value":${
        encodeValue(op.value, encoded)
      }}`;
    } else out += JSON.stringify(op);
  }
  return out + "]";
}
