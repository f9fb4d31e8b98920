/**
 * The audit decision for one existing pod, pure: does it lack the agent the
 * injector would give it today (escaped), carry one from an older injector
 * or another image than the current config names (drifted), or carry one
 * that cannot run (blocked: its image cannot be pulled, it crash-loops)? The
 * first two are answered by the same `inject()` the webhook runs, so the
 * audit and the server can never disagree; the third by the pod's status.
 * @module
 */
import type { ContainerStatus, Pod } from "kubernetes-types/core/v1.d.ts";
import type { Config, Mode } from "../config/mod.ts";
import {
  inject,
  type InjectionStatus,
  type InjectResult,
  LEGACY_ANNOTATION,
  STATUS_ANNOTATION,
} from "../inject/mod.ts";
import { pointer } from "../inject/mod.ts";
import { isRecord } from "../json/mod.ts";

/**
 * `escaped`: should carry the agent and does not; `drifted`: carries an
 * outdated one; `blocked`: carries one that cannot run.
 */
export type Problem = "escaped" | "drifted" | "blocked";

/** One pod the audit reports. */
export interface Finding {
  problem: Problem;
  namespace: string;
  pod: string;
  /** `Kind/name` of the controller that would re-create it, when there is one. */
  owner?: string;
  /** For people: what is wrong and the likely cause. */
  reason: string;
}

/** What the audit knows about a pod besides the pod. */
export interface PodContext {
  config: Config;
  namespace: string;
  /** Whether the webhook's selectors send this pod's create to the webhook at all. */
  sentToWebhook: boolean;
  /** When the webhook was registered (RFC 3339), for pods older than it. */
  webhookCreated?: string | undefined;
}

/**
 * Waiting reasons that mean the agent cannot start until someone acts: a
 * wrong image (name, tag, registry credentials), a crash loop, a reference
 * to a missing ConfigMap or Secret key.
 */
export const BLOCKED_REASONS: ReadonlySet<string> = new Set([
  "ImagePullBackOff",
  "ErrImagePull",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CrashLoopBackOff",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

/**
 * Restarts from which a running agent counts as restarting repeatedly. The
 * kubelet's back-off between restarts doubles from 10 s, so 5 restarts are
 * at least ~2.5 minutes of failures (an OOM kill or a crash once in a while
 * stays below); between crashes the agent waits in CrashLoopBackOff, which
 * is found on its own.
 */
export const BLOCKED_RESTARTS = 5;

/** The status annotation version this injector writes. */
export const STATUS_VERSION: InjectionStatus["version"] = 1;

const STATUS_PATHS = {
  key: pointer("metadata", "annotations", STATUS_ANNOTATION),
  annotations: pointer("metadata", "annotations"),
  metadata: pointer("metadata"),
};

/** The status annotation `result`'s patch writes: the agent the current config gives the pod. */
export function statusOf(result: InjectResult): string | undefined {
  for (const op of result.patch) {
    if (op.op !== "add") continue;
    const v: unknown = op.value;
    if (op.path === STATUS_PATHS.key && typeof v === "string") return v;
    if (op.path === STATUS_PATHS.annotations && isRecord(v)) return String(v[STATUS_ANNOTATION]);
    if (op.path === STATUS_PATHS.metadata && isRecord(v) && isRecord(v.annotations)) {
      return String(v.annotations[STATUS_ANNOTATION]);
    }
  }
  return undefined;
}

/** The written status, checked; a string saying why when it cannot be read. */
function readStatus(raw: string): Partial<InjectionStatus> | string {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return "not JSON";
  }
  if (!isRecord(v)) return "not a JSON object";
  const out: Partial<InjectionStatus> = {};
  if (typeof v.version === "number") out.version = v.version as InjectionStatus["version"];
  for (const k of ["profile", "sidecar", "image"] as const) {
    if (typeof v[k] === "string") out[k] = v[k];
  }
  if (v.mode === "native" || v.mode === "classic") out.mode = v.mode;
  return out;
}

function ownerOf(pod: Pod): string | undefined {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller) ??
    pod.metadata?.ownerReferences?.[0];
  return owner ? `${owner.kind}/${owner.name}` : undefined;
}

function hasContainer(pod: Pod, name: string): boolean {
  const spec = pod.spec;
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].some((c) =>
    c.name === name
  );
}

/** The kubelet's status of the agent container: an init container (native mode) or a regular one. */
function agentStatus(pod: Pod, name: string, mode: Mode | undefined): ContainerStatus | undefined {
  const init = pod.status?.initContainerStatuses ?? [];
  const regular = pod.status?.containerStatuses ?? [];
  // A status without a mode (written before there was one) may name either.
  const lists = mode === "classic" ? [regular] : mode === "native" ? [init] : [init, regular];
  for (const list of lists) {
    const found = list.find((c) => c.name === name);
    if (found) return found;
  }
  return undefined;
}

