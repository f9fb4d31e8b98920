/**
 * The webhook's routes: `/mutate`, `/healthz`, `/readyz`, `/metrics`. The
 * core works on {@link Incoming} and {@link Reply}, which the TLS server
 * builds from its own requests with nothing in between; `createHandler` is
 * the same routes as a web `(Request) => Promise<Response>`.
 * @module
 */
import type { Config } from "../config/mod.ts";
import { decide } from "../admission/mod.ts";
import { decodeReview, encodeResponse, type Review } from "../admission/mod.ts";
import { type Fields, type Logger, onceEvery } from "../observe/mod.ts";
import type { Metrics } from "../observe/mod.ts";
import { ByteBudget, DEFAULT_MEMORY_BUDGET_BYTES } from "./budget.ts";
import { DeadlineSweeper } from "./deadline.ts";
import { ClientClosedError, HttpError, statusOf, toReply, toResponse } from "./errors.ts";
import { type Incoming, jsonReply, type Reply, splitTarget } from "./exchange.ts";
import { readBody } from "./read_body.ts";
import { webHandler } from "./web.ts";

/** kube-apiserver sends at most ~3 MiB; leave room, refuse the rest. */
export const MAX_BODY_BYTES = 7 * 1024 * 1024;
/** Body read deadline when the apiserver names no `?timeout=`. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;
/** The apiserver allows at most 30 s per webhook call; a longer `?timeout=` is clamped. */
export const MAX_READ_TIMEOUT_MS = 30_000;
/** The body read ends this long before the apiserver's own timeout, so our 408 reaches it first. */
const DEADLINE_MARGIN_MS = 50;
/** Rate of the warnings for refused requests: a flood logs once a second. */
const REFUSAL_LOG_INTERVAL_MS = 1000;

/** What the handler needs from its surroundings. */
export interface HandlerDeps {
  /** The current config; read per request so a reload takes effect at once. */
  config: () => Config;
  log: Logger;
  metrics: Metrics;
  /** Monotonic milliseconds, for durations and deadlines. */
  now: () => number;
  /** False while starting or draining: `/readyz` answers 503. */
  ready?: () => boolean;
  maxBodyBytes?: number;
  /**
   * Reviews handled at once; beyond it, 503 (the apiserver applies its failurePolicy).
   * Connections are bounded by the server (`--max-connections`); this bounds the work they cause.
   */
  maxInFlight?: number;
  /**
   * Bytes of request bodies read or processed at once (default
   * {@link DEFAULT_MEMORY_BUDGET_BYTES}); past it a review waits until its
   * deadline, then gets a 503.
   */
  budget?: ByteBudget;
}

/** Default bound on concurrent reviews: far above what one apiserver sends, low enough to shed a flood. */
export const DEFAULT_MAX_IN_FLIGHT = 512;

/** The routes on the handler's own request and answer types. */
export type Routes = (req: Incoming) => Promise<Reply>;

