import assert from "node:assert/strict";
import { memoryLogger } from "../../testing/memory_logger.ts";
import { genCertTexts } from "../../testing/certs.ts";
import { certExpiryMonitor } from "./cert_expiry.ts";
import { notAfter } from "./cert.ts";
import { Metrics } from "../observe/mod.ts";

const leaf = async (days: number) => (await genCertTexts("--days", String(days))).cert;

Deno.test("cert expiry: gauge = notAfter; warn from 30 days before, repeated while it applies", async () => {
  const [short, long] = await Promise.all([leaf(10), leaf(365)]);
  const metrics = new Metrics();
  const log = memoryLogger();
  let now = new Date();
  const monitor = certExpiryMonitor({ metrics, log, now: () => now, recheckMs: 20 });
  try {
    monitor.update(long);
    const expiry = Math.floor(notAfter(long).getTime() / 1000);
    assert.match(
      metrics.render(),
      new RegExp(`^sidecar_injector_cert_expiry_timestamp_seconds ${expiry}$`, "m"),
    );
    assert.equal(log.lines.length, 0, "a year left: no warning");

    monitor.update(short);
    const warn = log.lines.find((l) => l.level === "warn");
    assert.equal(warn?.msg, "serving certificate expires soon");
    assert.ok(warn?.daysLeft === 9 || warn?.daysLeft === 10, `daysLeft ${warn?.daysLeft}`);
    assert.equal(warn?.notAfter, notAfter(short).toISOString());

    now = new Date(Date.now() + 11 * 86_400_000);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(log.lines.at(-1)?.msg, "serving certificate expired", "the re-check says so");
  } finally {
    monitor.stop();
  }
});
