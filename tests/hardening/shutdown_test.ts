/**
 * SIGTERM under load: two real server processes (two replicas), several
 * keep-alive TLS clients posting reviews to the first in a loop, and a
 * readiness poller. The first one is terminated: it must fail readiness,
 * answer every accepted request with 200, tell clients to leave
 * (`Connection: close`), and exit 0. Clients that are told to leave, or find the
 * listener closed, open their next connection to the other replica, as
 * kube-apiserver does through the Service once the endpoint is gone. Zero
 * accepted requests may fail.
 * @module
 */
import assert from "node:assert/strict";
import { nginxReview } from "./_util.ts";
import { buildRequest, Http1Connection } from "../../testing/http1.ts";
import { makeCerts, note, spawnServer, withTimeout } from "./_server.ts";

const CLIENTS = 8;
const LOAD_BEFORE_SIGTERM_MS = 1000;
const DRAIN_MS = 300;

interface Counts {
  /** Requests whose bytes were all written on an accepted (handshaken) connection. */
  sent: number;
  ok: number;
  /** Responses other than 200. */
  non200: number;
  /** Fully written, accepted, and no (complete) response. */
  failed: number;
  /** Fully written before SIGTERM, failed without response. */
  failedBeforeSigterm: number;
  /** Connect refused (listener closed): expected after the drain. */
  refused: number;
  /** The TLS handshake failed before the end of the drain. */
  handshakeFailed: number;
  /** The TLS handshake was reset at the end of the drain (listener closing; nothing written). */
  handshakeResetAfterSigterm: number;
  /** The connection broke while writing the request. */
  writeFailed: number;
  /** Responses carrying `connection: close`. */
  closeHeader: number;
  /** 200s answered after SIGTERM was sent. */
  okAfterSigterm: number;
}

