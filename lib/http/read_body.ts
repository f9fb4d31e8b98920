/**
 * Reads a request body with a size cap, a deadline and the memory budget:
 * nothing is buffered past the cap, nothing is read after the deadline, and
 * no byte is read before the budget has room for it.
 * @module
 */
import type { Lease } from "./budget.ts";
import type { Deadline } from "./deadline.ts";
import { HttpError } from "./errors.ts";
import type { BodySource, Incoming } from "./exchange.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** A deadline that never expires, for reads without one. */
const NEVER: Deadline = { ms: Infinity, arm: () => () => {} };

/** Limits of one body read. */
export interface ReadLimits {
  /** Bytes at most; more is a 413. */
  max: number;
  /** When reading (and waiting for budget) gives up: 408 (or 503 while waiting). */
  deadline?: Deadline;
  /** Reserves the body's bytes before they are read; released by the caller when done. */
  lease?: Lease;
}

function decode(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (err) {
    throw new HttpError(400, "request body is not valid UTF-8", { cause: err });
  }
}

/**
 * Reserves `bytes`; when they must be waited for, the body is paused first,
 * so the connection's bytes stay in the kernel meanwhile. Undefined when
 * reserved at once (no await on the common path).
 */
function reserve(
  lease: Lease,
  body: BodySource,
  bytes: number,
  deadline: Deadline,
): Promise<void> | undefined {
  if (lease.tryGrow(bytes)) return undefined;
  body.pause();
  return lease.grow(bytes, deadline);
}

/** The declared length, checked against `max`; undefined when the body is chunked. */
function declaredLength(req: Incoming, max: number): number | undefined {
  const declared = req.header("content-length");
  if (declared === undefined || req.header("transfer-encoding") !== undefined) return undefined;
  const n = Number(declared);
  if (!/^\d+$/.test(declared) || !Number.isSafeInteger(n)) {
    throw new HttpError(400, "invalid content-length");
  }
  if (n > max) throw new HttpError(413, `request body of ${n} bytes exceeds the ${max}-byte limit`);
  return n;
}

/**
 * Returns the body as text. A declared `content-length` is reserved from the
 * lease before the first byte is read (waiting for room until the deadline);
 * a chunked body reserves as it arrives. Throws `HttpError` 413 past `max`
 * (a declared length over it is refused before reading), 408 when the
 * deadline expires during the read, 503 when it expires while waiting for
 * budget; in every failure the body is cancelled, so nothing more is read.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBody } from "./read_body.ts";
 * import { incomingOf } from "./web.ts";
 * const post = (body: string) => incomingOf(new Request("http://x/", { method: "POST", body }));
 * assert.equal(await readBody(post("hi"), { max: 10 }), "hi");
 * await assert.rejects(readBody(post("x".repeat(11)), { max: 10 }), { status: 413 });
 * ```
 */
export async function readBody(req: Incoming, limits: ReadLimits): Promise<string> {
  const { body } = req;
  if (body === undefined) return "";
  const { max, lease } = limits;
  const deadline = limits.deadline ?? NEVER;
  let disarm: (() => void) | undefined;
  try {
    const expected = declaredLength(req, max);
    if (lease && expected !== undefined) {
      const waiting = reserve(lease, body, expected, deadline);
      if (waiting) await waiting;
    }
    let expired = false;
    disarm = deadline.arm(() => {
      expired = true;
      body.cancel();
    });
    // Counted chunk by chunk whether or not a length was declared; joined once at the end.
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const chunk = await body.read();
      if (expired) throw new HttpError(408, `request body not received within ${deadline.ms} ms`);
      if (chunk === undefined) break;
      total += chunk.byteLength;
      if (total > max) throw new HttpError(413, `request body exceeds the ${max}-byte limit`);
      // A chunked body: reserve each chunk as it comes (it is already read, but no more is).
      if (lease && total > lease.bytes) {
        const waiting = reserve(lease, body, total - lease.bytes, deadline);
        if (waiting) await waiting;
      }
      chunks.push(chunk);
    }
    if (expected !== undefined && total !== expected) {
      throw new HttpError(400, "body shorter than content-length");
    }
    if (chunks.length === 1 && chunks[0]) return decode(chunks[0]);
    const all = new Uint8Array(total);
    let offset = 0;
    for (const c of chunks) {
      all.set(c, offset);
      offset += c.byteLength;
    }
    chunks.length = 0;
    try {
      return decode(all);
    } finally {
      // Ours alone: freed now rather than at a garbage collection, which V8 starts only after
      // tens of MiB of such outside-the-heap buffers (a storm of large reviews piles them up).
      all.buffer.transfer(0);
    }
  } catch (err) {
    body.cancel();
    throw err;
  } finally {
    disarm?.();
  }
}
