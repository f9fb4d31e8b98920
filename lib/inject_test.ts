import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { load } from "js-yaml";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import { assertInjected } from "../testing/assert_injected.ts";
import { type Config, defaultConfig, parseConfig } from "./config.ts";
import { inject, type InjectionStatus, STATUS_ANNOTATION } from "./inject.ts";
import { assertPod } from "./pod.ts";

const testdata = new URL("../testdata/", import.meta.url);

function fixture(name: string): Pod {
  const doc: unknown = load(Deno.readTextFileSync(new URL(`pods/${name}`, testdata)));
  assertPod(doc);
  return doc;
}

function run(pod: Pod, config: Config = defaultConfig(), namespace = "default") {
  const result = inject(pod, config, { namespace });
  return { result, out: result.patch.length ? assertInjected(pod, result.patch, config) : pod };
}

function status(pod: Pod): InjectionStatus {
  return JSON.parse(pod.metadata?.annotations?.[STATUS_ANNOTATION] ?? "null");
}

Deno.test("inject() gives the minimal nginx pod the sidecar, volume, mount and status", () => {
  const { result, out } = run(fixture("nginx.yaml"));
  assert.equal(result.decision, "injected");
  assert.deepEqual(result.warnings, []);
  // No volumes/annotations/volumeMounts existed: each array or map is created whole.
  assert.deepEqual(result.patch.map((op) => `${op.op} ${op.path}`), [
    "add /metadata/annotations",
    "add /spec/volumes",
    "add /spec/containers/0/volumeMounts",
    "add /spec/containers/-",
  ]);
  assert.deepEqual(out.spec?.volumes, [{ name: "app-logs", emptyDir: {} }]);
  assert.deepEqual(out.spec?.containers[0]?.volumeMounts, [{
    name: "app-logs",
    mountPath: "/var/log/app",
  }]);
  const sidecar = out.spec?.containers[1];
  assert.equal(sidecar?.name, "fluentd");
  assert.equal(sidecar?.image, "fluent/fluentd:v1.17-1");
  assert.deepEqual(status(out), {
    version: 1,
    profile: "fluentd",
    sidecar: "fluentd",
    image: "fluent/fluentd:v1.17-1",
    volume: "app-logs",
    mode: "classic",
  });
});

Deno.test("inject() matches the golden patch for the nginx pod", () => {
  const { result } = run(fixture("nginx.yaml"));
  const golden = JSON.parse(Deno.readTextFileSync(new URL("golden/nginx.patch.json", testdata)));
  assert.deepEqual(result.patch, golden);
});

Deno.test("inject() makes a sidecar that passes Pod Security restricted and has resources", () => {
  const { out } = run(fixture("nginx.yaml"));
  const sidecar = out.spec?.containers[1];
  const sc = sidecar?.securityContext;
  assert.equal(sc?.runAsNonRoot, true);
  assert.equal(sc?.allowPrivilegeEscalation, false);
  assert.deepEqual(sc?.capabilities?.drop, ["ALL"]);
  assert.equal(sc?.seccompProfile?.type, "RuntimeDefault");
  assert.ok(sc?.runAsUser && sc.runAsUser > 0);
  for (const kind of ["requests", "limits"] as const) {
    assert.ok(sidecar?.resources?.[kind]?.cpu, `${kind}.cpu`);
    assert.ok(sidecar?.resources?.[kind]?.memory, `${kind}.memory`);
  }
});

Deno.test("inject() configures fluentd inline to tail the shared log dir", () => {
  const { out } = run(fixture("nginx.yaml"));
  const sidecar = out.spec?.containers[1];
  assert.deepEqual(sidecar?.command, ["fluentd"]);
  const config = sidecar?.args?.[3] ?? "";
  assert.deepEqual(sidecar?.args?.slice(0, 3), ["-c", "/dev/null", "-i"]);
  assert.match(config, /@type tail/);
  assert.match(config, /path \/var\/log\/app\/\*\.log,\/var\/log\/app\/\*\*\/\*\.log/);
  assert.match(config, /<match app\.\*\*>\n {2}@type stdout/);
  assert.ok(!out.spec?.volumes?.some((v) => v.configMap), "no ConfigMap is needed");
  assert.deepEqual(sidecar?.volumeMounts, [{ name: "app-logs", mountPath: "/var/log/app" }]);
});

Deno.test("inject() keeps existing volumes, mounts, labels and annotations with / and ~", () => {
  const pod = fixture("with-volumes.yaml");
  const { result, out } = run(pod, defaultConfig(), "shop");
  assert.equal(result.decision, "injected");
  assert.ok(
    result.patch.some((op) => op.path === "/metadata/annotations/sidecar-injector.io~1status"),
  );
  assert.ok(result.patch.some((op) => op.path === "/spec/volumes/-"));
  assert.ok(result.patch.some((op) => op.path === "/spec/containers/0/volumeMounts/-"));
  assert.ok(result.patch.some((op) => op.path === "/spec/containers/1/volumeMounts"));
  assert.equal(out.metadata?.annotations?.["a~b/c"], "tilde-and-slash");
  assert.equal(out.metadata?.annotations?.["example.com/team"], "payments");
  assert.equal(out.spec?.volumes?.length, 3);
});