const OK = '{"status":"ok"}';
const METRICS_HEADERS = Object.freeze({
  "content-type": "text/plain; version=0.0.4; charset=utf-8",
});
const encoder = new TextEncoder();

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
 * Creates the routes. Every error, from the body read to a bug, is answered
 * through `toReply`; the returned function never rejects.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createRoutes } from "./handler.ts";
 * import { defaultConfig } from "../config/mod.ts";
 * import { createLogger } from "../observe/mod.ts";
 * import { Metrics } from "../observe/mod.ts";
 * const log = createLogger({ write: () => {} });
 * const routes = createRoutes({ config: defaultConfig, log, metrics: new Metrics(), now: () => performance.now() });
 * const reply = await routes({ method: "GET", target: "/healthz", header: () => undefined, body: undefined });
 * assert.equal(reply.status, 200);
 * ```
 */
export function createRoutes(deps: HandlerDeps): Routes {
  const { log, metrics, now } = deps;
  const max = deps.maxBodyBytes ?? MAX_BODY_BYTES;
  const ready = deps.ready ?? (() => true);
  const deadlines = new DeadlineSweeper(now);
  const maxInFlight = deps.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  const budget = deps.budget ?? new ByteBudget(DEFAULT_MEMORY_BUDGET_BYTES);
  let inFlight = 0;
  const inFlightLog = onceEvery(REFUSAL_LOG_INTERVAL_MS, now);
  const budgetLog = onceEvery(REFUSAL_LOG_INTERVAL_MS, now);

  async function mutate(req: Incoming, query: string): Promise<Reply> {
    const started = now();
    if (req.method !== "POST") throw new HttpError(405, "use POST", { headers: { allow: "POST" } });
    const type = req.header("content-type");
    if (type !== undefined && !type.toLowerCase().includes("json")) {
      throw new HttpError(415, "content-type must be application/json");
    }
    const timeout = Math.min(
      timeoutFromQuery(query) ?? DEFAULT_READ_TIMEOUT_MS,
      MAX_READ_TIMEOUT_MS,
    );
    const deadline = deadlines.after(Math.max(DEADLINE_MARGIN_MS, timeout - DEADLINE_MARGIN_MS));
    const lease = budget.lease();
    try {
      const review = decodeReview(await readBody(req, { max, deadline, lease }));
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
      const line: Fields = {
        uid: request.uid,
        namespace: request.namespace ?? "",
        pod: podName(review),
        operation: request.operation,
        kind: request.kind.kind,
        decision,
        reason: result.reason,
      };
      if (result.profile) {
        line.profile = result.profile;
        line.mode = result.mode;
      }
      if (result.warnings.length) line.warnings = result.warnings;
      if (request.dryRun) line.dryRun = true;
      line.durationMs = Math.round(seconds * 1e6) / 1000;
      log.info("admission", line);
      return jsonReply(200, body);
    } finally {
      lease.release();
    }
  }

  /** Counts, logs and answers an error from `/mutate`; the status comes from `toReply`. */
  function failed(err: unknown): Reply {
    const status = statusOf(err);
    if (err instanceof ClientClosedError) {
      // Nobody is left to answer; operators alert on errors, so this is counted, not alarmed.
      metrics.errors.inc({ reason: "client_closed" });
      log.debug("client closed the connection mid-request");
    } else if (status === 500) {
      metrics.errors.inc({ reason: "internal" });
      log.error("request failed", {
        error: String(err),
        stack: err instanceof Error ? err.stack : undefined,
      });
    } else {
      const reason = err instanceof HttpError ? err.reason : `http_${status}`;
      metrics.errors.inc({ reason });
      if (reason === "in_flight_limit") {
        if (inFlightLog()) log.warn("in-flight limit reached; answering 503", { maxInFlight });
      } else if (reason === "memory_budget") {
        if (budgetLog()) {
          log.warn("memory budget exhausted until the request's deadline; answering 503", {
            budgetBytes: budget.capacity,
            usedBytes: budget.used,
            waiting: budget.waiting,
          });
        }
      } else {
        log.warn("bad request", {
          status,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    return toReply(err);
  }

  return async function routes(req: Incoming): Promise<Reply> {
    const { path, query } = splitTarget(req.target);
    try {
      switch (path) {
        case "/mutate": {
          if (inFlight >= maxInFlight) {
            req.body?.cancel();
            return failed(
              new HttpError(503, "too many concurrent reviews", {
                headers: { "retry-after": "1" },
                reason: "in_flight_limit",
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
          return jsonReply(200, OK);
        case "/readyz":
          return ready() ? jsonReply(200, OK) : jsonReply(503, '{"status":"not ready"}');
        case "/metrics":
          return { status: 200, headers: METRICS_HEADERS, body: encoder.encode(metrics.render()) };
        default:
          throw new HttpError(404, `no route ${path}`);
      }
    } catch (err) {
      if (!(err instanceof HttpError)) log.error("handler failed", { error: String(err) });
      return toReply(err);
    }
  };
}

/**
 * Creates the routes as a web handler (see {@link createRoutes}).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHandler } from "./handler.ts";
 * import { defaultConfig } from "../config/mod.ts";
 * import { createLogger } from "../observe/mod.ts";
 * import { Metrics } from "../observe/mod.ts";
 * const log = createLogger({ write: () => {} });
 * const handler = createHandler({ config: defaultConfig, log, metrics: new Metrics(), now: () => performance.now() });
 * const res = await handler(new Request("https://x/healthz"));
 * assert.equal(res.status, 200);
 * ```
 */
export function createHandler(deps: HandlerDeps): (req: Request) => Promise<Response> {
  return webHandler(createRoutes(deps));
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
    if (new URL(req.url).pathname === "/metrics" && req.method === "GET") {
      return await handler(req);
    }
    await req.body?.cancel();
    return toResponse(new HttpError(404, "only GET /metrics here"));
  };
}
