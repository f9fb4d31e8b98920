import assert from "node:assert/strict";
import { load } from "js-yaml";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import { defaultConfig, parseConfig } from "../config/mod.ts";
import { inject } from "./inject.ts";
import { encodePatch } from "./patch_json.ts";
import { assertPod } from "./pod.ts";

const testdata = new URL("../../testdata/", import.meta.url);

function fixture(name: string): Pod {
  const doc: unknown = load(Deno.readTextFileSync(new URL(`pods/${name}`, testdata)));
  assertPod(doc);
  return doc;
}

Deno.test("encodePatch() is byte for byte JSON.stringify of every fixture's patch", async () => {
  const configs = [
    defaultConfig(),
    parseConfig("mode: classic"),
    parseConfig("defaultProfile: fluent-bit"),
    parseConfig("profiles: { fluentd: { configMap: my-agent } }"),
  ];
  let compared = 0;
  for await (const e of Deno.readDir(new URL("pods/", testdata))) {
    for (const config of configs) {
      for (const pod of [fixture(e.name), { ...fixture(e.name), metadata: undefined }]) {
        const { patch, encoded } = inject(pod as Pod, config, { namespace: "default" });
        assert.equal(encodePatch(patch, encoded), JSON.stringify(patch), e.name);
        compared++;
      }
    }
  }
  assert.ok(compared >= 40);
});

Deno.test("encodePatch() falls back to JSON.stringify for shapes it does not build", () => {
  const v = { a: 1 };
  const encoded = new Map<unknown, string>([[v, '{"a":1}']]);
  const patch = [
    { op: "remove" as const, path: "/x" },
    { path: "/y", op: "add" as const, value: v },
    { op: "add" as const, path: "/z", value: { keep: v, drop: undefined } },
    { op: "add" as const, path: "/w", value: [v, undefined, "s"] },
  ];
  assert.equal(encodePatch(patch, encoded), JSON.stringify(patch));
});
