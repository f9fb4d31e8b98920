/**
 * Memory soak: the real server under mixed valid and hostile load keeps a flat RSS.
 * Bounded: 120 s under CI=true, 20 s otherwise, SOAK_SECONDS to choose.
 */
import assert from "node:assert/strict";
import { REPO_ROOT, say } from "../e2e/control_plane/harness.ts";
import { genWebhookCerts, startWebhook } from "../e2e/control_plane/webhook.ts";
import { Http1Connection } from "../../testing/http1.ts";

const seconds = Number(Deno.env.get("SOAK_SECONDS") ?? (Deno.env.get("CI") === "true" ? 120 : 20));

/** Resident set size in MiB (reading /proc directly would need --allow-all in Deno). */
async function rssMiB(pid: number): Promise<number> {
  const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim()) / 1024;
}

const valid = Deno.readTextFileSync(`${REPO_ROOT}/testdata/reviews/nginx-v1.json`);
const review = JSON.parse(valid);
const withObject = (object: unknown) =>
  JSON.stringify({ ...review, request: { ...review.request, object } });
const bodies: Array<[string, number]> = [
  [valid, 200],
  [
    withObject({
      ...review.request.object,
      metadata: { annotations: { "x/y~z": "v".repeat(100_000) } },
    }),
    200,
  ],
  [
    withObject({
      spec: { containers: Array.from({ length: 200 }, (_, i) => ({ name: `c${i}`, image: "x" })) },
    }),
    200,
  ],
  ["{not json", 400],
  [JSON.stringify({ ...review, apiVersion: "v9" }), 400],
  [withObject({ spec: { containers: { a: 1 } } }), 400],
  [
    `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":${"[".repeat(50_000)}`,
    400,
  ],
  [`{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}}}`, 400],
];

Deno.test(
  `soak: ${seconds} s of mixed valid and hostile load leaves the server's RSS flat`,
  { sanitizeOps: false, sanitizeResources: false },
  async () => {
    await Deno.mkdir(`${REPO_ROOT}/.tmp`, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: `${REPO_ROOT}/.tmp`, prefix: "soak-" });
    const certs = await genWebhookCerts(`${dir}/certs`);
    const w = await startWebhook({ certs, logPath: `${dir}/webhook.log` });
    const counts = { sent: 0, unexpected: 0, errors: 0 };
    const samples: Array<[number, number]> = [];
    const end = performance.now() + seconds * 1000;
    try {
      const worker = async (id: number) => {
        let conn = await Http1Connection.connect(w.port, certs.caPem);
        for (let i = id; performance.now() < end; i++) {
          const [body, want] = bodies[i % bodies.length] ?? [valid, 200];
          try {
            const res = await conn.request("POST", "/mutate?timeout=10s", body);
            counts.sent++;
            if (res.status !== want) counts.unexpected++;
            if (res.headers.get("connection") === "close") {
              conn.close();
              conn = await Http1Connection.connect(w.port, certs.caPem);
            }
          } catch {
            counts.errors++;
            conn.close();
            conn = await Http1Connection.connect(w.port, certs.caPem);
          }
        }
        conn.close();
      };
      const sampler = (async () => {
        const start = performance.now();
        while (performance.now() < end) {
          samples.push([Math.round((performance.now() - start) / 1000), await rssMiB(w.pid)]);
          await new Promise((r) => setTimeout(r, Math.min(5000, seconds * 100)));
        }
      })();
      await Promise.all([worker(0), worker(1), worker(2), worker(3), sampler]);
      const final = await rssMiB(w.pid);
      // Baseline: after the first fifth, once the heap has grown to its working size.
      const warm = samples.filter(([t]) => t >= seconds / 5).map(([, rss]) => rss);
      const baseline = warm[0] ?? samples.at(-1)?.[1] ?? final;
      const report = {
        seconds,
        requests: counts.sent,
        unexpectedStatus: counts.unexpected,
        transportErrors: counts.errors,
        rssStartMiB: Number((samples[0]?.[1] ?? 0).toFixed(1)),
        rssAfterWarmupMiB: Number(baseline.toFixed(1)),
        rssEndMiB: Number(final.toFixed(1)),
        samples,
      };
      say(`soak: ${JSON.stringify(report)}`);
      await Deno.mkdir(`${REPO_ROOT}/.tmp/results`, { recursive: true });
      await Deno.writeTextFile(
        `${REPO_ROOT}/.tmp/results/soak-latest.json`,
        JSON.stringify(report, null, 2) + "\n",
      );
      assert.equal(counts.unexpected, 0, "every body got its expected status");
      assert.equal(counts.errors, 0, "no transport errors");
      assert.ok(counts.sent > seconds * 50, `load was applied: ${counts.sent} requests`);
      assert.ok(
        final <= baseline * 1.3 + 10,
        `RSS grew from ${baseline.toFixed(1)} to ${final.toFixed(1)} MiB`,
      );
    } finally {
      const s = await w.stop();
      await Deno.remove(dir, { recursive: true });
      assert.equal(s.code, 0);
    }
  },
);
