/**
 * The agents' own configuration files, rendered from a profile and the pod.
 *
 * Both agents are set up to lose nothing a container restart, an OOM kill or
 * an aggregator outage can take: tail positions and buffered records live
 * together on the agent's state volume (an emptyDir, so they outlive the
 * agent's process but not the pod), retries never stop, and buffered records
 * are flushed every second and on SIGTERM.
 * @module
 */
import type { Agent, Output } from "./config.ts";

/** Where each agent's image reads its config (the rendered config or the operator's ConfigMap is mounted there). */
export const AGENT_CONFIG_DIR: Record<Agent, string> = {
  "fluentd": "/fluentd/etc",
  "fluent-bit": "/fluent-bit/etc",
};

/** Where the agent keeps what must outlive its own restarts: positions, buffers, temp files. */
export const AGENT_STATE_DIR = "/var/lib/sidecar-injector";
/** Where a forward output's CA bundle is mounted. */
export const FORWARD_CA_DIR = "/etc/sidecar-injector/forward-ca";
/** The file, in the agent's config dir, that holds the rendered config. */
export const AGENT_CONFIG_FILE: Record<Agent, string> = {
  "fluentd": "fluent.conf",
  "fluent-bit": "fluent-bit.conf",
};
/**
 * Longest line shipped; neither agent can split or truncate a line, so a
 * longer one is dropped and reported in the agent's own log, and the file
 * goes on being read.
 */
export const MAX_LINE_BYTES = 1024 * 1024;
/** How many directory levels below the log dir Fluent Bit reads (its globs have no `**`). */
export const FLUENT_BIT_DEPTH = 8;
/** Seconds between flushes, and between scans for new files. */
const FLUSH_SECONDS = 1;
/** Upper bound of the retry backoff, seconds: delivery resumes this soon after an outage ends. */
const RETRY_MAX_SECONDS = 30;
/** Fluent Bit's SIGTERM grace, seconds; the pod's default termination grace is 30. */
const FLUENT_BIT_GRACE_SECONDS = 10;
/**
 * Fluent Bit forgets a renamed file this long after the rename and then reads
 * it again from the start if its new name still matches; a year is "until
 * the file is deleted" in practice.
 */
const FLUENT_BIT_ROTATE_WAIT_SECONDS = 365 * 24 * 3600;
/** Fluent Bit chunks held in memory at once (about 2 MB each); the rest wait on disk. */
const FLUENT_BIT_CHUNKS_UP = 8;

/**
 * Returns why `logDir` cannot be the log dir of `agent`: the agent mounts its
 * config, state and CA there, and one mount may not sit on or inside another's path.
 */
export function checkAgentPaths(logDir: string, agent: Agent): string | undefined {
  for (const dir of [AGENT_CONFIG_DIR[agent], AGENT_STATE_DIR, FORWARD_CA_DIR]) {
    if (logDir === dir || logDir.startsWith(`${dir}/`) || dir.startsWith(`${logDir}/`)) {
      return `must not be, contain or lie in ${dir}, where the agent mounts its own files`;
    }
  }
  return undefined;
}

/** What the rendered config needs to know. */
export interface Pipeline {
  logDir: string;
  output: Output;
  /** Names of the app containers that write to the log volume. */
  containers: readonly string[];
  /** Bound of buffered records on the state volume, in bytes. */
  bufferBytes: number;
}

/** The tag prefix of a file under `logDir`: both agents tag a file `app.` plus its path with `/` → `.`. */
function tagOf(logDir: string): string {
  return `app.${logDir.slice(1).replaceAll("/", ".")}`;
}

/** The only app container, which every record names; `undefined` when several share the volume. */
const onlyContainer = (p: Pipeline): string | undefined =>
  p.containers.length === 1 ? p.containers[0] : undefined;

/**
 * With several app containers, which one a record belongs to, as (tag
 * pattern, name) pairs applied after a default of the file's path: the one a
 * file is named after (`<logDir>/<name>.log`, `<logDir>/<name>/...`).
 */
function containerRules(p: Pipeline, any: string): Array<[string, string]> {
  if (onlyContainer(p) !== undefined) return [];
  const tag = tagOf(p.logDir);
  return p.containers.map((name) => [`${tag}.${name}.${any}`, name]);
}

const mib = (bytes: number) => `${Math.max(1, Math.floor(bytes / 2 ** 20))}m`;

