/**
 * A small Prometheus text exposition: counters, gauges and one latency
 * histogram. Label values are known in advance or bounded (profiles,
 * decisions, namespaces), so no cardinality guard is needed.
 * @module
 */

/** Seconds; admission work is sub-millisecond, so the low buckets matter. */
export const DURATION_BUCKETS: readonly number[] = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.5,
  1,
];

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function renderLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** A cheap key for a label set: rendering (escapes, joins) happens once per distinct set. */
function labelKey(labels: Labels): string {
  let key = "";
  for (const k in labels) key += `${k}\u0001${labels[k]}\u0000`;
  return key;
}

/** Values by label set, shared by counters and gauges. */
class Series {
  protected readonly series = new Map<string, { labels: string; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
  ) {}
  protected entry(labels: Labels): { labels: string; value: number } {
    const key = labelKey(labels);
    let e = this.series.get(key);
    if (!e) this.series.set(key, e = { labels: renderLabels(labels), value: 0 });
    return e;
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} ${this.type}\n`;
    for (const { labels, value } of this.series.values()) out += `${this.name}${labels} ${value}\n`;
    return out;
  }
}

class Counter extends Series {
  constructor(name: string, help: string) {
    super(name, help, "counter");
  }
  inc(labels: Labels = {}, by = 1): void {
    this.entry(labels).value += by;
  }
}

class Gauge extends Series {
  constructor(name: string, help: string) {
    super(name, help, "gauge");
  }
  set(labels: Labels, value: number): void {
    this.entry(labels).value = value;
  }
}

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (seconds <= this.buckets[i]!) {
        this.counts[i] = (this.counts[i] ?? 0) + 1;
        return;
      }
    }
  }
  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    let cumulative = 0;
    this.buckets.forEach((b, i) => {
      cumulative += this.counts[i] ?? 0;
      out += `${this.name}_bucket{le="${b}"} ${cumulative}\n`;
    });
    out += `${this.name}_bucket{le="+Inf"} ${this.count}\n`;
    out += `${this.name}_sum ${this.sum}\n${this.name}_count ${this.count}\n`;
    return out;
  }
}

/** The injector's metrics. */
export class Metrics {
  readonly admissions = new Counter(
    "sidecar_injector_admissions_total",
    "Admission reviews answered, by decision and profile.",
  );
  readonly skipped = new Counter(
    "sidecar_injector_skipped_total",
    "Pod creates answered without injecting, by reason (windows, opted_out, run_to_completion, ...).",
  );
  readonly errors = new Counter(
    "sidecar_injector_errors_total",
    "Requests that failed, by reason.",
  );
  readonly duration = new Histogram(
    "sidecar_injector_request_duration_seconds",
    "Time to answer /mutate, from handler entry to response.",
    DURATION_BUCKETS,
  );
  readonly configReloads = new Counter(
    "sidecar_injector_config_reloads_total",
    "Config file reloads, by result.",
  );
  readonly certReloads = new Counter(
    "sidecar_injector_cert_reloads_total",
    "TLS certificate reloads, by result.",
  );
  readonly escapedPods = new Gauge(
    "sidecar_injector_escaped_pods",
    "Pods the injector should have given the agent and did not, by namespace (last audit).",
  );
  readonly driftedPods = new Gauge(
    "sidecar_injector_drifted_pods",
    "Pods whose agent is from an older injector or another image than the config, by namespace (last audit).",
  );
  readonly blockedPods = new Gauge(
    "sidecar_injector_blocked_pods",
    "Pods whose agent cannot run (image pull failing, crash loop, restarting repeatedly), by namespace (last audit).",
  );
  readonly auditRuns = new Counter(
    "sidecar_injector_audit_runs_total",
    "In-server audits of the cluster's pods, by result.",
  );
  readonly certExpiry = new Gauge(
    "sidecar_injector_cert_expiry_timestamp_seconds",
    "Expiry of the serving certificate (leaf), seconds since the epoch.",
  );
  readonly #buildInfo: Labels;

  constructor(buildInfo: Labels = {}) {
    this.#buildInfo = buildInfo;
  }

  /**
   * Renders all metrics in the Prometheus text format (version 0.0.4).
   *
   * @example Usage
   * ```ts
   * import assert from "node:assert/strict";
   * import { Metrics } from "./metrics.ts";
   * const m = new Metrics({ version: "0.1.0" });
   * m.admissions.inc({ decision: "injected", profile: "fluentd" });
   * assert.match(m.render(), /^sidecar_injector_admissions_total\{decision="injected",profile="fluentd"\} 1$/m);
   * ```
   */
  render(): string {
    return [
      this.admissions.render(),
      this.skipped.render(),
      this.errors.render(),
      this.duration.render(),
      this.configReloads.render(),
      this.certReloads.render(),
      this.certExpiry.render(),
      this.escapedPods.render(),
      this.driftedPods.render(),
      this.blockedPods.render(),
      this.auditRuns.render(),
      "# HELP sidecar_injector_build_info Build information.\n# TYPE sidecar_injector_build_info gauge\n" +
      `sidecar_injector_build_info${renderLabels(this.#buildInfo)} 1\n`,
    ].join("");
  }
}
