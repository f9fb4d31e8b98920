/**
 * Command line → options, per command. Pure: no I/O, so every rule is unit-tested.
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MEMORY_BUDGET_BYTES,
  type Level,
  SERVER_DEFAULTS,
} from "../lib/mod.ts";

/** The command line is wrong; `main` prints the message and the usage, and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Options of `serve`. */
export interface ServeOptions {
  certFile: string;
  keyFile: string;
  configFile: string | undefined;
  hostname: string;
  port: number;
  drainDelayMs: number;
  maxInFlight: number;
  /** Bytes of request bodies read or processed at once (`--memory-budget-mib`). */
  memoryBudgetBytes: number;
  maxConnections: number;
  metricsPort: number | undefined;
  logLevel: Level;
  /** Audit the cluster's pods this often (milliseconds); off when undefined. */
  auditIntervalMs: number | undefined;
  /** Kubeconfig for the audit; in-cluster credentials when undefined. */
  kubeconfig: string | undefined;
}

/** Options of `inject`. */
export interface InjectOptions {
  /** A path, or `-` for stdin. */
  file: string;
  output: "yaml" | "json";
  configFile: string | undefined;
}

/** Options of `audit`. */
export interface AuditOptions {
  kubeconfig: string | undefined;
  context: string | undefined;
  /** One namespace; undefined with `allNamespaces`, or for the context's namespace. */
  namespace: string | undefined;
  allNamespaces: boolean;
  output: "table" | "json";
  /** A local config file instead of the cluster's ConfigMap. */
  configFile: string | undefined;
  /** Name of the MutatingWebhookConfiguration. */
  webhook: string;
  /** Where the injector's ConfigMap and Secret live; default: the webhook's Service namespace. */
  injectorNamespace: string | undefined;
}

/** What the command line asks for. */
export type Command =
  | { name: "help" }
  | { name: "serve"; options: ServeOptions }
  | { name: "inject"; options: InjectOptions }
  | { name: "audit"; options: AuditOptions };

const LEVELS: readonly Level[] = ["debug", "info", "warn", "error"];
const MAX_PORT = 65535;
const MAX_DRAIN_DELAY_MS = 600_000;
const MAX_BOUND = 1_000_000;
const MIB = 1024 * 1024;
/** A budget above 64 GiB is no budget: refuse it as a typo. */
const MAX_MEMORY_BUDGET_MIB = 65_536;

type Options = NonNullable<ParseArgsConfig["options"]>;

const HELP: Options = { help: { type: "boolean", short: "h" } };

const SERVE: Options = {
  ...HELP,
  cert: { type: "string" },
  key: { type: "string" },
  config: { type: "string" },
  host: { type: "string" },
  port: { type: "string" },
  "drain-delay-ms": { type: "string" },
  "max-in-flight": { type: "string" },
  "memory-budget-mib": { type: "string" },
  "max-connections": { type: "string" },
  "metrics-port": { type: "string" },
  "log-level": { type: "string" },
  "audit-interval": { type: "string" },
  kubeconfig: { type: "string" },
};

const INJECT: Options = {
  ...HELP,
  filename: { type: "string", short: "f" },
  output: { type: "string", short: "o" },
  config: { type: "string" },
};

const AUDIT: Options = {
  ...HELP,
  kubeconfig: { type: "string" },
  context: { type: "string" },
  namespace: { type: "string", short: "n" },
  "all-namespaces": { type: "boolean", short: "A" },
  output: { type: "string", short: "o" },
  config: { type: "string" },
  webhook: { type: "string" },
  "injector-namespace": { type: "string" },
};

const COMMANDS: Record<string, Options> = { serve: SERVE, inject: INJECT, audit: AUDIT };

type Values = Record<string, string | boolean | undefined>;

/** Node's messages for unknown flags and missing values, made shorter. */
function parse(args: readonly string[], options: Options): Values {
  try {
    const { values } = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals: false,
    });
    return values as Values;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    if (unknown) throw new UsageError(`unknown flag ${unknown[1]}`);
    const positional = /^Unexpected argument '([^']+)'/.exec(message);
    if (positional) throw new UsageError(`unexpected argument ${positional[1]}`);
    const missing = /^Option '([^']+?)(?: <value>)?' argument missing/.exec(message);
    if (missing) throw new UsageError(`${missing[1]} needs a value`);
    const ambiguous = /^Option '([^']+)' argument is ambiguous/.exec(message);
    if (ambiguous) {
      throw new UsageError(
        `${ambiguous[1]} needs a value (write ${ambiguous[1]}=VALUE if it starts with -)`,
      );
    }
    throw new UsageError(message.split(". ")[0] ?? message);
  }
}

