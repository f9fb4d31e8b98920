/**
 * The serving certificate's expiry as a gauge, and a warn line every day
 * from {@link CERT_WARN_DAYS} days before it: an expired webhook
 * certificate fails every admission call.
 * @module
 */
import { CERT_WARN_DAYS, daysUntil, notAfter } from "./cert.ts";
import type { Logger } from "../observe/mod.ts";
import type { Metrics } from "../observe/mod.ts";

const DAY_MS = 86_400_000;

/** How the monitor reports and reads the time. */
export interface CertExpiryOptions {
  metrics: Metrics;
  log: Logger;
  now?: () => Date;
  /** How often the warning is repeated while it applies. */
  recheckMs?: number;
}

/** Tracks the certificate in use; `update` on each (re)load, `stop` on shutdown. */
export interface CertExpiryMonitor {
  update(certPem: string): void;
  stop(): void;
}

/**
 * Creates the monitor. Unparseable PEM is logged, not thrown: the TLS stack
 * already accepted the pair.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLogger } from "../observe/mod.ts";
 * import { Metrics } from "../observe/mod.ts";
 * import { certExpiryMonitor } from "./cert_expiry.ts";
 * const metrics = new Metrics();
 * const monitor = certExpiryMonitor({ metrics, log: createLogger({ write: () => {} }) });
 * monitor.update("not a certificate");
 * monitor.stop();
 * assert.doesNotMatch(metrics.render(), /^sidecar_injector_cert_expiry_timestamp_seconds /m);
 * ```
 */
export function certExpiryMonitor(options: CertExpiryOptions): CertExpiryMonitor {
  const { metrics, log } = options;
  const now = options.now ?? (() => new Date());
  let expiry: Date | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;

  const check = () => {
    if (!expiry) return;
    const daysLeft = daysUntil(expiry, now());
    if (daysLeft < CERT_WARN_DAYS) {
      log.warn(daysLeft < 0 ? "serving certificate expired" : "serving certificate expires soon", {
        notAfter: expiry.toISOString(),
        daysLeft,
      });
    }
  };

  return {
    update(certPem) {
      try {
        expiry = notAfter(certPem);
      } catch (err) {
        log.error("cannot read the serving certificate's expiry", {
          error: err instanceof Error ? err.message : String(err),
        });
        return;
      }
      metrics.certExpiry.set({}, Math.floor(expiry.getTime() / 1000));
      check();
      if (timer === undefined) {
        timer = setInterval(check, options.recheckMs ?? DAY_MS);
        Deno.unrefTimer(timer);
      }
    },
    stop() {
      clearInterval(timer);
    },
  };
}
