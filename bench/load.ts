/**
 * A minimal raw HTTP/1.1 client over one kept-alive TLS connection (ALPN
 * `http/1.1`, never HTTP/2 — as kube-apiserver talks to a webhook behind a
 * Service), plus the two latency loads built on it: a fixed-rate (wrk2-style,
 * latency counted from the scheduled send time) and a sequential one.
 * @module
 */

import { setImmediate } from "node:timers";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const CRLFCRLF = [13, 10, 13, 10];

/** Where to connect. */
export interface Target {
  hostname: string;
  port: number;
  /** PEM of the CA that signed the server certificate. */
  caCert: string;
}

/** One parsed response. */
export interface Http1Response {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

/** Serialises a request once; send the same bytes many times. */
export function buildRequest(
  method: string,
  path: string,
  host: string,
  body?: Uint8Array,
  headers: Record<string, string> = {},
): Uint8Array {
  let head =
    `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\nuser-agent: sidecar-injector-bench\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (body) head += `content-length: ${body.byteLength}\r\n`;
  head += "\r\n";
  const h = encoder.encode(head);
  const out = new Uint8Array(h.byteLength + (body?.byteLength ?? 0));
  out.set(h);
  if (body) out.set(body, h.byteLength);
  return out;
}

function indexOf(buf: Uint8Array, from: number, to: number, pattern: readonly number[]): number {
  outer: for (let i = from; i + pattern.length <= to; i++) {
    for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

/** One kept-alive HTTP/1.1 TLS connection; one request at a time. */
export class Http1Conn {
  #conn: Deno.TlsConn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  closed = false;

  private constructor(conn: Deno.TlsConn) {
    this.#conn = conn;
  }

  /** Connects and completes the TLS handshake; refuses anything but ALPN `http/1.1`. */
  static async connect(t: Target): Promise<Http1Conn> {
    // TCP first, to set TCP_NODELAY as Go's client (kube-apiserver) does; TlsConn has no setNoDelay.
    const tcp = await Deno.connect({ hostname: t.hostname, port: t.port });
    tcp.setNoDelay(true);
    const conn = await Deno.startTls(tcp, {
      hostname: t.hostname,
      caCerts: [t.caCert],
      alpnProtocols: ["http/1.1"],
    });
    try {
      const hs = await conn.handshake();
      if (hs.alpnProtocol !== null && hs.alpnProtocol !== "http/1.1") {
        throw new Error(`server chose ALPN ${hs.alpnProtocol}`);
      }
    } catch (err) {
      conn.close();
      throw err;
    }
    return new Http1Conn(conn);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  /** Reads more bytes into the buffer; throws on EOF. */
  async #fill(): Promise<void> {
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.byteLength) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const next = new Uint8Array(this.#buf.byteLength * 2);
        next.set(this.#buf);
        this.#buf = next;
      }
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) {
      this.closed = true;
      throw new Error("connection closed by the server");
    }
    this.#end += n;
  }

  async #line(): Promise<string> {
    for (;;) {
      const i = indexOf(this.#buf, this.#start, this.#end, [13, 10]);
      if (i >= 0) {
        const s = latin1.decode(this.#buf.subarray(this.#start, i));
        this.#start = i + 2;
        return s;
      }
      await this.#fill();
    }
  }

  async #take(n: number): Promise<Uint8Array> {
    while (this.#end - this.#start < n) await this.#fill();
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /** Writes the request bytes (all of them) and reads one full response. */
  async request(bytes: Uint8Array): Promise<Http1Response> {
    let off = 0;
    while (off < bytes.byteLength) off += await this.#conn.write(bytes.subarray(off));
    return await this.#response();
  }

  async #response(): Promise<Http1Response> {
    let headEnd: number;
    for (;;) {
      headEnd = indexOf(this.#buf, this.#start, this.#end, CRLFCRLF);
      if (headEnd >= 0) break;
      await this.#fill();
    }
    const lines = latin1.decode(this.#buf.subarray(this.#start, headEnd)).split("\r\n");
    this.#start = headEnd + 4;
    const status = Number(lines[0]?.slice(9, 12));
    if (!lines[0]?.startsWith("HTTP/1.1 ") || !Number.isInteger(status)) {
      throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
    }
    const headers = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const c = l.indexOf(":");
      if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
    }
    let body: Uint8Array;
    if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
      const parts: Uint8Array[] = [];
      for (;;) {
        const size = parseInt((await this.#line()).split(";")[0] ?? "", 16);
        if (!Number.isInteger(size) || size < 0) throw new Error("bad chunk size");
        if (size === 0) {
          while ((await this.#line()) !== "") { /* trailers */ }
          break;
        }
        parts.push(await this.#take(size));
        if ((await this.#line()) !== "") throw new Error("chunk not followed by CRLF");
      }
      body = parts.length === 1 && parts[0] ? parts[0] : concat(parts);
    } else if (headers.has("content-length")) {
      body = await this.#take(Number(headers.get("content-length")));
    } else {
      const parts: Uint8Array[] = [];
      try {
        for (;;) {
          await this.#fill();
          parts.push(this.#buf.slice(this.#start, this.#end));
          this.#start = this.#end;
        }
      } catch { /* EOF ends the body */ }
      body = concat(parts);
    }
    if (headers.get("connection")?.toLowerCase() === "close") this.close();
    return { status, headers, body };
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
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

/** Percentile (nearest rank) of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/** Median of numbers (any order). */
export function median(values: readonly number[]): number {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
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
    Array.from({ length: opts.connections }, () => Http1Conn.connect(t)),
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

  const run = (conn: Http1Conn, due: number): void => {
    const p = (async () => {
      let current = due;
      for (;;) {
        const sent = performance.now();
        sendLate.push(sent - current);
        try {
          const res = await conn.request(request);
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
  const conn = await Http1Conn.connect(t);
  const latencies: number[] = [];
  let non2xx = 0;
  try {
    for (let i = 0; i < warmup; i++) await conn.request(request);
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const res = await conn.request(request);
      latencies.push(performance.now() - t0);
      if (res.status < 200 || res.status > 299) non2xx++;
      if (conn.closed) throw new Error("server closed the kept-alive connection");
    }
  } finally {
    conn.close();
  }
  return stats(latencies, 0, non2xx);
}
