/**
 * The webhook's HTTP handler: a plain `(Request) => Promise<Response>`.
 * @module
 */
import type { Config } from "../config.ts";
import { inject, type InjectResult } from "../inject.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import {
  type AdmissionRequest,
  type Answer,
  decodeReview,
  encodeResponse,
  isPodCreate,
  type Review,
} from "../admission/review.ts";
import { HttpError, jsonResponse, toResponse } from "./errors.ts";
import { DeadlineSweeper, readCapped } from "./read_body.ts";

/** kube-apiserver sends at most ~3 MiB; leave room, refuse the rest. */
export const MAX_BODY_BYTES = 7 * 1024 * 1024;
/** Body read deadline when the apiserver names no `?timeout=`. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;
/** The apiserver allows at most 30 s per webhook call; a longer `?timeout=` is clamped. */
export const MAX_READ_TIMEOUT_MS = 30_000;

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

/** The decision for one decoded review: skip non-Pod-CREATEs, inject, or fail open/closed. */
function answerFor(
  request: AdmissionRequest,
  config: Config,
  log: Logger,
  metrics: Metrics,
): { result: InjectResult; decision: string; answer: Answer } {
  if (!isPodCreate(request) || !request.pod) {
    const reason = request.operation !== "CREATE"
      ? `operation ${request.operation}`
      : `kind ${request.kind.kind}${request.subResource ? "/" + request.subResource : ""}`;
    return {
      result: { decision: "skipped", reason, patch: [], warnings: [] },
      decision: "skipped",
      answer: { allowed: true },
    };
  }
  try {
    const result = inject(request.pod, config, { namespace: request.namespace });
    return {
      result,
      decision: result.decision,
      answer: { allowed: true, patch: result.patch, warnings: result.warnings },
    };
  } catch (err) {
    // One pod must never break admission for all: fail open unless told otherwise.
    metrics.errors.inc({ reason: "inject_failed" });
    log.error("injection failed", {
      uid: request.uid,
      error: String(err),
      stack: err instanceof Error ? err.stack : undefined,
    });
    const result: InjectResult = {
      decision: "skipped",
      reason: "injection failed",
      patch: [],
      warnings: [],
    };
    return config.onError === "deny"
      ? {
        result,
        decision: "denied",
        answer: {
          allowed: false,
          message: "sidecar-injector: injection failed; see the injector's log",
        },
      }
      : {
        result,
        decision: "failed_open",
        answer: {
          allowed: true,
          warnings: ["sidecar-injector: injection failed; pod admitted without the log sidecar"],
        },
      };
  }
}

/**
 * Creates the handler for `/mutate`, `/healthz`, `/readyz` and `/metrics`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createHandler } from "./handler.ts";
 * import { defaultConfig } from "../config.ts";
 * import { memoryLogger } from "../log.ts";
 * import { Metrics } from "../metrics.ts";
 * const handler = createHandler({ config: defaultConfig, log: memoryLogger(), metrics: new Metrics(), now: performance.now.bind(performance) });
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
  let lastLimitLog = -Infinity;

  async function mutate(req: Request, query: string): Promise<Response> {
    const started = now();
    let review: Review | undefined;
    try {
      if (req.method !== "POST") throw new HttpError(405, "use POST");
      const type = req.headers.get("content-type");
      if (type !== null && !type.toLowerCase().includes("json")) {
        throw new HttpError(415, "content-type must be application/json");
      }
      const budget = Math.min(
        timeoutFromQuery(query) ?? DEFAULT_READ_TIMEOUT_MS,
        MAX_READ_TIMEOUT_MS,
      );
      // Answer (408) a little before the apiserver gives up on us.
      const text = await readCapped(req, max, deadlines.after(Math.max(50, budget - 50)));
      review = decodeReview(text);
    } catch (err) {
      const reason = err instanceof HttpError ? `http_${err.status}` : "internal";
      metrics.errors.inc({ reason });
      const res = toResponse(err);
      if (err instanceof HttpError) {
        log.warn("bad request", { status: err.status, error: err.message });
      } else {log.error("request failed", {
          error: String(err),
          stack: err instanceof Error ? err.stack : undefined,
        });}
      return res;
    }

    const { request } = review;
    const { result, decision, answer } = answerFor(request, deps.config(), log, metrics);
    const body = encodeResponse(review.apiVersion, request.uid, answer);
    const seconds = (now() - started) / 1000;
    metrics.duration.observe(seconds);
    metrics.admissions.inc({ decision, profile: result.profile ?? "" });
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

  return async function handler(req: Request): Promise<Response> {
    const { path, query } = pathOf(req.url);
    try {
      switch (path) {
        case "/mutate": {
          if (inFlight >= maxInFlight) {
            metrics.errors.inc({ reason: "in_flight_limit" });
            if (now() - lastLimitLog >= 1000) {
              lastLimitLog = now();
              log.warn("in-flight limit reached; answering 503", { maxInFlight });
            }
            await req.body?.cancel();
            return jsonResponse(503, '{"error":"too many concurrent reviews"}', {
              "retry-after": "1",
            });
          }
          inFlight++;
          try {
            return await mutate(req, query);
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