function text(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

function required(values: Values, name: string): string {
  const v = text(values, name);
  if (!v) throw new UsageError(`--${name} is required`);
  return v;
}

function integer(values: Values, name: string, fallback: number, min: number, max: number): number {
  const raw = text(values, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer ${min}-${max}`);
  }
  return n;
}

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000 };
const MIN_AUDIT_MS = 1000;
const MAX_AUDIT_MS = 24 * 3_600_000;

/** `5m`, `90s`, `1h30m`: a Go-style duration of whole hours, minutes and seconds. */
function duration(values: Values, name: string, min: number, max: number): number | undefined {
  const raw = text(values, name);
  if (raw === undefined) return undefined;
  const parts = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(raw);
  const ms = parts && raw !== ""
    ? ["h", "m", "s"].reduce((sum, unit, i) => sum + Number(parts[i + 1] ?? 0) * UNIT_MS[unit]!, 0)
    : NaN;
  if (!(ms >= min && ms <= max)) {
    throw new UsageError(`--${name} must be a duration such as 30s, 5m or 1h, from 1s to 24h`);
  }
  return ms;
}

function serveOptions(values: Values): ServeOptions {
  const logLevel = LEVELS.find((l) => l === (text(values, "log-level") ?? "info"));
  if (!logLevel) throw new UsageError(`--log-level must be ${LEVELS.join("|")}`);
  const auditIntervalMs = duration(values, "audit-interval", MIN_AUDIT_MS, MAX_AUDIT_MS);
  const kubeconfig = text(values, "kubeconfig");
  if (kubeconfig !== undefined && auditIntervalMs === undefined) {
    throw new UsageError("--kubeconfig is used only with --audit-interval");
  }
  return {
    certFile: required(values, "cert"),
    keyFile: required(values, "key"),
    configFile: text(values, "config"),
    hostname: text(values, "host") ?? "0.0.0.0",
    port: integer(values, "port", 8443, 0, MAX_PORT),
    drainDelayMs: integer(values, "drain-delay-ms", 5000, 0, MAX_DRAIN_DELAY_MS),
    maxInFlight: integer(values, "max-in-flight", DEFAULT_MAX_IN_FLIGHT, 1, MAX_BOUND),
    memoryBudgetBytes: MIB *
      integer(
        values,
        "memory-budget-mib",
        DEFAULT_MEMORY_BUDGET_BYTES / MIB,
        1,
        MAX_MEMORY_BUDGET_MIB,
      ),
    maxConnections: integer(
      values,
      "max-connections",
      SERVER_DEFAULTS.maxConnections,
      1,
      MAX_BOUND,
    ),
    metricsPort: values["metrics-port"] === undefined
      ? undefined
      : integer(values, "metrics-port", 0, 0, MAX_PORT),
    logLevel,
    auditIntervalMs,
    kubeconfig,
  };
}

function injectOptions(values: Values): InjectOptions {
  const output = text(values, "output") ?? "yaml";
  if (output !== "yaml" && output !== "json") throw new UsageError("-o must be yaml or json");
  return { file: required(values, "filename"), output, configFile: text(values, "config") };
}

function auditOptions(values: Values): AuditOptions {
  const output = text(values, "output") ?? "table";
  if (output !== "table" && output !== "json") throw new UsageError("-o must be table or json");
  const namespace = text(values, "namespace");
  const allNamespaces = values["all-namespaces"] === true;
  if (namespace !== undefined && allNamespaces) {
    throw new UsageError("--namespace and --all-namespaces exclude each other");
  }
  return {
    kubeconfig: text(values, "kubeconfig"),
    context: text(values, "context"),
    namespace,
    allNamespaces,
    output,
    configFile: text(values, "config"),
    webhook: text(values, "webhook") ?? "sidecar-injector",
    injectorNamespace: text(values, "injector-namespace"),
  };
}

/**
 * Parses the command line. The first argument names the command (`serve`
 * when it is a flag or absent); each command accepts only its own flags.
 *
 * @throws {UsageError} on an unknown command or flag, a missing or bad value.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommand } from "./options.ts";
 * const cmd = parseCommand(["inject", "-f", "-", "--output=json"]);
 * assert.deepEqual(cmd, { name: "inject", options: { file: "-", output: "json", configFile: undefined } });
 * assert.throws(() => parseCommand(["inject", "-f", "x", "--port", "9"]), /unknown flag --port/);
 * ```
 */
export function parseCommand(args: readonly string[]): Command {
  const first = args[0];
  const named = first !== undefined && !first.startsWith("-");
  const name = named ? first : "serve";
  const rest = named ? args.slice(1) : args;
  if (name === "help") return { name: "help" };
  const options = COMMANDS[name];
  if (!options) throw new UsageError(`unknown command ${name}`);
  const values = parse(rest, options);
  if (values.help === true) return { name: "help" };
  switch (name) {
    case "serve":
      return { name, options: serveOptions(values) };
    case "audit":
      return { name, options: auditOptions(values) };
    default:
      return { name: "inject", options: injectOptions(values) };
  }
}
