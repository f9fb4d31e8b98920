/**
 * The Fluent Bit config (classic format: tail, modify, record_modifier,
 * filesystem storage, stdout or forward) rendered from a pipeline.
 * @module
 */
import { fluentBitHttpServer } from "./http.ts";
import { AGENT_STATE_DIR, FORWARD_CA_DIR } from "./paths.ts";
import {
  containerRules,
  FLUSH_SECONDS,
  MAX_LINE_BYTES,
  mib,
  onlyContainer,
  type Pipeline,
  RETRY_MAX_SECONDS,
} from "./pipeline.ts";

/** How many directory levels below the log dir Fluent Bit reads (its globs have no `**`). */
export const FLUENT_BIT_DEPTH = 8;
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
      ...fluentBitHttpServer(p),
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
