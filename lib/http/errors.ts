/**
 * The one client-error type, and the one place an error becomes an HTTP status.
 * @module
 */

/** Statuses the server answers for bad requests. */
export type ClientErrorStatus = 400 | 404 | 405 | 408 | 413 | 415;

/** A request the client got wrong; its message is safe to send back. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(readonly status: ClientErrorStatus, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

const encoder = new TextEncoder();

/**
 * A JSON response with a plain byte body. The server sets TCP_NODELAY, so
 * the length-delimited TLS stall of `Deno.serve` (MEASURED.md) does not apply.
 */
export function jsonResponse(
  status: number,
  json: string,
  headers?: Record<string, string>,
): Response {
  return new Response(encoder.encode(json), {
    status,
    headers: headers ? { ...headers, "content-type": "application/json" } : JSON_HEADERS,
  });
}

const JSON_HEADERS = { "content-type": "application/json" };

/**
 * Maps any thrown value to a response: an `HttpError` to its status and
 * message, anything else to a bare 500 (details go to the log, not the client).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { HttpError, toResponse } from "./errors.ts";
 * const res = toResponse(new HttpError(413, "body too large"));
 * assert.equal(res.status, 413);
 * assert.deepEqual(await res.json(), { error: "body too large" });
 * assert.equal(toResponse(new Error("boom")).status, 500);
 * ```
 */
export function toResponse(err: unknown): Response {
  if (err instanceof HttpError) {
    const headers = err.status === 405 ? { allow: "POST" } : undefined;
    return jsonResponse(err.status, JSON.stringify({ error: err.message }), headers);
  }
  return jsonResponse(500, '{"error":"internal error"}');
}
