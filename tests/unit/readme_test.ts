/** The README's configuration reference must match the code. */
import assert from "node:assert/strict";
import { ANNOTATION_PREFIX, parseConfig, POD_ANNOTATIONS } from "../../lib/mod.ts";

const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));

Deno.test("every `yaml config` example in README.md is a valid config", () => {
  const blocks = [...readme.matchAll(/```yaml config\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  assert.ok(blocks.length >= 3, `found ${blocks.length} examples`);
  blocks.forEach((text, i) => parseConfig(text, `README example ${i + 1}`));
});

Deno.test("the k8s ConfigMap's config.yaml is a valid config", async () => {
  const { load } = await import("js-yaml");
  const doc = load(Deno.readTextFileSync(new URL("../../k8s/configmap.yaml", import.meta.url)));
  assert.ok(doc && typeof doc === "object" && "data" in doc);
  const data = doc.data as Record<string, string>;
  parseConfig(data["config.yaml"] ?? "", "k8s/configmap.yaml");
});

Deno.test("README.md's annotation table lists exactly the annotations the injector reads", () => {
  const documented = [...readme.matchAll(/^\| `sidecar-injector\.io\/([a-z-]+)` +\|/gm)].map((m) =>
    m[1]
  );
  assert.deepEqual(documented.sort(), [...POD_ANNOTATIONS].sort());
  assert.equal(ANNOTATION_PREFIX, "sidecar-injector.io/");
});

Deno.test("README.md gives the exact run and test commands", () => {
  assert.match(readme, /^npx -y deno@2\.9\.6 task dev /m);
  assert.match(readme, /^npx -y deno@2\.9\.6 task test /m);
});