/**
 * The Fluentd config: tail every `*.log` at any depth, add pod, namespace,
 * node and container, buffer to files, ship to stdout (one JSON object per
 * line) or forward.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fluentdConfig } from "./agent_config.ts";
 * const text = fluentdConfig({
 *   logDir: "/var/log/app", output: { type: "stdout" }, containers: ["web"], bufferBytes: 2 ** 28,
 * });
 * assert.match(text, /path \/var\/log\/app\/\*\*\/\*\.log/);
 * assert.match(text, /container web/);
 * ```
 */
export function fluentdConfig(p: Pipeline): string {
  const lines = [
    "<source>",
    "  @type tail",
    "  @id app_logs",
    `  path ${p.logDir}/**/*.log`,
    `  pos_file ${AGENT_STATE_DIR}/tail.pos`,
    "  pos_file_compaction_interval 1h",
    "  path_key file",
    "  tag app.*",
    "  read_from_head true",
    "  follow_inodes true",
    `  refresh_interval ${FLUSH_SECONDS}`,
    "  rotate_wait 30",
    `  max_line_size ${MAX_LINE_BYTES}`,
    "  <parse>",
    "    @type none",
    "    message_key log",
    "  </parse>",
    "</source>",
    "<filter app.**>",
    "  @type record_transformer",
    "  <record>",
    `    container ${onlyContainer(p) ?? '${record["file"]}'}`,
    `    pod "#{ENV['POD_NAME']}"`,
    `    namespace "#{ENV['POD_NAMESPACE']}"`,
    `    node "#{ENV['NODE_NAME']}"`,
    "  </record>",
    "</filter>",
  ];
  for (const [pattern, name] of containerRules(p, "**")) {
    lines.push(
      `<filter ${pattern}>`,
      "  @type record_transformer",
      "  <record>",
      `    container ${name}`,
      "  </record>",
      "</filter>",
    );
  }
  if (p.output.type === "raw") return [...lines, p.output.config].join("\n");
  // out_forward needs chunks keyed by tag; out_file on stdout takes one stream.
  const chunkKeys = p.output.type === "forward" ? "tag" : "[]";
  lines.push(
    "<match app.**>",
    ...fluentdOutput(p.output),
    ...fluentdBuffer(p.bufferBytes, chunkKeys),
  );
  lines.push("</match>");
  return lines.join("\n");
}

function fluentdOutput(output: Exclude<Output, { type: "raw" }>): string[] {
  if (output.type === "stdout") {
    // out_stdout writes through Fluentd's logger, interleaved with its own log lines;
    // out_file on /dev/stdout writes only the records.
    return [
      "  @type file",
      "  path /dev/stdout",
      '  path_suffix ""',
      "  append true",
      "  <format>",
      "    @type json",
      "  </format>",
      "  <inject>",
      "    time_key time",
      "    time_type string",
      "    time_format %Y-%m-%dT%H:%M:%S.%NZ",
      "    utc true",
      "  </inject>",
    ];
  }
  const tls = output.tls
    ? [
      "  transport tls",
      "  tls_verify_hostname true",
      ...(output.ca ? [`  tls_cert_path ${FORWARD_CA_DIR}/${output.ca.key}`] : []),
    ]
    : [];
  return [
    "  @type forward",
    "  @id forward",
    // Without acks a chunk written into a dying connection counts as sent.
    "  require_ack_response true",
    "  ack_response_timeout 30s",
    // Start, and say so, when the aggregator is down or its name does not resolve yet.
    "  ignore_network_errors_at_startup true",
    "  connect_timeout 5s",
    "  expire_dns_cache 30",
    ...tls,
    "  <server>",
    `    host ${output.host}`,
    `    port ${output.port}`,
    "  </server>",
  ];
}

function fluentdBuffer(bufferBytes: number, chunkKeys: string): string[] {
  return [
    `  <buffer ${chunkKeys}>`,
    "    @type file",
    `    path ${AGENT_STATE_DIR}/buffer`,
    "    flush_mode interval",
    `    flush_interval ${FLUSH_SECONDS}s`,
    // A file buffer is kept for the next start by default, but the pod's
    // emptyDir dies with the pod: flush on SIGTERM.
    "    flush_at_shutdown true",
    "    flush_thread_count 1",
    "    retry_forever true",
    "    retry_type exponential_backoff",
    "    retry_wait 1s",
    `    retry_max_interval ${RETRY_MAX_SECONDS}s`,
    `    chunk_limit_size ${mib(2 * MAX_LINE_BYTES)}`,
    `    total_limit_size ${mib(bufferBytes)}`,
    // A full buffer stops the tail (the lines wait in their files) instead of dropping records.
    "    overflow_action block",
    "  </buffer>",
  ];
}

