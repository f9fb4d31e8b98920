/**
 * wrk: making sure it is there, running it, and reading its report.
 * @module
 */
import { exec, out, REPO_ROOT } from "../testing/process.ts";

/** Where to send load: a port on loopback, or on `hostname` (a pod's IP on the real node). */
export interface WrkTarget {
  port: number;
  hostname?: string;
}

/** What one wrk run measured. */
export interface WrkResult {
  connections: number;
  rps: number;
  latencyAvgMs: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  socketErrors: string;
  /** Responses by status, when run with the counting script (`statuses: true`). */
  statuses?: Record<string, number>;
}

/** True when wrk is on PATH; with `install` (the bench's `--install`), apt-get installs it first. */
export async function ensureWrk(install: boolean): Promise<boolean> {
  if ((await exec("bash", ["-c", "command -v wrk"])).code === 0) return true;
  if (!install) return false;
  out("installing wrk (apt-get, --install) ...");
  const r = await exec("bash", ["-c", "apt-get update -qq && apt-get install -y -qq wrk"], {
    env: { DEBIAN_FRONTEND: "noninteractive" },
    timeoutMs: 600_000,
  });
  if (r.code !== 0) throw new Error(`apt-get install wrk failed:\n${r.stderr}`);
  return true;
}

/** What to say when wrk is missing. */
export const WRK_MISSING = [
  "wrk is not installed. Install it and run again:",
  "  apt-get install -y wrk (Debian/Ubuntu; or `deno task bench --install` as root),",
  "  brew install wrk (macOS), or build https://github.com/wg/wrk.",
].join("\n");

/** wrk's `1.23ms` / `450.12us` / `1.02s` in milliseconds. */
export function toMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000;
}

/**
 * Reads wrk's `--latency` report (and the status lines `bench/storm.lua` prints).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseWrk } from "./wrk.ts";
 * const r = parseWrk(16, [
 *   "    Latency     1.20ms  300.00us   9.00ms   80.00%",
 *   "     50%    1.10ms",
 *   "     99%    3.50ms",
 *   "  12000 requests in 5.00s, 20.00MB read",
 *   "  Non-2xx or 3xx responses: 3",
 *   "Requests/sec:   2400.00",
 *   "status 200: 11997",
 *   "status 503: 3",
 * ].join("\n"));
 * assert.deepEqual([r.rps, r.p50Ms, r.p99Ms, r.requests, r.non2xx], [2400, 1.1, 3.5, 12000, 3]);
 * assert.deepEqual(r.statuses, { "200": 11997, "503": 3 });
 * ```
 */
export function parseWrk(connections: number, o: string): WrkResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(o)?.[1] ?? NaN);
  if (!Number.isFinite(rps)) throw new Error(`cannot parse wrk output:\n${o}`);
  const statuses: Record<string, number> = {};
  for (const m of o.matchAll(/^status (\d+): (\d+)$/gm)) statuses[m[1]!] = Number(m[2]);
  return {
    connections,
    rps,
    latencyAvgMs: toMs(/Latency\s+(\S+)/.exec(o)?.[1] ?? ""),
    p50Ms: toMs(/^\s+50%\s+(\S+)/m.exec(o)?.[1] ?? ""),
    p99Ms: toMs(/^\s+99%\s+(\S+)/m.exec(o)?.[1] ?? ""),
    requests: Number(/(\d+) requests in/.exec(o)?.[1] ?? NaN),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(o)?.[1] ?? 0),
    socketErrors: /Socket errors:.*$/m.exec(o)?.[0] ?? "",
    ...(Object.keys(statuses).length ? { statuses } : {}),
  };
}

/**
 * `wrk -t2 -c<connections> --latency` POSTing `bodyFile` to `/mutate` over TLS;
 * `statuses` counts responses by status (bench/storm.lua, slower: for storms).
 */
export async function wrk(
  t: WrkTarget,
  bodyFile: string,
  o: { seconds: number; connections?: number; statuses?: boolean },
): Promise<WrkResult> {
  const connections = o.connections ?? 16;
  const script = o.statuses ? "bench/storm.lua" : "bench/post.lua";
  const r = await exec("wrk", [
    "-t2",
    `-c${connections}`,
    `-d${o.seconds}s`,
    "--timeout",
    "30s",
    "--latency",
    "-s",
    `${REPO_ROOT}/${script}`,
    `https://${t.hostname ?? "127.0.0.1"}:${t.port}/mutate`,
  ], { env: { BENCH_BODY: bodyFile }, timeoutMs: (o.seconds + 60) * 1000 });
  if (r.code !== 0) throw new Error(`wrk failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return parseWrk(connections, r.stdout);
}
