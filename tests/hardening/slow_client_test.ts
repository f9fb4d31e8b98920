/**
 * Slow clients against the real server: a body trickled 1 byte per 500 ms
 * must be cut off by the `?timeout=` deadline, the server must keep serving
 * others meanwhile, and (reported only) what happens to a client that stalls
 * in the middle of its headers or before its TLS handshake.
 * @module
 */
import assert from "node:assert/strict";
import { SERVER_DEFAULTS } from "../../lib/mod.ts";
import { nginxReview } from "./_util.ts";
import type { Webhook } from "../e2e/control_plane/webhook.ts";
import { buildRequest, Http1Connection } from "../../testing/http1.ts";
import { makeCerts, note, spawnServer, withTimeout } from "./_server.ts";

const enc = new TextEncoder();
const HOLD_WATCH_MS = 6000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function withServer(fn: (s: Webhook, ca: string) => Promise<void>): Promise<void> {
  const certs = await makeCerts("slow");
  const server = await spawnServer(certs, { drainDelayMs: 0 });
  try {
    await fn(server, certs.caPem);
  } finally {
    await server.close();
    await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
  }
}

/** Sends headers for a 1000-byte body, then 1 byte every 500 ms until answered or closed. */
async function slowLoris(
  port: number,
  ca: string,
  watchMs = 0,
): Promise<
  { ms: number; outcome: string; bytesSent: number; afterwards: string; closedAfterMs?: number }
> {
  const c = await Http1Connection.connect(port, ca);
  const head = `POST /mutate?timeout=2s HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n` +
    `content-type: application/json\r\ncontent-length: 1000\r\n\r\n`;
  await c.write(enc.encode(head));
  const t0 = performance.now();
  let bytesSent = 0;
  let done = false;
  const trickle = (async () => {
    while (!done && bytesSent < 1000) {
      await sleep(500);
      if (done) break;
      try {
        await c.write(enc.encode("{"));
        bytesSent++;
      } catch {
        break;
      }
    }
  })();
  let outcome: string;
  let afterwards = "";
  try {
    const res = await withTimeout(c.readResponse(), 10_000, () => {});
    outcome = `status ${res.status} ${res.body} connection=${res.headers.get("connection") ?? "-"}`;
  } catch (err) {
    outcome = `no response: ${String(err)}`;
  }
  const ms = Math.round(performance.now() - t0);
  // The answer said `connection: close`: does the server close the connection, or keep
  // reading the trickled body? Watch for up to `watchMs` while the client trickles on.
  const t1 = performance.now();
  let closedAfterMs: number | undefined;
  if (watchMs > 0) {
    try {
      await withTimeout(c.readResponse(), watchMs, () => {});
      afterwards = "another response?!";
    } catch (err) {
      if (String(err).includes("timed out")) {
        afterwards =
          `connection still open ${watchMs} ms after the answer (${bytesSent} bytes trickled)`;
      } else {
        closedAfterMs = Math.round(performance.now() - t1);
        afterwards = `connection closed ${closedAfterMs} ms after the answer`;
      }
    }
  }
  done = true;
  c.close();
  await trickle;
  return {
    ms,
    outcome,
    bytesSent,
    afterwards,
    ...(closedAfterMs === undefined ? {} : { closedAfterMs }),
  };
}

