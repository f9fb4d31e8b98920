/**
 * The kubelet's side of an agent container's lifecycle, imitated: its HTTP
 * probes (startup, liveness) with their period, timeout and thresholds, and
 * its stop: the preStop hook, SIGTERM, SIGKILL at the end of the grace period.
 * @module
 */
import type { Probe } from "kubernetes-types/core/v1.d.ts";
import type { AgentProcess } from "./kubelet.ts";

/** One HTTP probe as the kubelet makes it: GET, success on 200-399 within the timeout. */
export async function probeOnce(run: AgentProcess, probe: Probe): Promise<boolean> {
  const get = probe.httpGet;
  if (!get) throw new Error("only httpGet probes are imitated");
  const named = run.container.ports?.find((p) => p.name === get.port);
  if (get.port !== undefined && typeof get.port === "string" && !named) {
    throw new Error(`probe names port ${get.port}, which the container does not declare`);
  }
  if (run.port === undefined) throw new Error("the container has no metrics port");
  try {
    const res = await fetch(`http://127.0.0.1:${run.port}${get.path ?? "/"}`, {
      signal: AbortSignal.timeout((probe.timeoutSeconds ?? 1) * 1000),
      headers: { "user-agent": "kube-probe/1.37", connection: "close" },
    });
    await res.body?.cancel();
    return res.status >= 200 && res.status < 400;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the startupProbe until it succeeds (returns ms since `since`) or fails
 * `failureThreshold` times in a row (throws: the kubelet would restart the container).
 */
export async function started(run: AgentProcess, since = performance.now()): Promise<number> {
  const probe = run.container.startupProbe;
  if (!probe) throw new Error("the container has no startupProbe");
  const period = (probe.periodSeconds ?? 10) * 1000;
  let failures = 0;
  await sleep((probe.initialDelaySeconds ?? 0) * 1000);
  for (;;) {
    const t0 = performance.now();
    if (await probeOnce(run, probe)) return performance.now() - since;
    if (run.done) throw new Error(`agent exited before it started\n${run.stderr.slice(-2000)}`);
    if (++failures >= (probe.failureThreshold ?? 3)) {
      throw new Error(`startupProbe failed ${failures} times\n${run.stderr.slice(-2000)}`);
    }
    await sleep(Math.max(0, period - (performance.now() - t0)));
  }
}

/** A livenessProbe running in the background, as the kubelet runs it. */
export class Liveness {
  /** Every probe's result, with `performance.now()` when it was decided. */
  readonly results: Array<{ at: number; ok: boolean }> = [];
  /** When the probe turned red (`failureThreshold` failures in a row); the kubelet would restart then. */
  redAt: number | undefined;
  #stopped = false;
  readonly #loop: Promise<void>;

  constructor(readonly run: AgentProcess) {
    const probe = run.container.livenessProbe;
    if (!probe) throw new Error("the container has no livenessProbe");
    this.#loop = this.#run(probe);
  }

  async #run(probe: Probe): Promise<void> {
    const period = (probe.periodSeconds ?? 10) * 1000;
    const threshold = probe.failureThreshold ?? 3;
    let failures = 0;
    await sleep((probe.initialDelaySeconds ?? 0) * 1000);
    while (!this.#stopped && this.redAt === undefined) {
      const t0 = performance.now();
      const ok = await probeOnce(this.run, probe);
      this.results.push({ at: performance.now(), ok });
      failures = ok ? 0 : failures + 1;
      if (failures >= threshold) this.redAt = performance.now();
      // The kubelet's probe ticker keeps its period whatever a probe takes.
      const wait = period - (performance.now() - t0);
      for (let waited = 0; waited < wait && !this.#stopped; waited += 100) await sleep(100);
    }
  }

  /** Failed probes so far. */
  get failures(): number {
    return this.results.filter((r) => !r.ok).length;
  }

  /** Stops probing. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
  }
}

/** The pod's default `terminationGracePeriodSeconds`. */
export const GRACE_MS = 30_000;

/**
 * Stops the container as the kubelet does: its preStop hook (a sleep action,
 * or an exec in the container's mount namespace), then SIGTERM, then SIGKILL
 * when the grace period, which the hook's time counts against, runs out.
 */
export async function kubeletStop(run: AgentProcess): Promise<Deno.CommandStatus> {
  const t0 = performance.now();
  const hook = run.container.lifecycle?.preStop;
  const killer = setTimeout(() => run.oomKill(), GRACE_MS);
  try {
    if (hook?.sleep) {
      await sleep(hook.sleep.seconds * 1000);
    } else if (hook?.exec?.command) {
      await new Deno.Command("nsenter", {
        args: [`--target=${run.pid}`, "--mount", "--", ...hook.exec.command],
        stdout: "null",
        stderr: "null",
      }).output();
    } else if (hook) {
      throw new Error(`preStop ${JSON.stringify(hook)} is not imitated`);
    }
    if (performance.now() - t0 < GRACE_MS) run.signal("SIGTERM");
    return await run.wait();
  } finally {
    clearTimeout(killer);
  }
}