/** Fluent Bit classic-mode config; `${VAR}` is expanded by Fluent Bit from the environment. */
export function fluentBitConfig(p: Pipeline): string {
  const section = (name: string, entries: Array<[string, string | number]>) => [
    `[${name}]`,
    ...entries.map(([k, v]) => `    ${k.padEnd(24)} ${v}`),
  ];
  const storage = `${AGENT_STATE_DIR}/storage`;
  const paths = Array.from(
    { length: FLUENT_BIT_DEPTH + 1 },
    (_, depth) => `${p.logDir}/${"*/".repeat(depth)}*.log`,
  );
  const lines = [
    ...section("SERVICE", [
      ["Flush", FLUSH_SECONDS],
      ["Grace", FLUENT_BIT_GRACE_SECONDS],
      ["Log_Level", "info"],
      ["storage.path", storage],
      ["storage.sync", "normal"],
      ["storage.max_chunks_up", FLUENT_BIT_CHUNKS_UP],
      ["storage.backlog.mem_limit", "4M"],
      ["scheduler.base", 1],
      ["scheduler.cap", RETRY_MAX_SECONDS],
    ]),
    ...section("INPUT", [
      ["Name", "tail"],
      ["Path", paths.join(",")],
      ["Path_Key", "file"],
      ["Tag", "app.*"],
      ["DB", `${AGENT_STATE_DIR}/tail.db`],
      ["DB.locking", "true"],
      ["Read_from_Head", "true"],
      ["Refresh_Interval", FLUSH_SECONDS],
      ["Rotate_Wait", FLUENT_BIT_ROTATE_WAIT_SECONDS],
      ["Buffer_Max_Size", `${MAX_LINE_BYTES / 1024}k`],
      ["Skip_Long_Lines", "On"],
      ["storage.type", "filesystem"],
    ]),
  ];
  const only = onlyContainer(p);
  if (only === undefined) {
    lines.push(
      ...section("FILTER", [["Name", "modify"], ["Match", "app.*"], ["Copy", "file container"]]),
    );
  }
  for (const [pattern, name] of containerRules(p, "*")) {
    lines.push(...section("FILTER", [["Name", "modify"], ["Match", pattern], [
      "Set",
      `container ${name}`,
    ]]));
  }
  lines.push(...section("FILTER", [
    ["Name", "record_modifier"],
    ["Match", "app.*"],
    ["Record", "pod ${POD_NAME}"],
    ["Record", "namespace ${POD_NAMESPACE}"],
    ["Record", "node ${NODE_NAME}"],
    ...(only === undefined ? [] : [["Record", `container ${only}`] as [string, string]]),
  ]));
  if (p.output.type === "forward") {
    const o = p.output;
    lines.push(...section("OUTPUT", [
      ["Name", "forward"],
      ["Match", "app.*"],
      ["Host", o.host],
      ["Port", o.port],
      ["Require_ack_response", "true"],
      ["Retry_Limit", "no_limits"],
      ["net.connect_timeout", 5],
      // Past this the oldest chunks are dropped (Fluent Bit cannot stop its input on disk use).
      ["storage.total_limit_size", `${mib(p.bufferBytes).toUpperCase()}`],
      ...(o.tls
        ? [
          ["tls", "on"],
          ["tls.verify", "on"],
          ["tls.vhost", o.host],
          ...(o.ca ? [["tls.ca_file", `${FORWARD_CA_DIR}/${o.ca.key}`]] : []),
        ] as Array<[string, string]>
        : []),
    ]));
  } else {
    // parseConfig rejects raw output for fluent-bit.
    lines.push(...section("OUTPUT", [
      ["Name", "stdout"],
      ["Match", "app.*"],
      ["Format", "json_lines"],
      ["json_date_key", "time"],
      ["json_date_format", "iso8601"],
    ]));
  }
  return lines.join("\n") + "\n";
}
