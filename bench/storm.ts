/**
 * The large-pod storm: ~390 KB reviews (a 250 KB annotation, 10 containers x
 * 60 env vars) at 16, 64 and 256 concurrent connections, each level on a
 * fresh server so its peak resident memory (VmHWM) is its own.
 * @module
 */
import { memoryKiB, terminate } from "../testing/process.ts";
import { buildRequest } from "../testing/http1.ts";
import { connect, exchange, type Target } from "./load.ts";
import { type ServerName, start } from "./servers.ts";
import { wrk, type WrkResult } from "./wrk.ts";

/** One storm level. */
export interface StormLevel extends WrkResult {
  /** Peak resident memory of the server over the level, MiB. */
  peakMiB: number;
  /** 503s of the memory budget (the server's `errors_total{reason="memory_budget"}`). */
  budget503: number;
  /** Every other non-200 answer: must be 0. */
  unexpected: number;
}

/** The server's count of memory-budget refusals, from `/metrics`. */
async function budgetRefusals(t: Target): Promise<number> {
  const conn = await connect(t);
  try {
    const res = await exchange(conn, buildRequest("GET", "/metrics", `127.0.0.1:${t.port}`));
    return Number(/errors_total\{reason="memory_budget"\} (\d+)/.exec(res.body)?.[1] ?? 0);
  } finally {
    conn.close();
  }
}

/** The concurrencies of the storm. */
export const STORM_CONNECTIONS = [16, 64, 256] as const;

/**
 * Runs one level per entry of {@link STORM_CONNECTIONS} against fresh servers.
 * The node:https floor runs it too: what the stack alone (TLS, HTTP, reading
 * and parsing the bodies, same V8 flags and environment) costs at each level.
 */
export async function storm(
  caCert: string,
  bodyFile: string,
  seconds: number,
  name: ServerName = "server",
): Promise<StormLevel[]> {
  const levels: StormLevel[] = [];
  for (const connections of STORM_CONNECTIONS) {
    const srv = await start(name, caCert, { log: `.tmp/bench-storm-${name}-${connections}.log` });
    let w: WrkResult;
    let peak: number;
    let budget503: number;
    try {
      w = await wrk(srv.target, bodyFile, { seconds, connections, statuses: true });
      peak = (await memoryKiB(srv.proc.child.pid)).hwm / 1024;
      budget503 = await budgetRefusals(srv.target);
    } finally {
      await terminate(srv.proc);
    }
    const answered = Object.values(w.statuses ?? {}).reduce((a, n) => a + n, 0);
    const ok = w.statuses?.["200"] ?? 0;
    levels.push({ ...w, peakMiB: peak, budget503, unexpected: answered - ok - budget503 });
  }
  return levels;
}
