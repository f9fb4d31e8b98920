import assert from "node:assert/strict";
import { fluentBitConfig, fluentBitParsers } from "./fluent_bit.ts";
import { fluentdConfig } from "./fluentd.ts";
import { FLUENTD_PLUGIN } from "./fluentd_plugin.ts";
import {
  checkParser,
  CONTINUATION,
  firstLine,
  type MultilineParser,
  type Parser,
  PARSERS,
  type Pipeline,
} from "./pipeline.ts";
import { renderAgentFiles } from "./render.ts";

const pipeline = (parser: Parser, containers = ["app"]): Pipeline => ({
  logDir: "/var/log/app",
  output: { type: "stdout" },
  containers,
  bufferBytes: 2 ** 28,
  parser,
});
const MULTILINE: MultilineParser[] = ["java", "python", "go"];

Deno.test("fluentd: every parser renders; every record passes the UTF-8 plugin, json only with parser json", () => {
  for (const parser of PARSERS) {
    const text = fluentdConfig(pipeline(parser));
    assert.match(text, /<filter app>\n {2}@type sidecar_record\n/, parser);
    assert.equal(/ {2}parser json\n/.test(text), parser === "json", parser);
    assert.match(text, / {2}tag app\n/);
    const multiline = parser !== "none" && parser !== "json";
    assert.equal(text.includes("@type multiline"), multiline, parser);
    if (multiline) {
      assert.ok(text.includes(`    format_firstline /${firstLine(parser)}/\n`), parser);
      assert.match(text, /multiline_flush_interval 3s\n {2}emit_unmatched_lines true/);
      assert.match(text, /format1 \/\(\?<log>\.\*\)\//);
    } else {
      assert.match(text, /@type none\n {4}message_key log/);
    }
    assert.equal(renderAgentFiles("fluentd", pipeline(parser)).extra?.text, FLUENTD_PLUGIN);
  }
});

Deno.test("fluentd: the plugin keeps the agent's keys and maps bad bytes to U+E0xx", () => {
  assert.match(
    FLUENTD_PLUGIN,
    /RESERVED = \["pod","namespace","node","container","file","time","log","app_fields"\]/,
  );
  assert.match(FLUENTD_PLUGIN, /register_filter\('sidecar_record', self\)/);
  assert.match(FLUENTD_PLUGIN, /\(0xE000 \+ b\)\.chr\(Encoding::UTF_8\)/);
});

Deno.test("fluent-bit: none and json render, one tag, the UTF-8 Lua filter first; json nests colliding keys", () => {
  const none = fluentBitConfig(pipeline("none"));
  assert.match(none, /Tag +app\n/);
  assert.match(
    none,
    /\[FILTER\]\n {4}Name +lua\n {4}Match +app\n {4}call +sidecar_utf8\n {4}code +function sidecar_utf8/,
  );
  assert.doesNotMatch(none, /Parsers_File|Name +parser/);
  assert.equal(fluentBitParsers(pipeline("none")), undefined);
  assert.equal(renderAgentFiles("fluent-bit", pipeline("none")).extra, undefined);
  const json = fluentBitConfig(pipeline("json"));
  assert.match(json, /Parsers_File +\/fluent-bit\/etc\/parsers\.conf/);
  assert.match(json, /Rename +log __sidecar_log\n {4}Rename +file __sidecar_file/);
  assert.match(
    json,
    /Name +parser\n {4}Match +app\n {4}Key_Name +__sidecar_log\n {4}Parser +sidecar_json\n {4}Reserve_Data +On/,
  );
  for (
    const key of ["pod", "namespace", "node", "container", "file", "time", "log", "app_fields"]
  ) {
    assert.match(json, new RegExp(`Wildcard +${key}\\n`));
  }
  assert.match(json, /Nest_under +app_fields/);
  assert.match(json, /Rename +__sidecar_log log\n {4}Rename +__sidecar_file file/);
  assert.ok(
    json.indexOf("Name                     lua") < json.indexOf("Name                     parser"),
  );
  assert.deepEqual(renderAgentFiles("fluent-bit", pipeline("json")).extra, {
    path: "parsers.conf",
    text: "[PARSER]\n    Name   sidecar_json\n    Format json\n",
  });
});

Deno.test("fluent-bit refuses the multiline parsers, naming agent and parser; fluentd runs them all", () => {
  for (const parser of MULTILINE) {
    assert.match(
      checkParser("fluent-bit", parser) ?? "",
      new RegExp(`agent fluent-bit cannot run parser ${parser}`),
    );
  }
  for (const parser of PARSERS) assert.equal(checkParser("fluentd", parser), undefined);
  assert.equal(checkParser("fluent-bit", "json"), undefined);
});

Deno.test("the first-line regexes split testdata/records/*.log into line, trace, line", async () => {
  for (const parser of MULTILINE) {
    const text = await Deno.readTextFile(
      new URL(`../../testdata/records/${parser}.log`, import.meta.url),
    );
    const lines = text.trimEnd().split("\n");
    const re = new RegExp(firstLine(parser));
    const starts = lines.flatMap((l, i) => re.test(l) ? [i] : []);
    assert.deepEqual(starts, [0, 1, lines.length - 1], parser);
    assert.ok(CONTINUATION[parser].length > 0);
  }
  // Plain lines and JSON lines stay records of their own.
  for (const parser of MULTILINE) {
    const re = new RegExp(firstLine(parser));
    for (const l of ["GET /health 200", '{"level":"info"}', "app-1", "2024-05-01 starting"]) {
      assert.ok(re.test(l), `${parser}: ${l}`);
    }
  }
});

Deno.test("a container's own parser reads its files in a stream of their own, excluded from the pod's", () => {
  const p: Pipeline = {
    ...pipeline("none", ["web", "worker", "side"]),
    containerParsers: { web: "json", worker: "java", side: "none" },
  };
  const fd = fluentdConfig(p);
  assert.equal(fd.match(/<source>/g)?.length, 3, "side has the pod's parser: no stream of its own");
  assert.ok(
    fd.includes(
      '  exclude_path ["/var/log/app/web.log","/var/log/app/web/**/*.log",' +
        '"/var/log/app/worker.log","/var/log/app/worker/**/*.log"]\n',
    ),
  );
  assert.match(
    fd,
    /@id app_logs_web\n {2}path \/var\/log\/app\/web\.log,\/var\/log\/app\/web\/\*\*\/\*\.log\n {2}pos_file \/var\/lib\/sidecar-injector\/tail-web\.pos\n[^]*?tag app\.web\n[^]*?@type none\n/,
  );
  assert.match(fd, /@id app_logs_worker\n[^]*?tag app\.worker\n[^]*?@type multiline\n/);
  assert.match(fd, /<filter app\.web>\n {2}@type sidecar_record\n {2}parser json\n<\/filter>/);
  assert.match(fd, /<filter app\.worker>\n {2}@type sidecar_record\n<\/filter>/);
  const bit = fluentBitConfig({ ...p, containerParsers: { web: "json" } });
  assert.equal(bit.match(/\[INPUT\]/g)?.length, 2);
  assert.match(bit, /Exclude_Path +\/var\/log\/app\/web\.log,\/var\/log\/app\/web\/\*\n/);
  assert.match(
    bit,
    /Path +\/var\/log\/app\/web\.log,\/var\/log\/app\/web\/\*\.log,\/var\/log\/app\/web\/\*\/\*\.log,/,
  );
  assert.match(bit, /Tag +app\.web\n {4}DB +\/var\/lib\/sidecar-injector\/tail-web\.db/);
  assert.match(bit, /Name +lua\n {4}Match +app\*\n/);
  assert.match(bit, /Name +parser\n {4}Match_Regex +\^\(app\\\.web\)\$\n/);
  assert.ok(fluentBitParsers({ ...p, containerParsers: { web: "json" } }));
});
