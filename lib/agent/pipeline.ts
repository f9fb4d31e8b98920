/**
 * What both agents' configs are rendered from: where the logs are, where
 * records go, which containers write them, how much may be buffered; and
 * the rules the two renderings share.
 *
 * Both agents are set up to lose nothing a container restart, an OOM kill or
 * an aggregator outage can take: tail positions and buffered records live
 * together on the agent's state volume (an emptyDir, so they outlive the
 * agent's process but not the pod), retries never stop, and buffered records
 * are flushed every second and on SIGTERM.
 * @module
 */

/** Which log agent a profile runs; decides how its config is rendered. */
export type Agent = "fluentd" | "fluent-bit";

/** Where a forward output's CA bundle comes from: a key of a Secret or ConfigMap in the pod's namespace. */
export type CaSource = { secret: string; key: string } | { configMap: string; key: string };

/** Where the agent sends what it tails. */
export type Output =
  | { type: "stdout" }
  | { type: "forward"; host: string; port: number; tls: boolean; ca?: CaSource }
  | { type: "raw"; config: string };

/**
 * Longest line shipped; neither agent can split or truncate a line, so a
 * longer one is dropped and reported in the agent's own log, and the file
 * goes on being read.
 */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Seconds between flushes, and between scans for new files. */
export const FLUSH_SECONDS = 1;
/** Upper bound of the retry backoff, seconds: delivery resumes this soon after an outage ends. */
export const RETRY_MAX_SECONDS = 30;
/** What the rendered config needs to know. */
export interface Pipeline {
  logDir: string;
  output: Output;
  /** Names of the app containers that write to the log volume. */
  containers: readonly string[];
  /** Bound of buffered records on the state volume, in bytes. */
  bufferBytes: number;
  /** Serve metrics on the port in `AGENT_METRICS_PORT` (see `http.ts`). */
  metrics?: boolean;
}

/** The tag prefix of a file under `logDir`: both agents tag a file `app.` plus its path with `/` → `.`. */
export function tagOf(logDir: string): string {
  return `app.${logDir.slice(1).replaceAll("/", ".")}`;
}

/** The only app container, which every record names; `undefined` when several share the volume. */
export const onlyContainer = (p: Pipeline): string | undefined =>
  p.containers.length === 1 ? p.containers[0] : undefined;

/**
 * With several app containers, which one a record belongs to, as (tag
 * pattern, name) pairs applied after a default of the file's path: the one a
 * file is named after (`<logDir>/<name>.log`, `<logDir>/<name>/...`).
 */
export function containerRules(p: Pipeline, any: string): Array<[string, string]> {
  if (onlyContainer(p) !== undefined) return [];
  const tag = tagOf(p.logDir);
  return p.containers.map((name) => [`${tag}.${name}.${any}`, name]);
}

/** Bytes as whole MiB for the agents' size settings, at least 1. */
export const mib = (bytes: number): string => `${Math.max(1, Math.floor(bytes / 2 ** 20))}m`;
