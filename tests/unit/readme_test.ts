/** The README and the docs must match the code, and every page must be reachable. */
import assert from "node:assert/strict";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import { ANNOTATION_PREFIX, inject, parseConfig, POD_ANNOTATIONS } from "../../lib/mod.ts";
import { checkParser, type Parser, PARSERS } from "../../lib/agent/mod.ts";

const read = (path: string) => Deno.readTextFileSync(new URL(`../../${path}`, import.meta.url));
const readme = read("README.md");
const configuration = read("docs/configuration.md");

Deno.test("every `yaml config` example in docs/configuration.md is a valid config", () => {
  const blocks = [...configuration.matchAll(/```yaml config\n([\s\S]*?)```/g)].map((m) =>
    m[1] ?? ""
  );
  assert.ok(blocks.length >= 3, `found ${blocks.length} examples`);
  blocks.forEach((text, i) => parseConfig(text, `docs/configuration.md example ${i + 1}`));
});

Deno.test("the k8s ConfigMap's config.yaml is a valid config", async () => {
  const { load } = await import("js-yaml");
  const doc = load(Deno.readTextFileSync(new URL("../../k8s/configmap.yaml", import.meta.url)));
  assert.ok(doc && typeof doc === "object" && "data" in doc);
  const data = doc.data as Record<string, string>;
  parseConfig(data["config.yaml"] ?? "", "k8s/configmap.yaml");
});

Deno.test("docs/configuration.md's annotation table lists exactly the annotations the injector reads", () => {
  const documented = [...configuration.matchAll(/^\| `sidecar-injector\.io\/([a-z-]+)` +\|/gm)].map(
    (m) => m[1],
  );
  assert.deepEqual(documented.sort(), [...POD_ANNOTATIONS].sort());
  assert.equal(ANNOTATION_PREFIX, "sidecar-injector.io/");
});

Deno.test("README.md gives the exact run and test commands", () => {
  assert.match(readme, /^npx -y deno@2\.9\.6 task dev /m);
  assert.match(readme, /^npx -y deno@2\.9\.6 task test /m);
});

function isFile(url: URL): boolean {
  try {
    return Deno.statSync(url).isFile;
  } catch {
    return false;
  }
}

Deno.test("README.md is a short front page that links every page of docs/, and every link resolves", () => {
  assert.ok(readme.split("\n").length <= 250, "README.md is over 250 lines");
  const pages = [...Deno.readDirSync(new URL("../../docs/", import.meta.url))]
    .filter((e) => e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`);
  for (const page of pages) {
    assert.ok(readme.includes(`](${page})`), `README.md does not link ${page}`);
  }
  const files: Array<[string, string]> = [
    ["README.md", readme],
    ...pages.map((p) => [p, read(p)] as [string, string]),
  ];
  for (const [file, text] of files) {
    const base = new URL(`../../${file}`, import.meta.url);
    for (const [, target] of text.matchAll(/\]\(([^)#\s]+\.md)(#[^)]*)?\)/g)) {
      assert.ok(isFile(new URL(target!, base)), `${file} links ${target}, which does not exist`);
    }
  }
});

Deno.test("docs/log-path.md's Records section matches the parsers the agents run, and the README links it", () => {
  const log = read("docs/log-path.md");
  assert.match(readme, /\(docs\/log-path\.md#records\)/);
  const section = log.slice(log.indexOf("## Records"), log.indexOf("## Agent conformance suite"));
  const rows = [
    ...section.matchAll(
      /^\| `(\w+)` +\|[^|]+\| (yes|refused[^|]*?) +\| (yes|refused[^|]*?) +\|$/gm,
    ),
  ];
  assert.deepEqual(rows.map((m) => m[1]), [...PARSERS]);
  for (const [, parser, fluentd, fluentBit] of rows) {
    for (const [agent, said] of [["fluentd", fluentd], ["fluent-bit", fluentBit]] as const) {
      const refusal = checkParser(agent, parser as Parser);
      assert.equal(said === "yes", refusal === undefined, `${agent} ${parser}: ${said}`);
    }
  }
  assert.ok(section.includes(checkParser("fluent-bit", "java")!.slice(0, 40)));
  // The inputs quoted are the files the conformance suite feeds the agents.
  for (const lang of ["java", "python", "go"]) {
    const file = read(`testdata/records/${lang}.log`);
    assert.ok(section.includes("```text\n" + file + "```"), `testdata/records/${lang}.log`);
  }
  // What the CLI (inject()) renders for the annotation the section names.
  const pod: Pod = {
    metadata: { name: "p", annotations: { "sidecar-injector.io/parser": "json" } },
    spec: { containers: [{ name: "app" }] },
  };
  const patch = inject(pod, parseConfig("", "empty")).patch;
  assert.match(JSON.stringify(patch), /@type sidecar_record\\n {2}parser json/);
});
