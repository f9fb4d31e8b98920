import assert from "node:assert/strict";
import { memoryLogger } from "../../testing/memory_logger.ts";
import { Metrics } from "../observe/mod.ts";
import type { Finding } from "./audit.ts";
import { startPeriodicAudit } from "./periodic.ts";

const esc = (namespace: string, pod: string): Finding => ({
  problem: "escaped",
  namespace,
  pod,
  reason: "no status",
});
const drift = (namespace: string, pod: string): Finding => ({
  problem: "drifted",
  namespace,
  pod,
  owner: "ReplicaSet/web-1",
  reason: "image a, current config: b",
});

function sample(metrics: Metrics, name: string, namespace: string): number | undefined {
  const m = new RegExp(`^${name}\\{namespace="${namespace}"\\} (\\d+)$`, "m").exec(
    metrics.render(),
  );
  return m ? Number(m[1]) : undefined;
}

Deno.test("periodic audit: gauges per namespace, one warn per newly found pod, errors keep gauges", async () => {
  const metrics = new Metrics();
  const log = memoryLogger();
  const results: Array<Finding[] | Error> = [
    [esc("shop", "a"), esc("shop", "b"), drift("blog", "c")],
    [esc("shop", "a"), esc("shop", "b"), drift("blog", "c")],
    [esc("shop", "a")],
    new Error("403 forbidden"),
    [esc("shop", "a"), esc("shop", "b")],
  ];
  const audit = startPeriodicAudit({
    intervalMs: 3_600_000,
    metrics,
    log,
    run: () => {
      const next = results.shift();
      if (next instanceof Error) return Promise.reject(next);
      return Promise.resolve({ findings: next ?? [], scanned: 10, notes: [] });
    },
  });
  audit.stop(); // the test drives each run itself
  const warns = () => log.lines.filter((l) => l.level === "warn");

  await audit.runOnce();
  assert.equal(sample(metrics, "sidecar_injector_escaped_pods", "shop"), 2);
  assert.equal(sample(metrics, "sidecar_injector_escaped_pods", "blog"), 0);
  assert.equal(sample(metrics, "sidecar_injector_drifted_pods", "blog"), 1);
  assert.deepEqual(warns().map((l) => [l.msg, l.namespace, l.pod]), [
    ["pod without the log agent", "shop", "a"],
    ["pod without the log agent", "shop", "b"],
    ["pod with an outdated log agent", "blog", "c"],
  ]);
  assert.equal(warns()[2]?.owner, "ReplicaSet/web-1");
  assert.equal(warns()[2]?.reason, "image a, current config: b");

  await audit.runOnce();
  assert.equal(warns().length, 3, "the same pods are not logged again");

  await audit.runOnce();
  assert.equal(sample(metrics, "sidecar_injector_escaped_pods", "shop"), 1);
  assert.equal(
    sample(metrics, "sidecar_injector_drifted_pods", "blog"),
    0,
    "clean namespaces stay at 0",
  );

  await audit.runOnce();
  assert.equal(sample(metrics, "sidecar_injector_escaped_pods", "shop"), 1, "kept on error");
  assert.match(metrics.render(), /^sidecar_injector_audit_runs_total\{result="error"\} 1$/m);
  assert.equal(log.lines.at(-1)?.level, "error");
  assert.equal(log.lines.at(-1)?.error, "403 forbidden");

  await audit.runOnce();
  assert.deepEqual(warns().slice(3).map((l) => l.pod), ["b"], "a pod found again is logged again");
  assert.match(metrics.render(), /^sidecar_injector_audit_runs_total\{result="ok"\} 4$/m);
  const done = log.lines.filter((l) => l.msg === "audit done").at(-1);
  assert.deepEqual([done?.scanned, done?.escaped, done?.drifted], [10, 2, 0]);
});

Deno.test("periodic audit: runs at once, then every interval after the previous run ends", async () => {
  let runs = 0;
  const audit = startPeriodicAudit({
    intervalMs: 50,
    metrics: new Metrics(),
    log: memoryLogger(),
    run: () => {
      runs++;
      return Promise.resolve({ findings: [], scanned: 0, notes: [] });
    },
  });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(runs, 1, "first run at start, before the first interval");
  const deadline = Date.now() + 5_000;
  while (runs < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  audit.stop();
  assert.ok(runs >= 3, `${runs} runs: the timer keeps going`);
  const after = runs;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(runs, after, "nothing after stop()");
});

Deno.test("periodic audit: blocked pods have their own gauge and warn line", async () => {
  const metrics = new Metrics();
  const log = memoryLogger();
  const blocked: Finding = {
    problem: "blocked",
    namespace: "shop",
    pod: "web-1",
    owner: "ReplicaSet/web-5d4",
    reason: "agent container fluentd waiting: ImagePullBackOff",
  };
  const results = [[blocked, esc("shop", "a")], []];
  const audit = startPeriodicAudit({
    intervalMs: 3_600_000,
    metrics,
    log,
    run: () => Promise.resolve({ findings: results.shift() ?? [], scanned: 2, notes: [] }),
  });
  audit.stop();
  await audit.runOnce();
  assert.equal(sample(metrics, "sidecar_injector_blocked_pods", "shop"), 1);
  assert.equal(sample(metrics, "sidecar_injector_escaped_pods", "shop"), 1);
  const warn = log.lines.find((l) => l.msg === "pod whose log agent cannot run");
  assert.equal(warn?.level, "warn");
  assert.equal(warn?.reason, "agent container fluentd waiting: ImagePullBackOff");
  assert.equal(warn?.owner, "ReplicaSet/web-5d4");
  assert.equal(log.lines.find((l) => l.msg === "audit done")?.blocked, 1);
  await audit.runOnce();
  assert.equal(sample(metrics, "sidecar_injector_blocked_pods", "shop"), 0, "fixed: back to 0");
});
