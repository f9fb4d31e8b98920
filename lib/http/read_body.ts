/**
 * Reads a request body with a size cap and a deadline, without buffering past
 * the cap and without reading on after the deadline.
 * @module
 */
import { HttpError } from "./errors.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

function decode(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (err) {
    throw new HttpError(400, "request body is not valid UTF-8", { cause: err });
  }
}

/** Something that calls `onExpire` once a time limit passes; returns a function that disarms it. */
export interface Deadline {
  arm(onExpire: () => void): () => void;
  /** For the error message. */
  readonly ms: number;
}

/**
 * Returns the body as text. Throws `HttpError` 413 once it exceeds `max`
 * bytes (a declared `content-length` over the cap is refused before reading),
 * and 408 when `deadline` expires first; either way the stream is cancelled,
 * so a slow client cannot keep the server reading.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCapped } from "./read_body.ts";
 * assert.equal(await readCapped(new Request("http://x/", { method: "POST", body: "hi" }), 10), "hi");
 * await assert.rejects(readCapped(new Request("http://x/", { method: "POST", body: "x".repeat(11) }), 10), { status: 413 });
 * ```
 */
export async function readCapped(req: Request, max: number, deadline?: Deadline): Promise<string> {
  const body = req.body;
  if (body === null) return "";
  const declared = req.headers.get("content-length");
  let expected: number | undefined;
  if (declared !== null && !req.headers.has("transfer-encoding")) {
    const n = Number(declared);
    if (!/^\d+$/.test(declared) || !Number.isSafeInteger(n)) {
      await body.cancel();
      throw new HttpError(400, "invalid content-length");
    }
    if (n > max) {
      await body.cancel();
      throw new HttpError(413, `request body of ${n} bytes exceeds the ${max}-byte limit`);
    }
    expected = n;
  }
  const reader = body.getReader();
  let expired = false;
  const disarm = deadline?.arm(() => {
    expired = true;
    reader.cancel().catch(() => {});
  });
  try {
    // Counted chunk by chunk whether or not a length was declared; joined once at the end.
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (expired) throw new HttpError(408, `request body not received within ${deadline?.ms} ms`);
      if (done) break;
      total += value.byteLength;
      if (total > max) {
        await reader.cancel();
        throw new HttpError(413, `request body exceeds the ${max}-byte limit`);
      }
      chunks.push(value);
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
    return decode(all);
  } finally {
    disarm?.();
  }
}

/**
 * One coarse timer for all pending reads instead of one timer per request:
 * deadlines are checked every `tickMs` by a timer that runs only while some
 * read is pending. `now` is monotonic milliseconds.
 */
export class DeadlineSweeper {
  readonly #pending = new Set<{ at: number; onExpire: () => void }>();
  readonly #now: () => number;
  readonly #tickMs: number;
  readonly #idleStopMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #idleTicks = 0;

  /** `tickMs`: how often deadlines are checked; `idleStopMs`: idle time before the timer stops. */
  constructor(now: () => number, tickMs = 25, idleStopMs = 1000) {
    this.#now = now;
    this.#tickMs = tickMs;
    this.#idleStopMs = idleStopMs;
  }

  /** A deadline `ms` from now. */
  after(ms: number): Deadline {
    return {
      ms,
      arm: (onExpire) => {
        const entry = { at: this.#now() + ms, onExpire };
        this.#pending.add(entry);
        this.#idleTicks = 0;
        this.#start();
        return () => this.#pending.delete(entry);
      },
    };
  }

  #start(): void {
    if (this.#timer !== undefined) return;
    const timer = setInterval(() => {
      const t = this.#now();
      for (const entry of this.#pending) {
        if (entry.at > t) continue;
        this.#pending.delete(entry);
        entry.onExpire();
      }
      // Stop only after ~1 s without pending reads: starting and stopping the interval
      // around every request cost more than the sweep itself.
      this.#idleTicks = this.#pending.size === 0 ? this.#idleTicks + 1 : 0;
      if (this.#idleTicks * this.#tickMs >= this.#idleStopMs) {
        clearInterval(timer);
        this.#timer = undefined;
      }
    }, this.#tickMs);
    // Not unref'd: a pending read must keep the process alive until its deadline. The
    // interval stops itself after an idle second, so an idle server holds no timer.
    this.#timer = timer;
  }
}
