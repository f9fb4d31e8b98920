/**
 * The bench's report: medians over rounds, fixed-width tables, the results file.
 * @module
 */
import { median } from "../testing/http1.ts";
import { out, REPO_ROOT } from "../testing/process.ts";
import type { LatencyStats, PacedResult } from "./load.ts";
import type { ProfileSummary } from "./profile.ts";
import type { StormLevel } from "./storm.ts";
import type { WrkResult } from "./wrk.ts";

/** `n` with `d` decimals, or `n/a`. */
export const f = (n: number | undefined, d = 2): string =>
  n !== undefined && Number.isFinite(n) ? n.toFixed(d) : "n/a";

/** `a / b` with two decimals, or `n/a`. */
export const ratio = (a: number | undefined, b: number | undefined): string =>
  a !== undefined && b !== undefined && Number.isFinite(a / b) ? (a / b).toFixed(2) : "n/a";

/**
 * A table: the first row is the header; the first column is left-aligned, the others right.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { table } from "./report.ts";
 * assert.equal(table([["a", "b"], ["xx", "1"]]), "a   b\n--  -\nxx  1");
 * ```
 */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r, j) => {
    const line = r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))
      .join("  ");
    return j === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
  }).join("\n");
}

/** Everything measured on one server, one entry per round. */
export interface Runs {
  wrkRealistic: WrkResult[];
  /** CPU time of the server per review during the realistic wrk run, µs. */
  cpuUsPerReview: number[];
  wrkSmall: WrkResult[];
  paced: PacedResult[];
  sequential: LatencyStats[];
}

/** No rounds yet. */
export function emptyRuns(): Runs {
  return { wrkRealistic: [], cpuUsPerReview: [], wrkSmall: [], paced: [], sequential: [] };
}

const med = <T>(xs: T[], pick: (x: T) => number) => median(xs.map(pick));
const sum = <T>(xs: T[], pick: (x: T) => number) => xs.reduce((a, x) => a + pick(x), 0);

/** wrk figures of one server and one body, medians over the rounds. */
export interface WrkSummary {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
}

/** A server's figures, medians over the rounds (error counts summed). */
export interface Summary {
  wrkRealistic: WrkSummary;
  cpuUsPerReview: number;
  wrkSmall: WrkSummary;
  paced: {
    p50Ms: number;
    p99Ms: number;
    p999Ms: number;
    serviceP99Ms: number;
    sendLateP99Ms: number;
    errors: number;
  };
  sequential: { p50Ms: number; p99Ms: number; non2xx: number };
}

function wrkSummary(xs: WrkResult[]): WrkSummary {
  return {
    rps: med(xs, (x) => x.rps),
    p50Ms: med(xs, (x) => x.p50Ms),
    p99Ms: med(xs, (x) => x.p99Ms),
    non2xx: sum(xs, (x) => x.non2xx),
  };
}

/** Medians over the rounds (error counts summed). */
export function summarizeRuns(r: Runs): Summary {
  return {
    wrkRealistic: wrkSummary(r.wrkRealistic),
    cpuUsPerReview: median(r.cpuUsPerReview),
    wrkSmall: wrkSummary(r.wrkSmall),
    paced: {
      p50Ms: med(r.paced, (x) => x.p50),
      p99Ms: med(r.paced, (x) => x.p99),
      p999Ms: med(r.paced, (x) => x.p999),
      serviceP99Ms: med(r.paced, (x) => x.service.p99),
      sendLateP99Ms: med(r.paced, (x) => x.sendLateP99),
      errors: sum(r.paced, (x) => x.errors + x.non2xx),
    },
    sequential: {
      p50Ms: med(r.sequential, (x) => x.p50),
      p99Ms: med(r.sequential, (x) => x.p99),
      non2xx: sum(r.sequential, (x) => x.non2xx),
    },
  };
}

/** Machine facts for the results file. */
export function machine(cpuinfo: string): Record<string, unknown> {
  return {
    nproc: navigator.hardwareConcurrency,
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown",
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    kernel: Deno.osRelease(),
    loadavg: Deno.loadavg(),
  };
}

