/**
 * The real server (`main.ts serve` under `-P=serve`) for the hardening tests:
 * certificates and start-up via tests/e2e/control_plane/webhook.ts.
 * @module
 */
import { say } from "../../testing/process.ts";
import {
  genWebhookCerts,
  startWebhook,
  type Webhook,
  type WebhookCerts,
} from "../e2e/control_plane/webhook.ts";

export const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Writes a line to stderr (lint forbids console.*). */
export const note: (text: string) => void = say;

/** Generates a CA and a server pair for IP:127.0.0.1 under `<repo>/.tmp/`. */
export function makeCerts(label: string): Promise<WebhookCerts> {
  return genWebhookCerts(`${REPO}/.tmp/hardening-${label}-${crypto.randomUUID().slice(0, 8)}`);
}

/**
 * Starts the real server on 127.0.0.1, port 0, with `certs` (or the `cert`/`key`
 * paths given instead), logging to `<certs.dir>/<name>.log`; see {@link startWebhook}.
 */
export function spawnServer(
  certs: WebhookCerts,
  opts: {
    name?: string;
    drainDelayMs?: number;
    cert?: string;
    key?: string;
    waitReady?: boolean;
    extraArgs?: string[];
  } = {},
): Promise<Webhook> {
  return startWebhook({
    certs: { ...certs, tlsCrt: opts.cert ?? certs.tlsCrt, tlsKey: opts.key ?? certs.tlsKey },
    logPath: `${certs.dir}/${opts.name ?? "server"}.log`,
    timeoutMs: 30_000,
    ...(opts.drainDelayMs === undefined ? {} : { drainDelayMs: opts.drainDelayMs }),
    ...(opts.waitReady === undefined ? {} : { waitReady: opts.waitReady }),
    ...(opts.extraArgs === undefined ? {} : { extraArgs: opts.extraArgs }),
  });
}

/** Rejects after `ms` (and runs `onTimeout`) unless `p` settles first. */
export async function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          onTimeout();
          reject(new Error(`timed out after ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
