/**
 * Shape checks for a parsed YAML document: each returns the narrowed value or
 * throws `InvalidConfigError` naming the source, the path and the reason.
 * @module
 */
import { isRecord } from "../json/mod.ts";

/** A config value is wrong; the message names the file, the path and the reason. */
export class InvalidConfigError extends TypeError {
  override name = "InvalidConfigError";
}

/** The config file is not YAML. */
export class ConfigSyntaxError extends SyntaxError {
  override name = "ConfigSyntaxError";
}

/** How a value is shown in an error message. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return `"${value}"`;
  return `${typeof value} ${String(value)}`;
}

/** `a.b`, `a[0]`: the path of a child value. */
export function join(path: string, key: string | number): string {
  return typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

/** Checks values read from one source; every failure names that source. */
export class Validator {
  constructor(readonly source: string) {}

  /** Throws the error for `path`. */
  fail(path: string, reason: string): never {
    throw new InvalidConfigError(`${this.source}: ${path || "<root>"}: ${reason}`);
  }

  /** A mapping; with `keys`, any other key is rejected. */
  object(value: unknown, path: string, keys?: readonly string[]): Record<string, unknown> {
    if (!isRecord(value)) this.fail(path, `must be a mapping, got ${describe(value)}`);
    if (keys) {
      for (const k of Object.keys(value)) {
        if (!keys.includes(k)) {
          this.fail(join(path, k), `unknown key (expected one of: ${keys.join(", ")})`);
        }
      }
    }
    return value;
  }

  /** A non-empty string that `check` (when given) accepts. */
  string(value: unknown, path: string, check?: (s: string) => string | undefined): string {
    if (typeof value !== "string" || value === "") {
      this.fail(path, `must be a non-empty string, got ${describe(value)}`);
    }
    const problem = check?.(value);
    if (problem) this.fail(path, problem);
    return value;
  }

  /** One of `allowed`. */
  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
    const found = allowed.find((a) => a === value);
    if (found === undefined) {
      this.fail(path, `must be one of ${allowed.join(", ")}, got ${describe(value)}`);
    }
    return found;
  }

  /** `true` or `false`. */
  boolean(value: unknown, path: string): boolean {
    if (typeof value !== "boolean") {
      this.fail(path, `must be true or false, got ${describe(value)}`);
    }
    return value;
  }

  /** An integer in `[min, max]`; `what` names the range in the message. */
  integer(value: unknown, path: string, min: number, max: number, what: string): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      this.fail(path, `must be ${what}, got ${describe(value)}`);
    }
    return value;
  }

  /** A TCP port. */
  port(value: unknown, path: string): number {
    return this.integer(value, path, 1, 65535, "a port number 1-65535");
  }

  /** A list of non-empty strings. */
  stringList(value: unknown, path: string): string[] {
    if (!Array.isArray(value)) this.fail(path, `must be a list, got ${describe(value)}`);
    return value.map((v, i) => this.string(v, join(path, i)));
  }
}
