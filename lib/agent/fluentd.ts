/**
 * The Fluentd config (in_tail, the injector's filter plugin, record_transformer, file buffer, out_file on
 * stdout or out_forward) rendered from a pipeline.
 * @module
 */
import { fluentdMonitorAgent } from "./http.ts";
import { AGENT_STATE_DIR, FORWARD_CA_DIR } from "./paths.ts";
import {
  containerFiles,
  containerPaths,
  firstLine,
  FLUSH_SECONDS,
  MAX_LINE_BYTES,
  mib,
  MULTILINE_FLUSH_SECONDS,
  onlyContainer,
  type Output,
  type Parser,
  type Pipeline,
  RETRY_MAX_SECONDS,
  streams,
} from "./pipeline.ts";
import { FLUENTD_PLUGIN_TYPE } from "./fluentd_plugin.ts";

/**
 * Bytes in_tail reads from one file in a second, so at most this (plus one line) in one batch of
 * records. Without it a batch was up to `read_lines_limit` (1,000) lines whatever their length:
 * a 150 MB burst of 512 KiB lines OOM-killed Fluentd at its 256Mi limit, and again on every
 * restart (the same batch is read again), so none of it shipped (tests/agents/node_pods.ts).
 * 8 MiB a second is ~80,000 lines of 100 bytes, more than one Fluentd worker ships.
 */
const FLUENTD_READ_BYTES_PER_SECOND = 8 * 1024 * 1024;

/**
 * The Fluentd config: tail every `*.log` at any depth, add pod, namespace,
 * node and container, buffer to files, ship to stdout (one JSON object per
 * line) or forward.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fluentdConfig } from "./fluentd.ts";
 * const text = fluentdConfig({
 *   logDir: "/var/log/app", output: { type: "stdout" }, containers: ["web"], bufferBytes: 2 ** 28,
 * });
 * assert.match(text, /path \/var\/log\/app\/\*\*\/\*\.log/);
 * assert.match(text, /container web/);
 * ```
 */
export function fluentdConfig(p: Pipeline): string {
  const all = streams(p);
  const own = all.flatMap((s) => s.container === undefined ? [] : [s.container]);
  const lines = all.flatMap((s) => {
    const [file, dir] = s.container === undefined ? [] : containerFiles(p, s.container);
    const excluded = own.flatMap((c) => {
      const [f, d] = containerFiles(p, c);
      return [f, `${d}**/*.log`];
    });
    return [
      "<source>",
      "  @type tail",
      `  @id app_logs${s.container === undefined ? "" : `_${s.container}`}`,
      `  path ${s.container === undefined ? `${p.logDir}/**/*.log` : `${file},${dir}**/*.log`}`,
      ...(s.container === undefined && excluded.length > 0
        ? [`  exclude_path ${JSON.stringify(excluded)}`]
        : []),
      `  pos_file ${AGENT_STATE_DIR}/tail${s.container === undefined ? "" : `-${s.container}`}.pos`,
      "  pos_file_compaction_interval 1h",
      "  path_key file",
      // One tag for every file (the path is the record's `file`): out_forward keys chunks by
      // tag, and a chunk per file made hundreds of files ship one chunk after another.
      `  tag ${s.tag}`,
      "  read_from_head true",
      "  follow_inodes true",
      `  refresh_interval ${FLUSH_SECONDS}`,
      "  rotate_wait 30",
      `  max_line_size ${MAX_LINE_BYTES}`,
      // A read stops after this many bytes of a file (the rest waits for the next second): one
      // read's batch of records is otherwise up to 1,000 lines of up to 1 MiB each.
      `  read_bytes_limit_per_second ${mib(FLUENTD_READ_BYTES_PER_SECOND)}`,
      ...fluentdParse(s.parser),
      "</source>",
    ];
  });
  lines.push(...fluentdMonitorAgent(p));
  for (const s of all) {
    // Every record valid UTF-8 (and, with parser json, JSON lines as fields).
    lines.push(
      `<filter ${s.tag}>`,
      `  @type ${FLUENTD_PLUGIN_TYPE}`,
      ...(s.parser === "json" ? ["  parser json"] : []),
      "</filter>",
    );
  }
  lines.push(
    "<filter app.**>",
    "  @type record_transformer",
    ...(onlyContainer(p) === undefined ? ["  enable_ruby true"] : []),
    "  <record>",
    `    container ${onlyContainer(p) ?? containerExpression(p)}`,
    `    pod "#{ENV['POD_NAME']}"`,
    `    namespace "#{ENV['POD_NAMESPACE']}"`,
    `    node "#{ENV['NODE_NAME']}"`,
    "  </record>",
    "</filter>",
  );
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

/** With several containers, a Ruby expression naming the one a record's file belongs to, else the path. */
function containerExpression(p: Pipeline): string {
  const choices = containerPaths(p).map(([regex, name]) =>
    `record["file"].to_s.match?(/${regex.replaceAll("/", "\\/")}/) ? "${name}" : `
  );
  return `\${${choices.join("")}record["file"]}`;
}

/** in_tail's `<parse>`: one line per record, or in_tail's `multiline` parser for a language. */
function fluentdParse(parser: Parser): string[] {
  if (parser === "none" || parser === "json") {
    return ["  <parse>", "    @type none", "    message_key log", "  </parse>"];
  }
  return [
    // The record being joined is emitted this long after its last line, and on SIGTERM.
    `  multiline_flush_interval ${MULTILINE_FLUSH_SECONDS}s`,
    // Continuation lines at the top of a file (no first line yet) are kept, not dropped.
    "  emit_unmatched_lines true",
    "  <parse>",
    "    @type multiline",
    `    format_firstline /${firstLine(parser)}/`,
    "    format1 /(?<log>.*)/",
    "  </parse>",
  ];
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
