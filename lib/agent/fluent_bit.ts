/**
 * The Fluent Bit config (classic format: tail, lua, parser, nest, modify, record_modifier,
 * filesystem storage, stdout or forward) rendered from a pipeline.
 * @module
 */
import { fluentBitHttpServer } from "./http.ts";
import { AGENT_CONFIG_DIR, AGENT_STATE_DIR, FORWARD_CA_DIR } from "./paths.ts";
import {
  APP_FIELDS_KEY,
  APP_TAG,
  containerFiles,
  containerPaths,
  FLUSH_SECONDS,
  MAX_LINE_BYTES,
  mib,
  onlyContainer,
  type Pipeline,
  RESERVED_KEYS,
  RETRY_MAX_SECONDS,
  streams,
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
/**
 * The one tag of every file. A tag per file meant a chunk per file, and with
 * hundreds of files the few chunks allowed up in memory took turns: 300 new
 * files of 3 lines took ~38 s. The file's path is the record's `file` key.
 */
export const FLUENT_BIT_TAG = APP_TAG;
/** The parsers file in the agent's config dir, rendered when a parser needs one. */
export const FLUENT_BIT_PARSERS_FILE = "parsers.conf";
/** The parser (in that file) that reads a line as a JSON object. */
const JSON_PARSER = "sidecar_json";
/** Where the agent's own keys wait while a JSON line is parsed; no app uses such keys. */
const HOLD = "__sidecar_";

/**
 * Lua: each byte of `log` that is not part of valid UTF-8 becomes U+E000 +
 * the byte, as Fluentd's plugin does, so every record is valid UTF-8 on
 * stdout and over forward alike (Fluent Bit alone drops some such bytes when
 * it writes JSON, and forwards them raw). Lines without a byte >= 0x80 cost one
 * `find`.
 */
const UTF8_LUA = [
  "function sidecar_utf8(tag, ts, record)",
  'local s = record["log"]',
  'if type(s) ~= "string" or not s:find("[\\128-\\255]") then return 0, ts, record end',
  "local out, i, n = {}, 1, #s",
  "while i <= n do",
  "local c = s:byte(i)",
  "local len = 0",
  "if c < 0x80 then len = 1 elseif c >= 0xC2 and c <= 0xDF then len = 2",
  "elseif c >= 0xE0 and c <= 0xEF then len = 3 elseif c >= 0xF0 and c <= 0xF4 then len = 4 end",
  "local ok = len > 0 and i + len - 1 <= n",
  "if ok and len > 1 then",
  "for j = i + 1, i + len - 1 do local d = s:byte(j) if d < 0x80 or d > 0xBF then ok = false break end end",
  "local d = s:byte(i + 1)",
  "if (c == 0xE0 and d < 0xA0) or (c == 0xED and d > 0x9F) or (c == 0xF0 and d < 0x90) or (c == 0xF4 and d > 0x8F) then ok = false end",
  "end",
  "if ok then out[#out + 1] = s:sub(i, i + len - 1) i = i + len",
  "else out[#out + 1] = string.char(0xEE, 0x80 + math.floor(c / 64), 0x80 + c % 64) i = i + 1 end",
  "end",
  'record["log"] = table.concat(out)',
  "return 2, ts, record",
  "end",
].join(" ");

/** The parsers file Fluent Bit needs for `parser`, or `undefined` when it needs none. */
export function fluentBitParsers(p: Pipeline): string | undefined {
  if (!streams(p).some((s) => s.parser === "json")) return undefined;
  // No Time_Key: an app's `time` is one of its fields, the record's time is when the line was read.
  return `[PARSER]\n    Name   ${JSON_PARSER}\n    Format json\n`;
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
  const lines: string[] = [
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
      ...(fluentBitParsers(p) === undefined ? [] : [[
        "Parsers_File",
        `${AGENT_CONFIG_DIR["fluent-bit"]}/${FLUENT_BIT_PARSERS_FILE}`,
      ]] as Array<
        [string, string]
      >),
      ...fluentBitHttpServer(p),
    ]),
  ];
  const all = streams(p);
  const own = all.flatMap((s) => s.container === undefined ? [] : [s.container]);
  for (const s of all) {
    const input = s.container === undefined ? paths : containerFiles(p, s.container).flatMap(
      (f, i) =>
        i === 0 ? [f] : Array.from(
          { length: FLUENT_BIT_DEPTH },
          (_, depth) => `${f}${"*/".repeat(depth)}*.log`,
        ),
    );
    // Fluent Bit's exclusion patterns let `*` match `/`: a directory's whole tree.
    const excluded = s.container === undefined
      ? own.flatMap((c) => containerFiles(p, c).map((f, i) => i === 0 ? f : `${f}*`))
      : [];
    const suffix = s.container === undefined ? "" : `-${s.container}`;
    lines.push(...section("INPUT", [
      ["Name", "tail"],
      ["Path", input.join(",")],
      ...(excluded.length > 0 ? [["Exclude_Path", excluded.join(",")] as [string, string]] : []),
      ["Path_Key", "file"],
      ["Tag", s.tag],
      ["DB", `${AGENT_STATE_DIR}/tail${suffix}.db`],
      ["DB.locking", "true"],
      ["Read_from_Head", "true"],
      ["Refresh_Interval", FLUSH_SECONDS],
      ["Rotate_Wait", FLUENT_BIT_ROTATE_WAIT_SECONDS],
      ["Buffer_Chunk_Size", "32k"],
      ["Buffer_Max_Size", `${MAX_LINE_BYTES / 1024}k`],
      ["Skip_Long_Lines", "On"],
      ["storage.type", "filesystem"],
    ]));
  }
  // `app*` takes every stream's tag (`app`, `app.<container>`).
  const match: [string, string] = ["Match", all.length > 1 ? `${APP_TAG}*` : APP_TAG];
  const jsonTags = all.filter((s) => s.parser === "json").map((s) => s.tag);
  const jsonMatch: [string, string] = jsonTags.length === all.length
    ? match
    : ["Match_Regex", `^(${jsonTags.map((t) => t.replaceAll(".", "\\.")).join("|")})$`];

  lines.push(...section("FILTER", [
    ["Name", "lua"],
    match,
    ["call", "sidecar_utf8"],
    ["code", UTF8_LUA],
  ]));
  if (jsonTags.length > 0) {
    // The parser filter keeps an existing key over a parsed one of the same name, so the
    // agent's keys are held aside, the JSON object's keys that collide with them nested
    // under app_fields, and the agent's keys put back. A line that is not a JSON object
    // keeps its (held) text.
    lines.push(
      ...section("FILTER", [["Name", "modify"], jsonMatch, ["Rename", `log ${HOLD}log`], [
        "Rename",
        `file ${HOLD}file`,
      ]]),
      ...section("FILTER", [
        ["Name", "parser"],
        jsonMatch,
        ["Key_Name", `${HOLD}log`],
        ["Parser", JSON_PARSER],
        ["Reserve_Data", "On"],
      ]),
      ...section("FILTER", [
        ["Name", "nest"],
        jsonMatch,
        ["Operation", "nest"],
        ...[...RESERVED_KEYS, APP_FIELDS_KEY].map((k): [string, string] => ["Wildcard", k]),
        ["Nest_under", APP_FIELDS_KEY],
      ]),
      ...section("FILTER", [["Name", "modify"], jsonMatch, ["Rename", `${HOLD}log log`], [
        "Rename",
        `${HOLD}file file`,
      ]]),
    );
  }
  const only = onlyContainer(p);
  if (only === undefined) {
    lines.push(...section("FILTER", [["Name", "modify"], match, ["Copy", "file container"]]));
  }
  for (const [regex, name] of containerPaths(p)) {
    lines.push(...section("FILTER", [
      ["Name", "modify"],
      match,
      ["Condition", `Key_value_matches file ${regex}`],
      ["Set", `container ${name}`],
    ]));
  }
  lines.push(...section("FILTER", [
    ["Name", "record_modifier"],
    match,
    ["Record", "pod ${POD_NAME}"],
    ["Record", "namespace ${POD_NAMESPACE}"],
    ["Record", "node ${NODE_NAME}"],
    ...(only === undefined ? [] : [["Record", `container ${only}`] as [string, string]]),
  ]));
  if (p.output.type === "forward") {
    const o = p.output;
    lines.push(...section("OUTPUT", [
      ["Name", "forward"],
      match,
      ["Host", o.host],
      ["Port", o.port],
      ["Require_ack_response", "true"],
      // Plain `[time, record]` entries, as Fluentd reads them (3.2's default); Fluent Bit
      // 5 defaults to `[[time, metadata], record]`, which a Fluentd aggregator cannot read: it
      // never acknowledges, and the agent retries forever (measured with 5.1.1).
      ["Retain_Metadata_In_Forward_Mode", "false"],
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
      match,
      ["Format", "json_lines"],
      ["json_date_key", "time"],
      ["json_date_format", "iso8601"],
    ]));
  }
  return lines.join("\n") + "\n";
}
