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
/**
 * How a line becomes a record: `none` keeps it as `log` text, `json` turns a
 * JSON object into fields, `java`/`python`/`go` join a stack trace and the
 * line that introduced it into one record.
 */
export type Parser = "none" | "json" | "java" | "python" | "go";
/** Every parser, in the order the docs list them. */
export const PARSERS: readonly Parser[] = ["none", "json", "java", "python", "go"];
/** The parsers that join several lines into one record. */
export type MultilineParser = Exclude<Parser, "none" | "json">;

/**
 * Keys the agent writes into every record. An app's JSON key of the same
 * name is moved under {@linkcode APP_FIELDS_KEY} instead of replacing it.
 */
export const RESERVED_KEYS: readonly string[] = [
  "pod",
  "namespace",
  "node",
  "container",
  "file",
  "time",
  "log",
];
/** Where colliding keys of an app's JSON line go (itself reserved, so an app's `app_fields` moves too). */
export const APP_FIELDS_KEY = "app_fields";

/**
 * Lines that continue the record before them, per language (Ruby/Onigmo
 * regex syntax); every other line starts a record. The line that introduced a
 * trace (the log call's own line) thus stays with it.
 */
export const CONTINUATION: Record<MultilineParser, readonly string[]> = {
  java: [
    "\\s", // `\tat ...`, `\t... 5 more`, indented `Suppressed:` and `Caused by:`
    "Caused by: ",
    "\\.\\.\\. \\d+ (?:more|common frames omitted)",
    // The exception itself: `java.lang.IllegalStateException: ...`, `com.x.MyError`.
    "[a-zA-Z_$][\\w$]*(?:\\.[a-zA-Z_$][\\w$]*)+(?:Exception|Error|Throwable)(?::|$)",
  ],
  python: [
    "\\s", // `  File "...", line N`, the source line, `    ^^^^`
    "$", // the blank lines around a chained exception's separator
    "Traceback \\(most recent call last\\):",
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
    // The final `SomeError: message` (or a bare `KeyboardInterrupt`).
    "[A-Za-z_][\\w.]*(?:Error|Exception|Warning|Interrupt|Exit|Iteration)(?::|$)",
  ],
  go: [
    "\\s", // `\t/app/main.go:12 +0x1d`
    "$",
    "goroutine \\d+ \\[",
    "created by ",
    "\\[signal ",
    // A frame's function: `main.main()`, `main.(*Server).handle(0xc000010000, {0x4a1b2c, 0x5})`.
    "[\\w./*()\\[\\]-]+\\(.*\\)$",
  ],
};

/** A regex matching exactly the lines that start a record under `parser`. */
export function firstLine(parser: MultilineParser): string {
  return `^(?!${CONTINUATION[parser].join("|")})`;
}

/**
 * The last (or only) record of a multiline burst is emitted this long after its last line; a
 * trace is written at once, and the output's flush and the file's discovery come on top.
 */
export const MULTILINE_FLUSH_SECONDS = 3;

/**
 * Why `agent` cannot run `parser`, or `undefined` when it can. Fluent Bit's
 * built-in multiline parsers split a trace from the line that introduced it
 * (measured with 3.2 and 5.1.1: `java` ships the log call's line and the exception as
 * two records); a regex multiline parser with {@linkcode CONTINUATION}'s rules joins
 * them, but 5.1.1 aborts when stopped with a record still in its multiline buffer and
 * loses it (docs/log-path.md). So they are refused rather than split or lost silently.
 */
export function checkParser(agent: Agent, parser: Parser): string | undefined {
  if (agent === "fluent-bit" && parser !== "none" && parser !== "json") {
    return `agent fluent-bit cannot run parser ${parser}: its built-in ${parser} multiline ` +
      "parser splits a stack trace from the line that introduced it; use agent fluentd " +
      "(parsers none, json, java, python, go) or parser none or json";
  }
  return undefined;
}

/** What the rendered config needs to know. */
export interface Pipeline {
  logDir: string;
  output: Output;
  /** How lines become records; `none` when absent. */
  parser?: Parser;
  /** Containers whose files are read with another parser than `parser`. */
  containerParsers?: Readonly<Record<string, Parser>>;
  /** Names of the app containers that write to the log volume. */
  containers: readonly string[];
  /** Bound of buffered records on the state volume, in bytes. */
  bufferBytes: number;
  /** Serve metrics on the port in `AGENT_METRICS_PORT` (see `http.ts`). */
  metrics?: boolean;
}

/** The tag of every file read with the pod's parser; a container with its own parser adds `.<name>`. */
export const APP_TAG = "app";

/** Files read alike: their tag, their parser, and the container when it has a parser of its own. */
export interface Stream {
  tag: string;
  parser: Parser;
  container?: string;
}

/** The pod's stream, then one per container with a parser of its own (its files: {@linkcode containerGlobs}). */
export function streams(p: Pipeline): Stream[] {
  const parser = p.parser ?? "none";
  const own = Object.entries(p.containerParsers ?? {}).filter(([c, other]) =>
    p.containers.includes(c) && other !== parser
  );
  return [
    { tag: APP_TAG, parser },
    ...own.map(([container, other]) => ({
      tag: `${APP_TAG}.${container}`,
      parser: other,
      container,
    })),
  ];
}

/** A container's files: the file named after it and what lies under the directory named after it. */
export const containerFiles = (p: Pipeline, container: string): [string, string] => [
  `${p.logDir}/${container}.log`,
  `${p.logDir}/${container}/`,
];

/** The only app container, which every record names; `undefined` when several share the volume. */
export const onlyContainer = (p: Pipeline): string | undefined =>
  p.containers.length === 1 ? p.containers[0] : undefined;

/**
 * With several app containers, which one a record belongs to, as (regex on
 * the file's path, name) pairs applied after a default of the path itself:
 * the container a file is named after (`<logDir>/<name>.log`, `<logDir>/<name>/...`).
 */
export function containerPaths(p: Pipeline): Array<[string, string]> {
  if (onlyContainer(p) !== undefined) return [];
  const quote = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return p.containers.map((name) => [`^${quote(p.logDir)}/${quote(name)}(\\.log$|/)`, name]);
}

/** Bytes as whole MiB for the agents' size settings, at least 1. */
export const mib = (bytes: number): string => `${Math.max(1, Math.floor(bytes / 2 ** 20))}m`;
