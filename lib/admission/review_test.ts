import assert from "node:assert/strict";
import { base64, decodeReview, encodeResponse, isPodCreate } from "./review.ts";

const fromBase64 = (b64: string) => new TextDecoder().decode(Uint8Array.fromBase64(b64));

Deno.test("base64() encodes the UTF-8 bytes of non-ASCII text", () => {
  for (const text of ["", "plain", "é", "日本語 ✓", "\u0000\u007f\u0080", "😀".repeat(3)]) {
    assert.equal(fromBase64(base64(text)), text);
  }
  assert.equal(base64("héllo"), "aMOpbGxv");
});

Deno.test("base64() handles a patch for 2,000 containers without RangeError", () => {
  const ops = Array.from({ length: 2000 }, (_, i) => ({
    op: "add",
    path: `/spec/containers/${i}/volumeMounts`,
    value: [{ name: "app-logs", mountPath: "/var/log/app" }],
  }));
  const text = JSON.stringify(ops);
  assert.ok(text.length > 150_000);
  assert.equal(fromBase64(base64(text)), text);
});

Deno.test("encodeResponse() adds patchType and patch only when there are ops, and warnings when any", () => {
  const withPatch = JSON.parse(
    encodeResponse("admission.k8s.io/v1", "u", {
      allowed: true,
      patch: [{ op: "add", path: "/a", value: "é" }],
      warnings: ["w"],
    }),
  );
  assert.equal(withPatch.response.patchType, "JSONPatch");
  assert.deepEqual(JSON.parse(fromBase64(withPatch.response.patch)), [{
    op: "add",
    path: "/a",
    value: "é",
  }]);
  assert.deepEqual(withPatch.response.warnings, ["w"]);
  const empty = JSON.parse(
    encodeResponse("admission.k8s.io/v1", "u", { allowed: true, patch: [], warnings: [] }),
  );
  assert.deepEqual(empty.response, { uid: "u", allowed: true });
  const denied = JSON.parse(
    encodeResponse("admission.k8s.io/v1beta1", "u", { allowed: false, message: "no" }),
  );
  assert.deepEqual(denied.response, {
    uid: "u",
    allowed: false,
    status: { code: 403, message: "no" },
  });
});

Deno.test("decodeReview() validates only pod CREATEs' objects", () => {
  const base = {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "u",
      kind: { group: "", version: "v1", kind: "Pod" },
      operation: "UPDATE",
      object: "junk",
    },
  };
  const update = decodeReview(JSON.stringify(base));
  assert.equal(isPodCreate(update.request), false);
  assert.equal(update.request.pod, undefined);
  assert.throws(
    () =>
      decodeReview(JSON.stringify({ ...base, request: { ...base.request, operation: "CREATE" } })),
    /request\.object must be an object/,
  );
});

Deno.test("decodeReview() ignores __proto__ keys rather than polluting prototypes", () => {
  const text =
    '{"__proto__":{"polluted":true},"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",' +
    '"request":{"uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE",' +
    '"object":{"metadata":{"annotations":{"__proto__":"x"}},"spec":{"containers":[{"name":"a"}]}}}}';
  const review = decodeReview(text);
  assert.equal(review.request.pod?.spec?.containers[0]?.name, "a");
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
