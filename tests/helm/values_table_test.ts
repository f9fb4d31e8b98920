/** docs/install-helm.md's values table is the one values.yaml's comments generate, and complete. */
import assert from "node:assert/strict";
import { load } from "js-yaml";
import { documentedValues, leafPaths, tableIn, tableRows, valuesTable } from "./values_table.ts";

const root = new URL("../../", import.meta.url);
const VALUES = Deno.readTextFileSync(new URL("charts/sidecar-injector/values.yaml", root));

Deno.test("docs/install-helm.md's values table matches values.yaml", () => {
  const doc = Deno.readTextFileSync(new URL("docs/install-helm.md", root));
  const table = tableIn(doc);
  assert.ok(table, "docs/install-helm.md has no values-table markers");
  assert.deepEqual(
    tableRows(table),
    tableRows(valuesTable(VALUES)),
    "regenerate it: deno run -R -W tests/helm/values_table.ts && deno fmt docs/install-helm.md",
  );
});

Deno.test("every value in values.yaml is described by a `# --` comment", () => {
  const documented = documentedValues(VALUES).map((r) => r.path);
  const undocumented = leafPaths(load(VALUES)).filter((leaf) =>
    !documented.some((d) => leaf === d || leaf.startsWith(`${d}.`))
  );
  assert.deepEqual(undocumented, []);
});

Deno.test("every value in values.yaml is in values.schema.json", () => {
  const schema = JSON.parse(
    Deno.readTextFileSync(new URL("charts/sidecar-injector/values.schema.json", root)),
  );
  for (const { path } of documentedValues(VALUES)) {
    let node = schema;
    for (const part of path.split(".")) {
      node = node?.properties?.[part];
      assert.ok(node, `${path}: not in values.schema.json`);
    }
  }
});
