import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { escapeToken, pointer, prefixPaths } from "./pointer.ts";

Deno.test("escapeToken() escapes ~ before /", () => {
  assert.equal(escapeToken("a/b"), "a~1b");
  assert.equal(escapeToken("a~b"), "a~0b");
  assert.equal(escapeToken("~/"), "~0~1");
  assert.equal(escapeToken("~1"), "~01");
  assert.equal(escapeToken(3), "3");
});

Deno.test("pointer() round-trips keys with / and ~ through applyPatch", () => {
  const doc = { metadata: { annotations: { "x": "1" } } };
  for (const key of ["example.com/inject", "a~b", "~1", "/", "~"]) {
    const path = pointer("metadata", "annotations", key);
    const out = jsonpatch.applyPatch(
      structuredClone(doc),
      [{ op: "add", path, value: "v" }],
      true,
      false,
    ).newDocument;
    assert.deepEqual(out.metadata.annotations, { x: "1", [key]: "v" });
  }
});

Deno.test("prefixPaths() prepends a template prefix", () => {
  assert.deepEqual(prefixPaths("/spec/template", [{ op: "add", path: "/spec/volumes" }]), [
    { op: "add", path: "/spec/template/spec/volumes" },
  ]);
  assert.deepEqual(prefixPaths("", [{ path: "/a" }]), [{ path: "/a" }]);
});
