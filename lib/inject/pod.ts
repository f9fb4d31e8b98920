/**
 * Validation of the Pod fields the injector reads. Input arrives as `unknown`;
 * after `assertPod` it is a typed `Pod` and nothing downstream re-checks it.
 *
 * `null` means "unset", as Kubernetes decodes it (an empty YAML key such as
 * `annotations:` is null): such keys are removed from the fields read here,
 * so downstream code sees `undefined`. A JSON Patch built afterwards still
 * applies to the original, where `add` replaces the null.
 * @module
 */
import { isRecord } from "../json/mod.ts";
import type { Pod } from "kubernetes-types/core/v1.d.ts";

/** A pod (or pod template) failed validation; `message` names the field. */
export class InvalidPodError extends TypeError {
  override name = "InvalidPodError";
}

function fail(path: string, want: string, got: unknown): never {
  const kind = got === null ? "null" : Array.isArray(got) ? "array" : typeof got;
  throw new InvalidPodError(`${path} must be ${want}, got ${kind}`);
}

/** `obj[key]`, after dropping it when it is null (unset). */
function field(obj: Record<string, unknown>, key: string): unknown {
  if (obj[key] === null) delete obj[key];
  return obj[key];
}

function optionalString(obj: Record<string, unknown>, key: string, path: string): void {
  const v = field(obj, key);
  if (v !== undefined && typeof v !== "string") fail(`${path}.${key}`, "a string", v);
}

/** `securityContext`'s user and group, which decide who the agent runs as. */
function identity(obj: Record<string, unknown>, path: string): void {
  const sc = field(obj, "securityContext");
  if (sc === undefined) return;
  if (!isRecord(sc)) fail(`${path}.securityContext`, "an object", sc);
  for (const key of ["runAsUser", "runAsGroup"]) {
    const v = field(sc, key);
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) >= 0)) {
      fail(`${path}.securityContext.${key}`, "a non-negative integer", v);
    }
  }
}

function stringMap(v: unknown, path: string): void {
  if (v === undefined) return;
  if (!isRecord(v)) fail(path, "a map of strings", v);
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") fail(`${path}[${JSON.stringify(k)}]`, "a string", val);
  }
}

function namedList(
  v: unknown,
  path: string,
  each?: (item: Record<string, unknown>, p: string) => void,
): void {
  if (v === undefined) return;
  if (!Array.isArray(v)) fail(path, "an array", v);
  v.forEach((item, i) => {
    const p = `${path}[${i}]`;
    if (!isRecord(item)) fail(p, "an object", item);
    if (typeof item.name !== "string") fail(`${p}.name`, "a string", item.name);
    each?.(item, p);
  });
}

function container(c: Record<string, unknown>, path: string): void {
  identity(c, path);
  namedList(field(c, "volumeMounts"), `${path}.volumeMounts`, (m, p) => {
    if (typeof m.mountPath !== "string") fail(`${p}.mountPath`, "a string", m.mountPath);
  });
  namedList(field(c, "volumeDevices"), `${path}.volumeDevices`, (d, p) => {
    if (typeof d.devicePath !== "string") fail(`${p}.devicePath`, "a string", d.devicePath);
  });
}

/**
 * Checks the fields `inject` reads and narrows `value` to `Pod`; null ones are dropped.
 *
 * @throws {InvalidPodError} naming the first wrong field.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertPod } from "./pod.ts";
 * const value: unknown = { spec: { containers: [{ name: "app" }] } };
 * assertPod(value);
 * assert.equal(value.spec?.containers[0]?.name, "app");
 * assert.throws(() => assertPod({ spec: { containers: {} } }), /containers must be an array/);
 * ```
 */
export function assertPod(value: unknown, path = "pod"): asserts value is Pod {
  if (!isRecord(value)) fail(path, "an object", value);
  const meta = field(value, "metadata");
  if (meta !== undefined) {
    if (!isRecord(meta)) fail(`${path}.metadata`, "an object", meta);
    for (const key of ["name", "generateName", "namespace"]) {
      optionalString(meta, key, `${path}.metadata`);
    }
    stringMap(field(meta, "annotations"), `${path}.metadata.annotations`);
    stringMap(field(meta, "labels"), `${path}.metadata.labels`);
    const owners = field(meta, "ownerReferences");
    if (owners !== undefined) {
      if (!Array.isArray(owners)) fail(`${path}.metadata.ownerReferences`, "an array", owners);
      owners.forEach((o: unknown, i) => {
        const p = `${path}.metadata.ownerReferences[${i}]`;
        if (!isRecord(o)) fail(p, "an object", o);
        optionalString(o, "kind", p);
      });
    }
  }
  const spec = value.spec;
  if (!isRecord(spec)) fail(`${path}.spec`, "an object", spec);
  // Unset containers decode as none: such a pod is skipped, not refused.
  if (spec.containers === null) spec.containers = [];
  if (!Array.isArray(spec.containers)) fail(`${path}.spec.containers`, "an array", spec.containers);
  identity(spec, `${path}.spec`);
  namedList(spec.containers, `${path}.spec.containers`, container);
  namedList(field(spec, "initContainers"), `${path}.spec.initContainers`, container);
  namedList(field(spec, "ephemeralContainers"), `${path}.spec.ephemeralContainers`);
  namedList(field(spec, "volumes"), `${path}.spec.volumes`);
  optionalString(spec, "restartPolicy", `${path}.spec`);
  stringMap(field(spec, "nodeSelector"), `${path}.spec.nodeSelector`);
  const os = field(spec, "os");
  if (os !== undefined) {
    if (!isRecord(os)) fail(`${path}.spec.os`, "an object", os);
    optionalString(os, "name", `${path}.spec.os`);
  }
  nodeAffinity(spec, `${path}.spec`);
}

/** `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`. */
function nodeAffinity(spec: Record<string, unknown>, path: string): void {
  let at: Record<string, unknown> = spec;
  let p = path;
  for (
    const key of ["affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"]
  ) {
    const next = field(at, key);
    p = `${p}.${key}`;
    if (next === undefined) return;
    if (!isRecord(next)) fail(p, "an object", next);
    at = next;
  }
  const terms = field(at, "nodeSelectorTerms");
  if (terms === undefined) return;
  if (!Array.isArray(terms)) fail(`${p}.nodeSelectorTerms`, "an array", terms);
  terms.forEach((term: unknown, i) => {
    const tp = `${p}.nodeSelectorTerms[${i}]`;
    if (!isRecord(term)) fail(tp, "an object", term);
    const exprs = field(term, "matchExpressions");
    if (exprs === undefined) return;
    if (!Array.isArray(exprs)) fail(`${tp}.matchExpressions`, "an array", exprs);
    exprs.forEach((e: unknown, j) => {
      const ep = `${tp}.matchExpressions[${j}]`;
      if (!isRecord(e)) fail(ep, "an object", e);
      optionalString(e, "key", ep);
      optionalString(e, "operator", ep);
      const values = field(e, "values");
      if (values === undefined) return;
      if (!Array.isArray(values)) fail(`${ep}.values`, "an array", values);
      values.forEach((v: unknown, k) => {
        if (typeof v !== "string") fail(`${ep}.values[${k}]`, "a string", v);
      });
    });
  });
}