/** Why the agent container `name` cannot run, from the pod's status; undefined when it can. */
function blockedBy(pod: Pod, name: string, mode: Mode | undefined): string | undefined {
  const status = agentStatus(pod, name, mode);
  if (!status) return undefined;
  // With native sidecars the app containers start only once the agent has started.
  const apps = mode === "classic" ? "" : "; the app containers cannot start until it runs";
  const waiting = status.state?.waiting;
  if (waiting?.reason && BLOCKED_REASONS.has(waiting.reason)) {
    const message = waiting.message ? `: ${waiting.message}` : "";
    const restarts = status.restartCount > 0 ? ` (restarted ${status.restartCount} times)` : "";
    return `agent container ${name} waiting: ${waiting.reason}${message}${restarts}${apps}`;
  }
  if (status.restartCount >= BLOCKED_RESTARTS) {
    const last = status.lastState?.terminated;
    const how = last
      ? `; last exit ${last.exitCode}${last.reason ? ` (${last.reason})` : ""}${
        last.finishedAt ? ` at ${last.finishedAt}` : ""
      }`
      : "";
    return `agent container ${name} restarting repeatedly: restarted ${status.restartCount} times${how}`;
  }
  return undefined;
}

/** What is outdated in an injected pod, compared with what the current config would give it. */
function drift(pod: Pod, raw: string, ctx: PodContext): string[] {
  const status = readStatus(raw);
  if (typeof status === "string") return [`status annotation unreadable (${status})`];
  const why: string[] = [];
  if (status.version === undefined || status.version < STATUS_VERSION) {
    why.push(`injector status version ${status.version ?? "none"}, current ${STATUS_VERSION}`);
  }
  // Ask inject() what it would write today, as if the pod had never been injected.
  const { [STATUS_ANNOTATION]: _s, [LEGACY_ANNOTATION]: _l, ...annotations } =
    pod.metadata?.annotations ?? {};
  const fresh = inject({ ...pod, metadata: { ...pod.metadata, annotations } }, ctx.config, {
    namespace: ctx.namespace,
  });
  const wanted = statusOf(fresh);
  const expected = wanted === undefined ? undefined : readStatus(wanted);
  if (expected !== undefined && typeof expected !== "string") {
    if (expected.image !== status.image) {
      why.push(`agent image ${status.image ?? "unknown"}, current config: ${expected.image}`);
    }
    if (expected.profile !== status.profile) {
      why.push(`profile ${status.profile ?? "unknown"}, current config: ${expected.profile}`);
    }
  }
  return why;
}

/**
 * The finding for `pod`, or `undefined` when it is as the injector would make it now.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig } from "../config/mod.ts";
 * import { auditPod } from "./audit.ts";
 * const pod = { metadata: { name: "web" }, spec: { containers: [{ name: "app" }] } };
 * const ctx = { config: defaultConfig(), namespace: "shop", sentToWebhook: true };
 * assert.equal(auditPod(pod, ctx)?.problem, "escaped");
 * assert.equal(auditPod(pod, { ...ctx, namespace: "kube-system" }), undefined);
 * ```
 */
export function auditPod(pod: Pod, ctx: PodContext): Finding | undefined {
  const annotations = pod.metadata?.annotations ?? {};
  const base = { namespace: ctx.namespace, pod: pod.metadata?.name ?? "" };
  const owner = ownerOf(pod);
  const finding = (problem: Problem, reason: string): Finding => ({
    problem,
    ...base,
    ...(owner ? { owner } : {}),
    reason,
  });
  const raw = annotations[STATUS_ANNOTATION];
  if (raw !== undefined) {
    const status = readStatus(raw);
    if (typeof status !== "string" && status.sidecar && !hasContainer(pod, status.sidecar)) {
      return finding(
        "escaped",
        `status annotation names agent container ${status.sidecar}, which the pod does not have`,
      );
    }
    const why = drift(pod, raw, ctx);
    // A blocked agent is the most urgent: say it first, with the drift that may explain it.
    const blocked = typeof status === "string" || !status.sidecar
      ? undefined
      : blockedBy(pod, status.sidecar, status.mode);
    if (blocked) {
      return finding("blocked", why.length ? `${blocked}; drifted: ${why.join("; ")}` : blocked);
    }
    return why.length ? finding("drifted", why.join("; ")) : undefined;
  }
  if (Object.hasOwn(annotations, LEGACY_ANNOTATION)) {
    return finding("drifted", `injected by the legacy injector (annotation ${LEGACY_ANNOTATION})`);
  }
  if (!ctx.sentToWebhook) return undefined;
  if (inject(pod, ctx.config, { namespace: ctx.namespace }).decision !== "injected") {
    return undefined;
  }
  const created = pod.metadata?.creationTimestamp;
  if (created && ctx.webhookCreated && Date.parse(created) < Date.parse(ctx.webhookCreated)) {
    return finding(
      "escaped",
      `created ${created}, before the webhook was registered (${ctx.webhookCreated})`,
    );
  }
  return finding(
    "escaped",
    `no ${STATUS_ANNOTATION}: admitted without the webhook (it was down, timed out or failed ` +
      "while failurePolicy is Ignore)",
  );
}