Deno.test("inject() renames on collisions and warns about each", () => {
  const pod = fixture("collisions.yaml");
  const { result, out } = run(pod);
  const s = status(out);
  assert.equal(s.volume, "app-logs-1");
  assert.equal(s.sidecar, "fluentd-1");
  const app = out.spec?.containers.find((c) => c.name === "app");
  assert.deepEqual(app?.volumeMounts?.at(-1), { name: "app-logs-1", mountPath: "/var/log/app-2" });
  assert.equal(result.warnings.length, 4, result.warnings.join("\n"));
  assert.match(result.warnings.join("\n"), /volume name "app-logs" is already used/);
  assert.match(result.warnings.join("\n"), /container name "fluentd" is already used/);
  assert.match(
    result.warnings.join("\n"),
    /container "app" already uses \/var\/log\/app; .* mounted at \/var\/log\/app-2/,
  );
});

Deno.test("inject() mounts the log volume in all 12 app containers and no init container", () => {
  const { result, out } = run(fixture("many-containers.yaml"));
  assert.equal(result.decision, "injected");
  assert.equal(out.spec?.containers.length, 13);
  assert.equal(out.spec?.initContainers?.length, 2);
});

for (
  const [name, namespace, reason] of [
    ["opted-out.yaml", "default", "opted out by annotation"],
    ["already-injected.yaml", "default", "already injected"],
    ["legacy-injected.yaml", "default", "already injected"],
    ["nginx.yaml", "kube-system", "namespace kube-system is excluded"],
    ["nginx.yaml", "kube-public", "namespace kube-public is excluded"],
    ["nginx.yaml", "kube-node-lease", "namespace kube-node-lease is excluded"],
  ] as const
) {
  Deno.test(`inject() skips ${name} in ${namespace}: ${reason}`, () => {
    const result = inject(fixture(name), defaultConfig(), { namespace });
    assert.equal(result.decision, "skipped");
    assert.equal(result.reason, reason);
    assert.deepEqual(result.patch, []);
  });
}

Deno.test("inject() reads the namespace from metadata when the request has none", () => {
  const pod = fixture("nginx.yaml");
  pod.metadata = { ...pod.metadata, namespace: "kube-system" };
  assert.equal(inject(pod, defaultConfig()).decision, "skipped");
});

Deno.test("inject() creates metadata when the pod has none", () => {
  const pod: Pod = { spec: { containers: [{ name: "a" }] } };
  const { result } = run(pod);
  assert.equal(result.patch[0]?.path, "/metadata");
});

Deno.test("inject() uses a native sidecar for a Job's pod in auto mode", () => {
  const pod = fixture("job-pod.yaml");
  const { result, out } = run(pod, defaultConfig(), "batch");
  assert.equal(result.mode, "native");
  assert.deepEqual(out.spec?.initContainers?.map((c) => c.name), ["fetch", "fluentd"]);
  assert.equal(out.spec?.initContainers?.[1]?.restartPolicy, "Always");
  assert.deepEqual(out.spec?.containers.map((c) => c.name), ["report"]);
});

Deno.test("inject() follows the configured mode", () => {
  const job = fixture("job-pod.yaml");
  assert.equal(inject(job, parseConfig("mode: classic")).mode, "classic");
  assert.equal(inject(fixture("nginx.yaml"), parseConfig("mode: native")).mode, "native");
  assert.equal(inject(fixture("nginx.yaml"), parseConfig("nativeSidecars: true")).mode, "native");
  assert.equal(inject(fixture("nginx.yaml"), defaultConfig()).mode, "classic");
  run(fixture("nginx.yaml"), parseConfig("mode: native"));
});

Deno.test("inject() excludes the injector's own namespace when configured", () => {
  const config = parseConfig("excludeNamespaces: [sidecar-injector]");
  assert.equal(
    inject(fixture("nginx.yaml"), config, { namespace: "sidecar-injector" }).decision,
    "skipped",
  );
});

Deno.test("inject() skips a pod with no containers", () => {
  assert.equal(
    inject({ spec: { containers: [] } }, defaultConfig()).reason,
    "pod has no containers",
  );
});

Deno.test("inject() result patches apply with applyPatch validation on every fixture", () => {
  for (const entry of Deno.readDirSync(new URL("pods/", testdata))) {
    const pod = fixture(entry.name);
    const result = inject(pod, defaultConfig(), { namespace: "default" });
    const errors = jsonpatch.validate(structuredClone(result.patch), structuredClone(pod));
    assert.equal(errors, undefined, entry.name);
  }
});
