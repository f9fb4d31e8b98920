import assert from "node:assert/strict";
import { checkLogDir, checkQuantity, quantity } from "./fields.ts";

Deno.test("quantity() parses Kubernetes quantities", () => {
  assert.equal(quantity("100m"), 0.1);
  assert.equal(quantity("64Mi"), 64 * 2 ** 20);
  assert.equal(quantity("1G"), 1e9);
  assert.equal(quantity("2"), 2);
  assert.equal(quantity("1e3"), 1000);
  assert.equal(quantity(".5"), 0.5);
  assert.equal(quantity(3), 3);
});

Deno.test("quantity() and checkQuantity() agree on what a quantity is", () => {
  for (const q of ["1", "+1", "1.5Gi", "100m", "2e-3", "7E", "5Ei", "0.", ".1k"]) {
    assert.equal(checkQuantity(q), undefined, q);
    assert.ok(Number.isFinite(quantity(q)), q);
  }
  for (const q of ["", "-1", "1.2.3", "1Mb", "fast", "1 Gi", "Mi", "1e"]) {
    assert.ok(checkQuantity(q), q);
    assert.ok(Number.isNaN(quantity(q)), q);
  }
});

Deno.test("checkLogDir() accepts clean absolute paths only", () => {
  for (const ok of ["/var/log/app", "/logs", "/a-b/c_d.e"]) {
    assert.equal(checkLogDir(ok), undefined);
  }
  for (
    const bad of [
      "var/log",
      "/",
      "/a/../b",
      "/a/./b",
      "/a//b",
      "/a/",
      "/a b",
      "/a:b",
      "/a,b",
      "/a*",
      "/a?",
      "/a[b]",
      "/a{b}",
    ]
  ) {
    assert.ok(checkLogDir(bad), bad);
  }
});