Deno.test({
  name: "SIGTERM under load: readiness 503, every accepted request answered 200, exit 0",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const certs = await makeCerts("shutdown");
    const server = await spawnServer(certs, { drainDelayMs: DRAIN_MS });
    const { port } = server;
    const host = `127.0.0.1:${port}`;
    // The second replica, where the Service sends new connections once the first drains.
    const other = await spawnServer(certs, { name: "other" });
    // A uid per request, to find in the server's log whether a lost request was handled.
    const requestFor = (uid: string) =>
      buildRequest("POST", "/mutate?timeout=10s", host, JSON.stringify(nginxReview(uid)), {
        "content-type": "application/json",
      });
    const counted = { toOther: 0 };
    const lostUids: string[] = [];
    const counts: Counts = {
      sent: 0,
      ok: 0,
      non200: 0,
      failed: 0,
      failedBeforeSigterm: 0,
      refused: 0,
      handshakeFailed: 0,
      handshakeResetAfterSigterm: 0,
      writeFailed: 0,
      closeHeader: 0,
      okAfterSigterm: 0,
    };
    const failures: string[] = [];
    let sigtermAt = 0;
    let exitedAt = 0;
    let stop = false;
    const readiness: Array<{ t: number; status: number | string }> = [];
    const t0 = performance.now();
    const since = () => Math.round(performance.now() - t0);

    const worker = async (id: number) => {
      let client: Http1Connection | undefined;
      let seq = 0;
      let target = port;
      while (!stop) {
        if (!client) {
          try {
            client = await withTimeout(
              Http1Connection.connect(target, certs.caPem),
              5000,
              () => {},
            );
          } catch (err) {
            if (err instanceof Deno.errors.ConnectionRefused) {
              counts.refused++;
              if (sigtermAt) target = other.port; // the listener is gone: the Service routes elsewhere
              await new Promise((r) => setTimeout(r, 10));
            } else if (sigtermAt && performance.now() - sigtermAt >= DRAIN_MS - 50) {
              // The listener closes at the end of the drain: like a refused connect.
              counts.handshakeResetAfterSigterm++;
              failures.push(`client ${id} @${since()}ms: handshake at close: ${String(err)}`);
            } else {
              counts.handshakeFailed++;
              failures.push(`client ${id} @${since()}ms: handshake: ${String(err)}`);
            }
            continue;
          }
        }
        const c = client;
        const uid = `c${id}-${seq++}`;
        try {
          await c.write(requestFor(uid));
        } catch (err) {
          counts.writeFailed++;
          failures.push(`client ${id} @${since()}ms: write: ${String(err)}`);
          c.close();
          client = undefined;
          continue;
        }
        counts.sent++;
        const writtenBeforeSigterm = sigtermAt === 0;
        try {
          const res = await withTimeout(c.readResponse(), 10_000, () => c.close());
          if (res.status === 200) {
            counts.ok++;
            if (sigtermAt) counts.okAfterSigterm++;
          } else {
            counts.non200++;
            failures.push(`client ${id} @${since()}ms: status ${res.status} ${res.body}`);
          }
          if (res.headers.get("connection")?.toLowerCase() === "close") {
            counts.closeHeader++;
            c.close();
            client = undefined;
            if (target === port && sigtermAt) {
              target = other.port; // told to leave a draining replica
              counted.toOther++;
            }
          }
        } catch (err) {
          counts.failed++;
          lostUids.push(uid);
          if (writtenBeforeSigterm) counts.failedBeforeSigterm++;
          failures.push(
            `client ${id} uid ${uid} @${since()}ms (sigterm @${
              sigtermAt ? Math.round(sigtermAt - t0) : "-"
            }ms): no response to a fully written request: ${String(err)}`,
          );
          c.close();
          client = undefined;
        }
      }
      client?.close();
    };

    const poller = async () => {
      while (!stop) {
        let c: Http1Connection | undefined;
        try {
          c = await Http1Connection.connect(port, certs.caPem);
          await c.write(buildRequest("GET", "/readyz", host, undefined, { connection: "close" }));
          const res = await withTimeout(c.readResponse(), 5000, () => c?.close());
          readiness.push({ t: since(), status: res.status });
        } catch (err) {
          readiness.push({ t: since(), status: err instanceof Error ? err.name : String(err) });
          if (err instanceof Deno.errors.ConnectionRefused && sigtermAt) return;
        } finally {
          c?.close();
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    };

    try {
      const load = [...Array.from({ length: CLIENTS }, (_, i) => worker(i)), poller()];
      await new Promise((r) => setTimeout(r, LOAD_BEFORE_SIGTERM_MS));
      const sentBefore = counts.sent;
      sigtermAt = performance.now();
      server.proc.child.kill("SIGTERM");
      const status = await withTimeout(server.proc.status, 10_000, () => {});
      exitedAt = performance.now();
      // Let clients notice the closed listener, then stop them.
      await withTimeout(Promise.all(load), 3000, () => stop = true).catch(() => {
        stop = true;
      });
      stop = true;
      await Promise.allSettled(load);

      const exitMs = Math.round(exitedAt - sigtermAt);
      const ready503 = readiness.filter((r) => r.status === 503);
      const readyAfter = readiness.filter((r) => r.t >= Math.round(sigtermAt - t0));
      note(
        `shutdown: ${
          JSON.stringify({
            ...counts,
            sentBeforeSigterm: sentBefore,
            exitMs,
            movedToOtherReplica: counted.toOther,
          })
        }\n` +
          `readiness after SIGTERM: ${JSON.stringify(readyAfter.slice(0, 30))}`,
      );
      const out = server.logText();
      const handled = lostUids.filter((uid) => out.includes(`"uid":"${uid}"`));
      note(
        `lost requests: ${lostUids.length}; of these, logged as handled by the server ` +
          `(answer computed, then lost): ${handled.length} ${JSON.stringify(handled)}`,
      );
      assert.equal(status.code, 0, `exit code ${status.code}; stderr: ${server.output()}`);
      assert.ok(exitMs < 5000, `exited ${exitMs} ms after SIGTERM`);
      assert.match(
        out,
        /"msg":"shutting down"/,
        `no "shutting down" in the log:\n${out.slice(-2000)}`,
      );
      assert.match(out, /"msg":"stopped"/, `no "stopped" in the log:\n${out.slice(-2000)}`);
      assert.ok(counts.ok > 100, `only ${counts.ok} requests answered`);
      assert.ok(counts.okAfterSigterm > 0, "no request was answered during the drain");
      assert.ok(ready503.length > 0, `readiness never 503: ${JSON.stringify(readyAfter)}`);
      assert.ok(
        readiness.filter((r) => r.t < Math.round(sigtermAt - t0)).every((r) => r.status === 200),
        "readiness not 200 before SIGTERM",
      );
      assert.equal(
        counts.failed,
        0,
        `${counts.failed} of ${counts.sent} accepted, fully written requests got no response ` +
          `(sent ${counts.sent}, ok ${counts.ok}, refused ${counts.refused}):\n` +
          failures.slice(0, 20).join("\n"),
      );
      assert.equal(counts.non200, 0, failures.join("\n"));
      assert.equal(counts.writeFailed, 0, failures.join("\n"));
      assert.equal(counts.handshakeFailed, 0, failures.join("\n"));
      assert.equal(counted.toOther, CLIENTS, "every client moved to the other replica");
    } finally {
      stop = true;
      await server.close();
      await other.close();
      await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
    }
  },
});
