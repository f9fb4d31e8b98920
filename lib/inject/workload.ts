/**
 * Finds the pod inside a workload object (Pod, Deployment, Job, CronJob, ...)
 * so the CLI can inject into templates with the same `inject()`.
 * @module
 */
import { isRecord } from "../json/mod.ts";
import type { Config } from "../config/mod.ts";
import { inject, type InjectResult } from "./inject.ts";
import { assertPod, InvalidPodError } from "./pod.ts";
import { pointer, prefixPaths } from "./pointer.ts";

const TEMPLATE_PATHS: Record<string, { path: string[] }> = {
  Pod: { path: [] },
  Deployment: { path: ["spec", "template"] },
  ReplicaSet: { path: ["spec", "template"] },
  ReplicationController: { path: ["spec", "template"] },
  StatefulSet: { path: ["spec", "template"] },
  DaemonSet: { path: ["spec", "template"] },
  Job: { path: ["spec", "template"] },
  CronJob: { path: ["spec", "jobTemplate", "spec", "template"] },
};

/** Kinds whose pods `injectWorkload` can reach. */
export const WORKLOAD_KINDS: readonly string[] = Object.keys(TEMPLATE_PATHS);

/**
 * Injects into `object`'s pod (template). The patch's paths are relative to
 * `object`. Unknown kinds are skipped with a reason.
 *
 * @throws {InvalidPodError} when the document or its pod (template) is malformed.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig } from "../config/mod.ts";
 * import { injectWorkload } from "./workload.ts";
 * const job = { kind: "Job", spec: { template: { spec: { containers: [{ name: "x" }] } } } };
 * const result = injectWorkload(job, defaultConfig());
 * assert.equal(result.mode, "native");
 * assert.ok(result.patch.every((op) => op.path.startsWith("/spec/template/")));
 * ```
 */
export function injectWorkload(object: unknown, config: Config): InjectResult {
  if (!isRecord(object)) throw new InvalidPodError("document is not an object");
  const kind = typeof object.kind === "string" ? object.kind : "";
  const where = TEMPLATE_PATHS[kind];
  if (!where) {
    return {
      decision: "skipped",
      reason: `kind ${kind || "<none>"} has no pod template`,
      skip: "no_pod_template",
      patch: [],
      warnings: [],
    };
  }
  let pod: unknown = object;
  for (const key of where.path) pod = isRecord(pod) ? pod[key] : undefined;
  assertPod(pod, [kind, ...where.path].join("."));
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const namespace = typeof meta.namespace === "string" ? meta.namespace : undefined;
  const result = inject(pod, config, { namespace });
  return { ...result, patch: prefixPaths(pointer(...where.path), result.patch) };
}
