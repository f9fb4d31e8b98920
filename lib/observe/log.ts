/**
 * JSON-lines logger; the only module that writes log output.
 *
 * Lines are buffered and written in one call every 20 ms or at 64 KiB: a
 * synchronous write per request cost a quarter or more of throughput.
 * @module
 */

/** Log levels, least severe first. */
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured fields of one line. */
export type Fields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** Writes out everything buffered; call before exit. */
  flush(): void;
}

/** Where and how a logger writes. */
export interface LoggerOptions {
  /** Writes all of `bytes` (the caller loops over partial writes). */
  write: (bytes: Uint8Array) => void;
  level?: Level;
  /** Milliseconds since the epoch, for the `time` field. */
  now?: () => number;
  flushIntervalMs?: number;
  maxBufferBytes?: number;
}

const encoder = new TextEncoder();

function withoutOwnKeys(fields: Fields): Fields {
  const { time: _time, level: _level, msg: _msg, ...rest } = fields;
  return rest;
}

/** JSON of `fields`, or a note when they cannot be serialised (a cycle, a BigInt). */
function safeStringify(fields: Fields): string {
  try {
    return JSON.stringify(fields);
  } catch {
    return '{"fields":"unserialisable"}';
  }
}

/**
 * Creates a buffered JSON-lines logger.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createLogger } from "./log.ts";
 * const out: string[] = [];
 * const log = createLogger({ write: (b) => out.push(new TextDecoder().decode(b)), now: () => 0 });
 * log.info("listening", { port: 8443 });
 * log.debug("hidden");
 * log.flush();
 * assert.deepEqual(JSON.parse(out.join("")), { time: "1970-01-01T00:00:00.000Z", level: "info", msg: "listening", port: 8443 });
 * ```
 */
export function createLogger(options: LoggerOptions): Logger {
  const {
    write,
    level = "info",
    now = Date.now,
    flushIntervalMs = 20,
    maxBufferBytes = 64 * 1024,
  } = options;
  const min = RANK[level];
  let buffer = "";
  let timer: ReturnType<typeof setTimeout> | undefined;

  const flush = () => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (buffer === "") return;
    const text = buffer;
    buffer = "";
    write(encoder.encode(text));
  };

  // The ISO time of the last millisecond seen: lines within one millisecond share it.
  let lastMs = NaN;
  let lastIso = "";
  const iso = (ms: number) => {
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = new Date(ms).toISOString();
    }
    return lastIso;
  };

  const emit = (lvl: Level, msg: string, fields?: Fields) => {
    if (RANK[lvl] < min) return;
    const head = `{"time":"${iso(now())}","level":"${lvl}","msg":${JSON.stringify(msg)}`;
    let line = head + "}";
    if (fields !== undefined) {
      // The fields' JSON spliced after the head: no merged object per line. Never two keys
      // of one name: the line's own time, level and msg win.
      const own = "time" in fields || "level" in fields || "msg" in fields;
      const rest = safeStringify(own ? withoutOwnKeys(fields) : fields);
      if (rest.length > 2) line = `${head},${rest.slice(1)}`;
    }
    buffer += line + "\n";
    if (buffer.length >= maxBufferBytes || lvl === "error") flush();
    else if (timer === undefined) {
      const t = setTimeout(flush, flushIntervalMs);
      // Pending log lines must not keep the process (or a test) alive.
      Deno.unrefTimer(t);
      timer = t;
    }
  };

  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    flush,
  };
}

/**
 * A rate limiter for repeated log lines: the returned function is true at
 * most once per `intervalMs` of monotonic `now`, so a flood logs once a second.
 */
export function onceEvery(
  intervalMs: number,
  now: () => number = () => performance.now(),
): () => boolean {
  let last = -Infinity;
  return () => {
    const t = now();
    if (t - last < intervalMs) return false;
    last = t;
    return true;
  };
}

/** Writes all of `bytes` with a synchronous writer that may write partially. */
export function writeAllSync(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) offset += w.writeSync(bytes.subarray(offset));
}
