/**
 * The webhook's HTTP handler: a plain `(Request) => Promise<Response>`.
 * @module
 */
import type { Config } from "../config.ts";
import { decide } from "../admission/decide.ts";
import { decodeReview, encodeResponse, type Review } from "../admission/review.ts";
import { type Logger, onceEvery } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { ClientClosedError, HttpError, jsonResponse, statusOf, toResponse } from "./errors.ts";
import { DeadlineSweeper, readCapped } from "./read_body.ts";

/** kube-apiserver sends at most ~3 MiB; leave room, refuse the rest. */
export const MAX_BODY_BYTES = 7 * 1024 * 1024;
/** Body read deadline when the apiserver names no `?timeout=`. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;
/** The apiserver allows at most 30 s per webhook call; a longer `?timeout=` is clamped. */
export const MAX_READ_TIMEOUT_MS = 30_000;
/** The body read ends this long before the apiserver's own timeout, so our 408 reaches it first. */
const DEADLINE_MARGIN_MS = 50;

/** What the handler needs from its surroundings. */
export interface HandlerDeps {
  /** The current config; read per request so a reload takes effect at once. */
  config: () => Config;
  log: Logger;
  metrics: Metrics;
  /** Monotonic milliseconds, for durations. */
  now: () => number;
  /** False while starting or draining: `/readyz` answers 503. */
  ready?: () => boolean;
  maxBodyBytes?: number;
  /**
   * Reviews handled at once; beyond it, 503 (the apiserver applies its failurePolicy).
   * Connections are bounded by the server (`--max-connections`); this bounds the work they cause.
   */
  maxInFlight?: number;
}

/** Default bound on concurrent reviews: far above what one apiserver sends, low enough to shed a flood. */
export const DEFAULT_MAX_IN_FLIGHT = 512;

const OK = '{"status":"ok"}';

function pathOf(url: string): { path: string; query: string } {
  // Cheaper than `new URL` on every request; the URL comes from the HTTP layer, always absolute.
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return { path: "/", query: "" };
  const q = url.indexOf("?", start);
  return q < 0
    ? { path: url.slice(start), query: "" }
    : { path: url.slice(start, q), query: url.slice(q + 1) };
}

/** Parses the apiserver's `timeout=10s` query parameter into milliseconds. */
export function timeoutFromQuery(query: string): number | undefined {
  const m = /(?:^|&)timeout=(\d+(?:\.\d+)?)(ms|s|m)?(?:&|$)/.exec(query);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000;
}

function podName(review: Review): string {
  const meta = review.request.pod?.metadata;
  return review.request.name || meta?.name || (meta?.generateName ? `${meta.generateName}*` : "");
}

/**
 * Creates the handler for `/mutate`, `/healthz`, `/readyz` and `/metrics`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHandler } from "./handler.ts";
 * import { defaultConfig } from "../config.ts";
 * import { createLogger } from "../log.ts";
 * import { Metrics } from "../metrics.ts";
 * const log = createLogger({ write: () => {} });
 * const handler = createHandler({ config: defaultConfig, log, metrics: new Metrics(), now: () => performance.now() });
 * const res = await handler(new Request("https://x/healthz"));
 * assert.equal(res.status, 200);
 * ```
 */