Deno.test({
  name: "slow loris: a trickled body is cut off by ?timeout=2s, and others are served meanwhile",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withServer(async ({ port }, ca) => {
      const lorises = Array.from({ length: 20 }, () => slowLoris(port, ca));
      await sleep(300);
      // Normal requests while 20 slow clients hold connections.
      const latencies: number[] = [];
      for (let i = 0; i < 10; i++) {
        const t = performance.now();
        const c = await Http1Connection.connect(port, ca);
        try {
          await c.write(
            buildRequest(
              "POST",
              "/mutate?timeout=10s",
              `127.0.0.1:${port}`,
              JSON.stringify(nginxReview()),
              {
                "content-type": "application/json",
              },
            ),
          );
          const res = await withTimeout(c.readResponse(), 5000, () => c.close());
          assert.equal(res.status, 200, res.body);
        } finally {
          c.close();
        }
        latencies.push(Math.round(performance.now() - t));
        await sleep(100);
      }
      const results = await Promise.all(lorises);
      note(`slow loris x20: ${JSON.stringify(results[0])}; times ${results.map((r) => r.ms)}`);
      note(`normal requests meanwhile: latencies ms ${latencies}`);
      assert.ok(
        Math.max(...latencies) < 1000,
        `normal request latency ${Math.max(...latencies)} ms`,
      );
      for (const r of results) {
        assert.ok(
          /^status 408/.test(r.outcome) || /closed/.test(r.outcome),
          `slow client got: ${r.outcome}`,
        );
        assert.ok(r.ms <= 2500, `slow client answered after ${r.ms} ms (${r.outcome})`);
      }
    });
  },
});

Deno.test({
  name: "slow loris: after its 408 (connection: close) the server closes the connection",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withServer(async ({ port }, ca) => {
      const results = await Promise.all(
        Array.from({ length: 3 }, () => slowLoris(port, ca, HOLD_WATCH_MS)),
      );
      note(`slow loris after 408: ${results.map((r) => r.afterwards).join("; ")}`);
      // Holding the connection open after the 408 keeps the slow client's socket (and the
      // server's pending body read) alive for as long as it trickles: 1000 bytes at 2/s is 500 s.
      // The server lingers (reads and drops what comes) for its bounded time, then closes.
      const bound = SERVER_DEFAULTS.lingerMs + 1000;
      const held = results.filter((r) => r.closedAfterMs === undefined || r.closedAfterMs > bound);
      assert.equal(
        held.length,
        0,
        `${held.length} of ${results.length} slow clients still connected after their 408: ` +
          held[0]?.afterwards,
      );
    });
  },
});

Deno.test({
  name: "stalled clients (partial headers; no TLS handshake) are cut off within 15 s",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await withServer(async ({ port }, ca) => {
      const watch = async (
        label: string,
        conn: { read(p: Uint8Array): Promise<number | null>; close(): void },
      ) => {
        const t0 = performance.now();
        const buf = new Uint8Array(4096);
        let result = "still open after 15 s";
        let closedByUs = false;
        const read = (async () => {
          try {
            const n = await conn.read(buf);
            result = n === null
              ? `closed by the server after ${Math.round(performance.now() - t0)} ms`
              : `got ${n} bytes after ${Math.round(performance.now() - t0)} ms: ${
                JSON.stringify(new TextDecoder().decode(buf.subarray(0, Math.min(n, 80))))
              }`;
          } catch (err) {
            if (!closedByUs) {
              result = `error after ${Math.round(performance.now() - t0)} ms: ${String(err)}`;
            }
          }
        })();
        await Promise.race([read, sleep(15_000)]);
        closedByUs = true;
        conn.close();
        await read;
        return `${label}: ${result}`;
      };

      const partial = await Http1Connection.connect(port, ca);
      await partial.write(
        enc.encode(`POST /mutate?timeout=2s HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-`),
      );
      const tcpOnly = await Deno.connect({ hostname: "127.0.0.1", port });
      const reports = await Promise.all([
        watch("partial headers", partial.conn),
        watch("TCP connect, no TLS handshake", tcpOnly),
      ]);
      for (const r of reports) note(`stall: ${r}`);
      // headersTimeout (10 s) answers 408 and closes; handshakeTimeout (10 s) closes.
      assert.match(
        reports[0] ?? "",
        /partial headers: got \d+ bytes after \d+ ms: "HTTP\/1\.1 408 Request Timeout/,
      );
      assert.match(reports[1] ?? "", /no TLS handshake: closed by the server after \d+ ms/);
    });
  },
});
