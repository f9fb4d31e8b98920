/**
 * The memory budget: a bound on the bytes of request bodies being read or
 * processed at once. A review's memory grows with its body (the bytes, their
 * text, the parsed object), and V8 keeps what a burst allocated, so bounding
 * these bytes is what keeps a storm of large pods under the container's
 * memory limit. Past the budget a request waits, in arrival order, until its
 * own deadline, then gets a 503.
 * @module
 */
import type { Deadline } from "./deadline.ts";
import { HttpError } from "./errors.ts";

/**
 * Default budget: 4 MiB holds 10 reviews of ~400 KB or the largest the
 * apiserver sends (~3 MiB) at once; a review is parsed and answered without
 * a pause, so more bodies at once only add memory, not throughput. With the
 * V8 heap cap it keeps a storm under the Deployment's limit (docs/performance.md).
 */
export const DEFAULT_MEMORY_BUDGET_BYTES = 4 * 1024 * 1024;

interface Waiter {
  bytes: number;
  grant: () => void;
}

/**
 * Bytes reserved against a {@link ByteBudget}, all released together once the
 * request is done.
 */
export class Lease {
  readonly #budget: ByteBudget;
  #bytes = 0;

  /** Use {@link ByteBudget.lease}. */
  constructor(budget: ByteBudget) {
    this.#budget = budget;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes a request may still add: it never holds more than the whole budget, so one larger runs alone. */
  #capped(bytes: number): number {
    return Math.min(bytes, this.#budget.capacity - this.#bytes);
  }

  /** Reserves `bytes` more if there is room now and nobody waits; false otherwise. */
  tryGrow(bytes: number): boolean {
    const want = this.#capped(bytes);
    if (want <= 0) return true;
    if (!this.#budget.tryTake(want)) return false;
    this.#bytes += want;
    return true;
  }

  /**
   * Reserves `bytes` more, waiting in line for room until `deadline`.
   *
   * @throws {HttpError} 503 (reason `memory_budget`) when the deadline passes first.
   */
  async grow(bytes: number, deadline: Deadline): Promise<void> {
    if (this.tryGrow(bytes)) return;
    const want = this.#capped(bytes);
    await this.#budget.waitFor(want, deadline);
    this.#bytes += want;
  }

  /** Gives everything back; safe to call twice. */
  release(): void {
    const bytes = this.#bytes;
    this.#bytes = 0;
    if (bytes > 0) this.#budget.give(bytes);
  }
}

/**
 * A pool of `capacity` bytes shared by all requests.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteBudget } from "./budget.ts";
 * import { DeadlineSweeper } from "./deadline.ts";
 * const budget = new ByteBudget(100);
 * const deadline = new DeadlineSweeper(() => performance.now()).after(1000);
 * const a = budget.lease();
 * await a.grow(80, deadline);
 * const b = budget.lease();
 * const waiting = b.grow(50, deadline); // no room: waits for a
 * assert.equal(budget.used, 80);
 * a.release();
 * await waiting;
 * assert.equal(budget.used, 50);
 * b.release();
 * assert.equal(budget.peak, 80);
 * ```
 */
export class ByteBudget {
  /** Bytes that can be reserved at once. */
  readonly capacity: number;
  #used = 0;
  #peak = 0;
  readonly #queue: Waiter[] = [];

  constructor(capacity: number) {
    if (!(capacity > 0)) throw new RangeError(`memory budget must be positive, got ${capacity}`);
    this.capacity = capacity;
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.#used;
  }

  /** The most bytes ever reserved at once. */
  get peak(): number {
    return this.#peak;
  }

  /** Requests waiting for room now. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** A new, empty reservation for one request. */
  lease(): Lease {
    return new Lease(this);
  }

  /** Takes `bytes` at once if they fit and nobody is waiting (first come, first served). */
  tryTake(bytes: number): boolean {
    if (this.#queue.length > 0 || this.#used + bytes > this.capacity) return false;
    this.#take(bytes);
    return true;
  }

  /** Waits in line for `bytes`; rejects with a 503 when `deadline` passes first. */
  waitFor(bytes: number, deadline: Deadline): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const waiter: Waiter = {
      bytes,
      grant: () => {
        disarm();
        resolve();
      },
    };
    const disarm = deadline.arm(() => {
      const i = this.#queue.indexOf(waiter);
      if (i < 0) return;
      this.#queue.splice(i, 1);
      // The head leaving may make room for the next ones.
      this.#grant();
      reject(
        new HttpError(
          503,
          `memory budget of ${this.capacity} bytes in flight exhausted for ${deadline.ms} ms; retry`,
          { headers: { "retry-after": "1" }, reason: "memory_budget" },
        ),
      );
    });
    this.#queue.push(waiter);
    return promise;
  }

  /** Returns `bytes` and lets waiting requests in, in order. */
  give(bytes: number): void {
    this.#used -= bytes;
    this.#grant();
  }

  #take(bytes: number): void {
    this.#used += bytes;
    if (this.#used > this.#peak) this.#peak = this.#used;
  }

  #grant(): void {
    for (;;) {
      const head = this.#queue[0];
      if (!head || this.#used + head.bytes > this.capacity) return;
      this.#queue.shift();
      this.#take(head.bytes);
      head.grant();
    }
  }
}
