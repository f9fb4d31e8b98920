/**
 * The two latency loads of the benchmark, on the shared raw HTTP/1.1 TLS
 * client (testing/http1.ts; ALPN `http/1.1`, never HTTP/2 — as
 * kube-apiserver talks to a webhook behind a Service): a fixed-rate one
 * (wrk2-style, latency counted from the scheduled send time) and a sequential one.
 * @module
 */

import { setImmediate } from "node:timers";
import { Http1Connection, type Http1Response, percentile } from "../testing/http1.ts";

/** Where to connect. */
export interface Target {
  hostname: string;
  port: number;
  /** PEM of the CA that signed the server certificate. */
  caCert: string;
}

/** Connects to `t` (see {@link Http1Connection.connect}). */
export function connect(t: Target): Promise<Http1Connection> {
  return Http1Connection.connect(t.port, t.caCert, t.hostname);
}

/** Sends `request` and reads its response; closes the connection when the server says `connection: close`. */
export async function exchange(conn: Http1Connection, request: Uint8Array): Promise<Http1Response> {
  const res = await conn.send(request);
  if (res.headers.get("connection")?.toLowerCase() === "close") conn.close();
  return res;
}

/** Latency percentiles in milliseconds. */
export interface LatencyStats {
  count: number;
  errors: number;
  non2xx: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

function stats(latencies: number[], errors: number, non2xx: number): LatencyStats {
  const s = latencies.sort((a, b) => a - b);
  return {
    count: s.length,
    errors,
    non2xx,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    p999: percentile(s, 99.9),
    max: s[s.length - 1] ?? NaN,
    mean: s.reduce((a, b) => a + b, 0) / (s.length || 1),
  };
}

/**
 * Yields to the event loop after its I/O poll (node's check phase), without a
 * timer's ~1 ms granularity. A MessageChannel ping-pong starved socket reads
 * here (service times of 5-10 ms); setImmediate does not.
 */
const yieldNow = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Results of a fixed-rate run. */
export interface PacedResult extends LatencyStats {
  rate: number;
  durationMs: number;
  connections: number;
  /** Latency from the actual write to the end of the response (excludes queueing in the client). */
  service: LatencyStats;
  /** How late the generator itself was sending (actual write − scheduled time), ms. */
  sendLateP50: number;
  sendLateP99: number;
}

/**
 * Sends `rate` requests per second for `durationMs` over `connections`
 * kept-alive HTTP/1.1 TLS connections. Request i is due at start + i/rate; a
 * free connection takes the oldest due request (a request waits when all are
 * busy). Latency is measured from the due time, so stalls are counted in full
 * (no coordinated omission). Waiting uses timers for long gaps and macrotask
 * yields (`setImmediate`) for the last 2 ms: timers alone fire ~1 ms late.
 * The spin keeps one core busy during the run.
 */
export async function paced(
  t: Target,
  request: Uint8Array,
  opts: { rate: number; durationMs: number; connections: number },
): Promise<PacedResult> {
  const conns = await Promise.all(
    Array.from({ length: opts.connections }, () => connect(t)),
  );
  const idle = [...conns];
  const total = Math.round((opts.rate * opts.durationMs) / 1000);
  const interval = 1000 / opts.rate;
  const latencies: number[] = [];
  const service: number[] = [];
  const sendLate: number[] = [];
  const queue: number[] = []; // due times of requests waiting for a connection
  let errors = 0;
  let non2xx = 0;
  const inflight = new Set<Promise<void>>();

  const run = (conn: Http1Connection, due: number): void => {
    const p = (async () => {
      let current = due;
      for (;;) {
        const sent = performance.now();
        sendLate.push(sent - current);
        try {
          const res = await exchange(conn, request);
          const done = performance.now();
          latencies.push(done - current);
          service.push(done - sent);
          if (res.status < 200 || res.status > 299) non2xx++;
        } catch {
          errors++;
          conn.close();
          return; // this connection is lost; the others carry on
        }
        if (conn.closed) return;
        const next = queue.shift();
        if (next === undefined) break;
        current = next;
      }
      idle.push(conn);
    })();
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  };

  try {
    const start = performance.now() + 5;
    for (let i = 0; i < total; i++) {
      const due = start + i * interval;
      for (;;) {
        const wait = due - performance.now();
        if (wait <= 0) break;
        if (wait > 2) await new Promise((r) => setTimeout(r, wait - 1.5));
        else await yieldNow();
      }
      const conn = idle.shift();
      if (conn) run(conn, due);
      else queue.push(due);
      if (idle.length === 0 && inflight.size === 0) throw new Error("all connections failed");
    }
    while (inflight.size > 0) await Promise.race(inflight);
  } finally {
    for (const c of conns) c.close();
  }
  errors += queue.length; // requests never sent
  const late = sendLate.sort((a, b) => a - b);
  return {
    rate: opts.rate,
    durationMs: opts.durationMs,
    connections: opts.connections,
    ...stats(latencies, errors, non2xx),
    service: stats(service, 0, 0),
    sendLateP50: percentile(late, 50),
    sendLateP99: percentile(late, 99),
  };
}

/** `count` requests one after another on ONE kept-alive connection (after `warmup` unmeasured ones). */
export async function sequential(
  t: Target,
  request: Uint8Array,
  count: number,
  warmup = 50,
): Promise<LatencyStats> {
  const conn = await connect(t);
  const latencies: number[] = [];
  let non2xx = 0;
  try {
    for (let i = 0; i < warmup; i++) await exchange(conn, request);
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const res = await exchange(conn, request);
      latencies.push(performance.now() - t0);
      if (res.status < 200 || res.status > 299) non2xx++;
      if (conn.closed) throw new Error("server closed the kept-alive connection");
    }
  } finally {
    conn.close();
  }
  return stats(latencies, 0, non2xx);
}
