/**
 * A logger that keeps parsed lines in memory, for tests.
 * @module
 */
import type { Fields, Level, Logger } from "../lib/mod.ts";

/** One line a {@link memoryLogger} kept. */
export type LogLine = Fields & { level: Level; msg: string };

/** A `Logger` whose lines land in `lines`. */
export function memoryLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: Level) => (msg: string, fields?: Fields) =>
    lines.push({ ...fields, level, msg });
  return {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    flush() {},
  };
}
