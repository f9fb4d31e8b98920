/**
 * Request deadlines on one coarse timer: the body read and the wait for
 * memory budget both end at the request's deadline.
 * @module
 */

/** A point in time after which a request gives up; it can be armed any number of times. */
export interface Deadline {
  /** The time limit it was made with, for messages. */
  readonly ms: number;
  /** Calls `onExpire` once the deadline has passed; returns a function that disarms it. */
  arm(onExpire: () => void): () => void;
}

/** How often deadlines are checked: the precision of a 408 or a budget 503. */
const DEFAULT_TICK_MS = 25;
/** Idle time after which the timer stops. */
const DEFAULT_IDLE_STOP_MS = 1000;

/**
 * One coarse timer for all pending deadlines instead of one timer per request:
 * deadlines are checked every `tickMs` by a timer that runs only while some
 * deadline is armed. `now` is monotonic milliseconds.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { DeadlineSweeper } from "./deadline.ts";
 * let t = 0;
 * const sweeper = new DeadlineSweeper(() => t, 1, 5);
 * const fired = Promise.withResolvers<void>();
 * sweeper.after(10).arm(fired.resolve);
 * t = 11;
 * await fired.promise;
 * await new Promise((r) => setTimeout(r, 20)); // idle: the timer stops
 * assert.ok(true);
 * ```
 */
export class DeadlineSweeper {
  readonly #pending = new Set<{ at: number; onExpire: () => void }>();
  readonly #now: () => number;
  readonly #tickMs: number;
  readonly #idleStopMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #idleTicks = 0;

  /** `tickMs`: how often deadlines are checked; `idleStopMs`: idle time before the timer stops. */
  constructor(now: () => number, tickMs = DEFAULT_TICK_MS, idleStopMs = DEFAULT_IDLE_STOP_MS) {
    this.#now = now;
    this.#tickMs = tickMs;
    this.#idleStopMs = idleStopMs;
  }

  /** A deadline `ms` from now (fixed now, whenever it is armed). */
  after(ms: number): Deadline {
    const at = this.#now() + ms;
    return {
      ms,
      arm: (onExpire) => {
        const entry = { at, onExpire };
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
      // Stop only after ~1 s without pending deadlines: starting and stopping the interval
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