export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  const { log, metrics, now } = deps;
  const max = deps.maxBodyBytes ?? MAX_BODY_BYTES;
  const ready = deps.ready ?? (() => true);
  const deadlines = new DeadlineSweeper(now);
  const maxInFlight = deps.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  let inFlight = 0;
  const limitLog = onceEvery(1000, now);

  async function mutate(req: Request, query: string): Promise<Response> {
    const started = now();
    if (req.method !== "POST") throw new HttpError(405, "use POST", { headers: { allow: "POST" } });
    const type = req.headers.get("content-type");
    if (type !== null && !type.toLowerCase().includes("json")) {
      throw new HttpError(415, "content-type must be application/json");
    }
    const budget = Math.min(
      timeoutFromQuery(query) ?? DEFAULT_READ_TIMEOUT_MS,
      MAX_READ_TIMEOUT_MS,
    );
    const deadline = deadlines.after(Math.max(DEADLINE_MARGIN_MS, budget - DEADLINE_MARGIN_MS));
    const review = decodeReview(await readCapped(req, max, deadline));

    const { request } = review;
    const { decision, result, answer, error } = decide(request, deps.config());
    if (error !== undefined) {
      metrics.errors.inc({ reason: "inject_failed" });
      log.error("injection failed", {
        uid: request.uid,
        error: String(error),
        stack: error instanceof Error ? error.stack : undefined,
      });
    }
    const body = encodeResponse(review.apiVersion, request.uid, answer);
    const seconds = (now() - started) / 1000;
    metrics.duration.observe(seconds);
    metrics.admissions.inc({ decision, profile: result.profile ?? "" });
    if (result.skip) metrics.skipped.inc({ reason: result.skip });
    log.info("admission", {
      uid: request.uid,
      namespace: request.namespace ?? "",
      pod: podName(review),
      operation: request.operation,
      kind: request.kind.kind,
      decision,
      reason: result.reason,
      ...(result.profile ? { profile: result.profile, mode: result.mode } : {}),
      ...(result.warnings.length ? { warnings: result.warnings } : {}),
      ...(request.dryRun ? { dryRun: true } : {}),
      durationMs: Math.round(seconds * 1e6) / 1000,
    });
    return jsonResponse(200, body);
  }

  /** Counts, logs and answers an error from `/mutate`; the status comes from `toResponse`. */
  function failed(err: unknown): Response {
    const status = statusOf(err);
    if (err instanceof ClientClosedError) {
      // Nobody is left to answer; operators alert on errors, so this is counted, not alarmed.
      metrics.errors.inc({ reason: "client_closed" });
      log.debug("client closed the connection mid-request");
    } else if (status === 503) {
      // Only the in-flight bound answers 503; say so at most once a second.
      metrics.errors.inc({ reason: "in_flight_limit" });
      if (limitLog()) log.warn("in-flight limit reached; answering 503", { maxInFlight });
    } else if (status === 500) {
      metrics.errors.inc({ reason: "internal" });
      log.error("request failed", {
        error: String(err),
        stack: err instanceof Error ? err.stack : undefined,
      });
    } else {
      metrics.errors.inc({ reason: `http_${status}` });
      log.warn("bad request", {
        status,
        error: err instanceof Error ? err.message : String(err),
      });
    }
    return toResponse(err);
  }

  return async function handler(req: Request): Promise<Response> {
    const { path, query } = pathOf(req.url);
    try {
      switch (path) {
        case "/mutate": {
          if (inFlight >= maxInFlight) {
            await req.body?.cancel();
            return failed(
              new HttpError(503, "too many concurrent reviews", {
                headers: { "retry-after": "1" },
              }),
            );
          }
          inFlight++;
          try {
            return await mutate(req, query);
          } catch (err) {
            return failed(err);
          } finally {
            inFlight--;
          }
        }
        case "/healthz":
          return jsonResponse(200, OK);
        case "/readyz":
          return ready() ? jsonResponse(200, OK) : jsonResponse(503, '{"status":"not ready"}');
        case "/metrics":
          return new Response(metrics.render(), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          });
        default:
          throw new HttpError(404, `no route ${path}`);
      }
    } catch (err) {
      if (!(err instanceof HttpError)) log.error("handler failed", { error: String(err) });
      return toResponse(err);
    }
  };
}

/**
 * The handler for the optional plain-HTTP metrics port: `GET /metrics` from
 * `handler`, 404 for anything else (the webhook is never served without TLS).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { metricsOnly } from "./handler.ts";
 * const handler = metricsOnly(() => Promise.resolve(new Response("m 1\n")));
 * assert.equal((await handler(new Request("http://x/metrics"))).status, 200);
 * assert.equal((await handler(new Request("http://x/mutate", { method: "POST" }))).status, 404);
 * ```
 */
export function metricsOnly(
  handler: (req: Request) => Promise<Response>,
): (req: Request) => Promise<Response> {
  return async (req) => {
    if (pathOf(req.url).path === "/metrics" && req.method === "GET") return await handler(req);
    await req.body?.cancel();
    return toResponse(new HttpError(404, "only GET /metrics here"));
  };
}
