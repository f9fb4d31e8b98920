import assert from "node:assert/strict";
import { DURATION_BUCKETS, Metrics } from "./metrics.ts";

interface Family {
  type: string;
  help: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/** A strict parser for the subset of the Prometheus text format (0.0.4) the server writes. */
function parse(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: string | undefined;
  assert.ok(text.endsWith("\n"), "ends with a newline");
  for (const line of text.slice(0, -1).split("\n")) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (help) {
      current = help[1] ?? "";
      assert.ok(!families.has(current), `family ${current} declared once`);
      families.set(current, { type: "", help: help[2] ?? "", samples: [] });
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (type) {
      assert.equal(type[1], current, "TYPE follows its HELP");
      families.get(current ?? "")!.type = type[2] ?? "";
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(line);
    assert.ok(sample, `valid sample line: ${JSON.stringify(line)}`);
    const name = sample[1] ?? "";
    assert.ok(current && name.startsWith(current), `${name} belongs to ${current}`);
    const labels: Record<string, string> = {};
    for (const m of (sample[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1] ?? ""] = (m[2] ?? "").replaceAll('\\"', '"').replaceAll("\\n", "\n").replaceAll(
        "\\\\",
        "\\",
      );
    }
    families.get(current)!.samples.push({ name, labels, value: Number(sample[3]) });
  }
  return families;
}

Deno.test("Metrics.render() is valid Prometheus text with consistent counters and histogram", () => {
  const m = new Metrics({ version: "0.1.0", deno: "2.9.6" });
  m.admissions.inc({ decision: "injected", profile: "fluentd" });
  m.admissions.inc({ decision: "injected", profile: "fluentd" });
  m.admissions.inc({ decision: "skipped", profile: "" });
  m.errors.inc({ reason: "http_400" });
  m.configReloads.inc({ result: "rejected" });
  m.certReloads.inc({ result: "ok" });
  for (const s of [0.00005, 0.0002, 0.0002, 0.003, 2]) m.duration.observe(s);

  const families = parse(m.render());
  const admissions = families.get("sidecar_injector_admissions_total");
  assert.equal(admissions?.type, "counter");
  assert.deepEqual(admissions?.samples.map((s) => [s.labels.decision, s.labels.profile, s.value]), [
    ["injected", "fluentd", 2],
    ["skipped", "", 1],
  ]);
  assert.equal(families.get("sidecar_injector_errors_total")?.samples[0]?.value, 1);
  assert.equal(
    families.get("sidecar_injector_config_reloads_total")?.samples[0]?.labels.result,
    "rejected",
  );
  assert.equal(families.get("sidecar_injector_cert_reloads_total")?.samples[0]?.value, 1);
  assert.deepEqual(families.get("sidecar_injector_build_info")?.samples[0]?.labels, {
    version: "0.1.0",
    deno: "2.9.6",
  });

  const h = families.get("sidecar_injector_request_duration_seconds");
  assert.equal(h?.type, "histogram");
  const buckets = h?.samples.filter((s) => s.name.endsWith("_bucket")) ?? [];
  assert.deepEqual(buckets.map((b) => b.labels.le), [...DURATION_BUCKETS.map(String), "+Inf"]);
  for (let i = 1; i < buckets.length; i++) {
    assert.ok((buckets[i]?.value ?? 0) >= (buckets[i - 1]?.value ?? 0), "buckets are cumulative");
  }
  assert.equal(buckets[0]?.value, 1, "0.05 ms falls in the 0.1 ms bucket");
  assert.equal(buckets.find((b) => b.labels.le === "0.00025")?.value, 3);
  assert.equal(buckets.at(-1)?.value, 5);
  assert.equal(h?.samples.find((s) => s.name.endsWith("_count"))?.value, 5);
  const sum = h?.samples.find((s) => s.name.endsWith("_sum"))?.value ?? 0;
  assert.ok(Math.abs(sum - 2.00345) < 1e-9, `sum ${sum}`);
});

Deno.test("Metrics.render() escapes label values", () => {
  const m = new Metrics();
  m.errors.inc({ reason: 'a"b\\c\nd' });
  const families = parse(m.render());
  assert.equal(
    families.get("sidecar_injector_errors_total")?.samples[0]?.labels.reason,
    'a"b\\c\nd',
  );
});
