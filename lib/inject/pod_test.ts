import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { load } from "js-yaml";
import { defaultConfig } from "../config/mod.ts";
import { inject } from "./inject.ts";
import { assertPod, InvalidPodError } from "./pod.ts";

const emptyKeys = () =>
  load(Deno.readTextFileSync(new URL("../../testdata/pods/empty-keys.yaml", import.meta.url)));

Deno.test("assertPod() treats null fields as unset, as Kubernetes decodes them", () => {
  const pod = emptyKeys();
  assertPod(pod);
  assert.equal(pod.metadata?.annotations, undefined);
  assert.equal(pod.metadata?.labels, undefined);
  assert.equal(pod.spec?.volumes, undefined);
  assert.equal(pod.spec?.initContainers, undefined);
  assert.equal(pod.spec?.containers[0]?.volumeMounts, undefined);
});

Deno.test("inject() of a pod with null fields gives a patch that applies to the original", () => {
  const original = emptyKeys();
  const pod = structuredClone(original);
  assertPod(pod);
  const result = inject(pod, defaultConfig(), { namespace: "default" });
  assert.equal(result.decision, "injected");
  const out = jsonpatch.applyPatch(structuredClone(original), result.patch, true, false)
    .newDocument as typeof pod;
  assert.ok(out.metadata?.annotations?.["sidecar-injector.io/status"]);
  assert.equal(out.spec?.containers[0]?.volumeMounts?.[0]?.mountPath, "/var/log/app");
  assert.equal(out.spec?.volumes?.length, 3);
});

Deno.test("assertPod() treats null containers as none: the pod is skipped, not refused", () => {
  const pod: unknown = { metadata: { name: "p" }, spec: { containers: null } };
  assertPod(pod);
  assert.equal(inject(pod, defaultConfig()).reason, "pod has no containers");
});

Deno.test("assertPod() still refuses wrong types", () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ metadata: { annotations: [] }, spec: { containers: [] } }, /annotations must be a map/],
    [{ metadata: { annotations: { a: 1 } }, spec: { containers: [] } }, /\["a"\] must be a string/],
    [{ metadata: "x", spec: { containers: [] } }, /metadata must be an object/],
    [{ spec: { containers: [], volumes: {} } }, /volumes must be an array/],
    [{ spec: { containers: [{ name: "a", volumeMounts: "x" }] } }, /volumeMounts must be an array/],
    [{ spec: null }, /spec must be an object, got null/],
    [{ spec: { containers: "x" } }, /containers must be an array/],
  ];
  for (const [value, message] of bad) {
    assert.throws(() => assertPod(value), (err: unknown) => {
      assert.ok(err instanceof InvalidPodError);
      assert.match(err.message, message);
      return true;
    });
  }
});