/** Writes `result` to bench/results/<date>[.quick].json; returns the path from the repo root. */
export async function writeResult(result: unknown, date: Date, quick: boolean): Promise<string> {
  const dir = `${REPO_ROOT}/bench/results`;
  await Deno.mkdir(dir, { recursive: true });
  const name = `bench/results/${date.toISOString().slice(0, 10)}${quick ? ".quick" : ""}.json`;
  await Deno.writeTextFile(`${REPO_ROOT}/${name}`, JSON.stringify(result, null, 2) + "\n");
  out(`\nwrote ${name}`);
  return name;
}

const mb = (kib: number | undefined) => f((kib ?? NaN) / 1024, 1);

/** The servers side by side; the first column is the webhook, the others compared with it. */
export function printServers(
  servers: readonly (readonly [string, Summary])[],
  rss: {
    idle: readonly (number | undefined)[];
    after: readonly ({ rss: number; hwm: number } | undefined)[];
  },
  sequentialCount: number,
): void {
  const sv = servers[0]![1];
  const row = (label: string, pick: (x: Summary) => string) => [
    label,
    ...servers.map(([, x]) => pick(x)),
  ];
  out("");
  out(table([
    ["median of rounds", ...servers.map(([name]) => name)],
    row("wrk realistic: req/s", (x) => f(x.wrkRealistic.rps, 0)),
    row("  server / this", (x) => ratio(sv.wrkRealistic.rps, x.wrkRealistic.rps)),
    row("  CPU per review, µs (all threads)", (x) => f(x.cpuUsPerReview, 0)),
    row(
      "wrk realistic: p50 / p99 ms",
      (x) => `${f(x.wrkRealistic.p50Ms)} / ${f(x.wrkRealistic.p99Ms)}`,
    ),
    row("wrk small: req/s", (x) => f(x.wrkSmall.rps, 0)),
    row("  server / this", (x) => ratio(sv.wrkSmall.rps, x.wrkSmall.rps)),
    row(
      "1,000 req/s: p50 / p99 / p99.9 ms",
      (x) => `${f(x.paced.p50Ms)} / ${f(x.paced.p99Ms)} / ${f(x.paced.p999Ms)}`,
    ),
    row("1,000 req/s: p99 from the write (service)", (x) => f(x.paced.serviceP99Ms)),
    row("1,000 req/s: generator late p99 ms", (x) => f(x.paced.sendLateP99Ms)),
    row(
      `sequential x${sequentialCount}: p50 / p99 ms`,
      (x) => `${f(x.sequential.p50Ms, 3)} / ${f(x.sequential.p99Ms, 3)}`,
    ),
    [
      "RSS idle / after load / peak MB",
      ...servers.map((_, i) =>
        `${f(rss.idle[i], 1)} / ${mb(rss.after[i]?.rss)} / ${mb(rss.after[i]?.hwm)}`
      ),
    ],
  ]));
}

/** The large-pod storm, one row per concurrency. */
export function printStorm(
  levels: readonly StormLevel[],
  floor: readonly StormLevel[],
  limitMiB: number,
): void {
  out("");
  out(table([
    [
      "large-pod storm (server)",
      "req/s",
      "p99 ms",
      "peak RSS MiB",
      "budget 503",
      "other non-200",
      "node:https floor: req/s, peak MiB",
    ],
    ...levels.map((l, i) => [
      `${l.connections} connections`,
      f(l.rps, 0),
      f(l.p99Ms),
      f(l.peakMiB, 1),
      String(l.budget503),
      String(l.unexpected),
      floor[i] ? `${f(floor[i].rps, 0)}, ${f(floor[i].peakMiB, 1)}` : "-",
    ]),
  ]));
  out(`Deployment memory limit: ${limitMiB} MiB`);
}

/** A CPU profile: time by area, then the top functions by self time. */
export function printProfile(p: ProfileSummary): void {
  out(`\nCPU profile (${p.file}), ${f(p.totalMs, 0)} ms sampled, wrk ${f(p.wrk.rps, 0)} req/s:`);
  out(
    table([["area", "self ms", "%"], ...p.byArea.map((r) => [r.fn, f(r.selfMs, 0), f(r.pct, 1)])]),
  );
  out("");
  out(
    table([
      ["top self time", "self ms", "%"],
      ...p.rows.map((r) => [r.fn, f(r.selfMs, 0), f(r.pct, 1)]),
    ]),
  );
}
