/**
 * The audit inside the server, every interval: findings become the
 * `escaped_pods` / `drifted_pods` / `blocked_pods` gauges per namespace, and
 * each pod newly found gets one warn line (not one per run).
 * @module
 */
import type { Logger } from "../observe/mod.ts";
import type { Metrics } from "../observe/mod.ts";
import type { Finding, Problem } from "./audit.ts";

/** How often and what to audit. */
export interface PeriodicAuditOptions {
  intervalMs: number;
  /** One audit of the cluster. */
  run: () => Promise<{ findings: Finding[]; scanned: number; notes: string[] }>;
  metrics: Metrics;
  log: Logger;
  /** Monotonic milliseconds, for the duration logged. */
  now?: () => number;
}

/** A running periodic audit. */
export interface PeriodicAudit {
  /** Runs one audit now and updates gauges and logs (used by the timer; a seam for tests). */
  runOnce(): Promise<void>;
  /** Stops the timer; an audit in progress finishes but schedules nothing. */
  stop(): void;
}

const key = (f: Finding) => `${f.problem}\u0000${f.namespace}\u0000${f.pod}`;

/** The warn line for a pod newly found with each problem. */
const MESSAGES: Record<Problem, string> = {
  escaped: "pod without the log agent",
  drifted: "pod with an outdated log agent",
  blocked: "pod whose log agent cannot run",
};

/**
 * Starts auditing at once, then `intervalMs` after each audit ends (audits never overlap).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLogger } from "../observe/mod.ts";
 * import { Metrics } from "../observe/mod.ts";
 * import { startPeriodicAudit } from "./periodic.ts";
 * const metrics = new Metrics();
 * const finding = { problem: "escaped" as const, namespace: "shop", pod: "web", reason: "no status" };
 * const audit = startPeriodicAudit({
 *   intervalMs: 60_000,
 *   run: () => Promise.resolve({ findings: [finding], scanned: 1, notes: [] }),
 *   metrics,
 *   log: createLogger({ write: () => {} }),
 * });
 * await audit.runOnce();
 * audit.stop();
 * assert.match(metrics.render(), /^sidecar_injector_escaped_pods\{namespace="shop"\} 1$/m);
 * ```
 */
export function startPeriodicAudit(options: PeriodicAuditOptions): PeriodicAudit {
  const { metrics, log, intervalMs } = options;
  const now = options.now ?? (() => performance.now());
  let known = new Set<string>();
  /** Namespaces ever reported: they stay at 0 once clean rather than vanishing. */
  const reported = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const update = (findings: Finding[]) => {
    const counts: Record<Problem, Map<string, number>> = {
      escaped: new Map(),
      drifted: new Map(),
      blocked: new Map(),
    };
    for (const f of findings) {
      reported.add(f.namespace);
      counts[f.problem].set(f.namespace, (counts[f.problem].get(f.namespace) ?? 0) + 1);
    }
    for (const ns of reported) {
      metrics.escapedPods.set({ namespace: ns }, counts.escaped.get(ns) ?? 0);
      metrics.driftedPods.set({ namespace: ns }, counts.drifted.get(ns) ?? 0);
      metrics.blockedPods.set({ namespace: ns }, counts.blocked.get(ns) ?? 0);
    }
    const next = new Set<string>();
    for (const f of findings) {
      const k = key(f);
      next.add(k);
      if (known.has(k)) continue;
      log.warn(MESSAGES[f.problem], {
        namespace: f.namespace,
        pod: f.pod,
        ...(f.owner ? { owner: f.owner } : {}),
        reason: f.reason,
      });
    }
    known = next;
  };

  const runOnce = async () => {
    const t0 = now();
    try {
      const { findings, scanned, notes } = await options.run();
      update(findings);
      metrics.auditRuns.inc({ result: "ok" });
      for (const note of notes) log.warn("audit note", { note });
      log.info("audit done", {
        scanned,
        escaped: findings.filter((f) => f.problem === "escaped").length,
        drifted: findings.filter((f) => f.problem === "drifted").length,
        blocked: findings.filter((f) => f.problem === "blocked").length,
        durationMs: Math.round(now() - t0),
      });
    } catch (err) {
      metrics.auditRuns.inc({ result: "error" });
      log.error("audit failed; gauges keep the last result", {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  };

  const loop = async () => {
    await runOnce();
    if (!stopped) timer = setTimeout(loop, intervalMs);
  };
  timer = setTimeout(loop, 0);

  return {
    runOnce,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
