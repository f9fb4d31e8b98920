/**
 * What the handler reads and answers, whatever server carries it: the
 * node:https listener passes its own requests straight in (no web `Request`
 * or `Response` per review), tests and the metrics port go through `web.ts`.
 * @module
 */

/** A request body, pulled one chunk at a time. */
export interface BodySource {
  /** The next chunk, or `undefined` at the end; rejects when the client went away. */
  read(): Promise<Uint8Array | undefined>;
  /** Stops reading; the rest is never read (the answer closes the connection). */
  cancel(): void;
  /**
   * The handler will not read for a while (it waits for memory budget): take
   * no more bytes from the connection until the next `read()`.
   */
  pause(): void;
}

/** A request as the handler sees it. */
export interface Incoming {
  readonly method: string;
  /** Path and query, as in the request line: `/mutate?timeout=10s`. */
  readonly target: string;
  /** A header by lower-case name; repeated headers joined with ", ". */
  header(name: string): string | undefined;
  /** Absent for GET and HEAD. */
  readonly body: BodySource | undefined;
}

/** An answer: status, headers (lower-case names) and body bytes. */
export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array<ArrayBuffer>;
}

const encoder = new TextEncoder();
/** Shared by every JSON reply without extra headers: no object per answer. */
const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "application/json",
});

/**
 * A JSON reply; `headers` come on top of the content type.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonReply } from "./exchange.ts";
 * const reply = jsonReply(405, '{"error":"use POST"}', { allow: "POST" });
 * assert.deepEqual(reply.headers, { allow: "POST", "content-type": "application/json" });
 * assert.equal(new TextDecoder().decode(reply.body), '{"error":"use POST"}');
 * ```
 */
export function jsonReply(
  status: number,
  json: string,
  headers?: Readonly<Record<string, string>>,
): Reply {
  return {
    status,
    headers: headers ? { ...headers, ...JSON_HEADERS } : JSON_HEADERS,
    body: encoder.encode(json),
  };
}

/** Splits a request target into path and query (cheaper than `new URL` per request). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf("?");
  return q < 0
    ? { path: target, query: "" }
    : { path: target.slice(0, q), query: target.slice(q + 1) };
}
