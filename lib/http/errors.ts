/**
 * The HTTP layer's error type, and the one place any error becomes a status.
 * @module
 */
import { InvalidReviewError } from "../admission/mod.ts";
import { InvalidPodError } from "../inject/mod.ts";
import { jsonReply, type Reply } from "./exchange.ts";
import { responseOf } from "./web.ts";

/** Statuses the server answers when it does not answer a review. */
export type ErrorStatus = 400 | 404 | 405 | 408 | 413 | 415 | 503;

/** Options of an {@link HttpError}: a cause, headers its answer must carry, a metrics reason. */
export interface HttpErrorOptions extends ErrorOptions {
  headers?: Record<string, string>;
  /** The `reason` label of the errors metric; `http_<status>` when absent. */
  reason?: string;
}

/** A request the server will not serve; its message is safe to send back. */
export class HttpError extends Error {
  override name = "HttpError";
  /** Extra headers of the answer, such as `allow` on a 405 or `retry-after` on a 503. */
  readonly headers: Record<string, string> | undefined;
  /** Why, for the errors metric and the log: `in_flight_limit`, `memory_budget`, ... */
  readonly reason: string;
  constructor(readonly status: ErrorStatus, message: string, options?: HttpErrorOptions) {
    super(message, options);
    this.headers = options?.headers;
    this.reason = options?.reason ?? `http_${status}`;
  }
}

/**
 * The client closed the connection before its request was complete (a load
 * balancer, an apiserver call that timed out, the end of a benchmark). Not a
 * server fault: nothing can be answered, and it is logged at debug only.
 */
export class ClientClosedError extends Error {
  override name = "ClientClosedError";
}

/** The status for `err`; 500 for anything that is not a known client or load error. */
export function statusOf(err: unknown): ErrorStatus | 500 {
  if (err instanceof HttpError) return err.status;
  if (
    err instanceof InvalidReviewError || err instanceof InvalidPodError ||
    err instanceof ClientClosedError
  ) return 400;
  return 500;
}

/**
 * Maps any thrown value to a reply: a known error to its status, message
 * and headers, anything else to a bare 500 (details go to the log, not the client).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpError, toReply } from "./errors.ts";
 * const reply = toReply(new HttpError(503, "busy", { headers: { "retry-after": "1" } }));
 * assert.equal(reply.status, 503);
 * assert.equal(reply.headers["retry-after"], "1");
 * assert.deepEqual(JSON.parse(new TextDecoder().decode(reply.body)), { error: "busy" });
 * assert.equal(toReply(new Error("boom")).status, 500);
 * ```
 */
export function toReply(err: unknown): Reply {
  const status = statusOf(err);
  if (status === 500 || !(err instanceof Error)) {
    return jsonReply(500, '{"error":"internal error"}');
  }
  const headers = err instanceof HttpError ? err.headers : undefined;
  return jsonReply(status, JSON.stringify({ error: err.message }), headers);
}

/**
 * {@link toReply} as a web `Response`, for handlers served by `Deno.serve`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpError, toResponse } from "./errors.ts";
 * const res = toResponse(new HttpError(413, "body too large"));
 * assert.equal(res.status, 413);
 * assert.deepEqual(await res.json(), { error: "body too large" });
 * ```
 */
export function toResponse(err: unknown): Response {
  return responseOf(toReply(err));
}
