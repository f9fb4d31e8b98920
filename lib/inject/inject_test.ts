import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { load } from "js-yaml";
import type { Container, Pod } from "kubernetes-types/core/v1.d.ts";
import { assertInjected } from "../../testing/assert_injected.ts";
import { type Config, defaultConfig, parseConfig } from "../config/mod.ts";
import { CONFIG_ANNOTATION, inject, type InjectionStatus, STATUS_ANNOTATION } from "./inject.ts";
import { assertPod } from "./pod.ts";

const testdata = new URL("../../testdata/", import.meta.url);

function fixture(name: string): Pod {
  const doc: unknown = load(Deno.readTextFileSync(new URL(`pods/${name}`, testdata)));
  assertPod(doc);
  return doc;
}

function run(pod: Pod, config: Config = defaultConfig(), namespace = "default") {
  const result = inject(pod, config, { namespace });
  return { result, out: result.patch.length ? assertInjected(pod, result.patch, config) : pod };
}

/** The injected agent: a native sidecar (init container) by default, else a container. */
function agent(pod: Pod, name = "fluentd"): Container | undefined {
  return [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) =>
    c.name === name
  );
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
    "add /spec/initContainers",
  ]);
  assert.deepEqual(out.spec?.volumes?.map((v) => v.name), [
    "app-logs",
    "app-logs-state",
    "app-logs-config",
  ]);
  assert.deepEqual(out.spec?.containers[0]?.volumeMounts, [{
    name: "app-logs",
    mountPath: "/var/log/app",
  }]);
  assert.deepEqual(out.spec?.containers.map((c) => c.name), ["nginx"]);
  const sidecar = out.spec?.initContainers?.[0];
  assert.equal(sidecar?.name, "fluentd");
  assert.equal(sidecar?.restartPolicy, "Always");
  assert.equal(sidecar?.image, "fluent/fluentd:v1.17-1");
  assert.deepEqual(status(out), {
    version: 1,
    profile: "fluentd",
    sidecar: "fluentd",
    image: "fluent/fluentd:v1.17-1",
    volume: "app-logs",
    mode: "native",
  });
});

Deno.test("inject() matches the golden patch for the nginx pod", () => {
  const { result } = run(fixture("nginx.yaml"));
  const golden = JSON.parse(Deno.readTextFileSync(new URL("golden/nginx.patch.json", testdata)));
  assert.deepEqual(result.patch, golden);
});

Deno.test("inject() makes a sidecar that passes Pod Security restricted and has resources", () => {
  const { out } = run(fixture("nginx.yaml"));
  const sidecar = agent(out);
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

Deno.test("inject() hands fluentd a config that tails the shared log dir, through an annotation", () => {
  const { out } = run(fixture("nginx.yaml"));
  const sidecar = agent(out);
  assert.deepEqual(sidecar?.command, ["sh", "-c"]);
  const config = out.metadata?.annotations?.[CONFIG_ANNOTATION] ?? "";
  assert.match(config, /@type tail/);
  assert.match(config, /path \/var\/log\/app\/\*\*\/\*\.log/);
  assert.match(config, /<match app\.\*\*>\n {2}@type file\n {2}path \/dev\/stdout/);
  assert.ok(!out.spec?.volumes?.some((v) => v.configMap), "no ConfigMap is needed");
  assert.deepEqual(sidecar?.volumeMounts?.[0], {
    name: "app-logs",
    mountPath: "/var/log/app",
    readOnly: true,
  });
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
  assert.equal(out.spec?.volumes?.length, 5);
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
  assert.equal(out.spec?.containers.length, 12);
  assert.equal(out.spec?.initContainers?.length, 3, "two of the pod's own, then the agent");
  assert.equal(out.spec?.initContainers?.at(-1)?.name, "fluentd");
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

Deno.test("inject() puts the native sidecar after the pod's own init containers", () => {
  const pod = fixture("job-pod.yaml");
  const { result, out } = run(pod, defaultConfig(), "batch");
  assert.equal(result.mode, "native");
  assert.deepEqual(out.spec?.initContainers?.map((c) => c.name), ["fetch", "fluentd"]);
  assert.equal(out.spec?.initContainers?.[1]?.restartPolicy, "Always");
  assert.deepEqual(out.spec?.containers.map((c) => c.name), ["report"]);
});

Deno.test("inject() follows the configured mode; native by default", () => {
  const nginx = () => fixture("nginx.yaml");
  assert.equal(inject(nginx(), defaultConfig()).mode, "native");
  assert.equal(inject(nginx(), parseConfig("mode: native")).mode, "native");
  assert.equal(inject(nginx(), parseConfig("mode: auto")).mode, "native", "former default");
  assert.equal(inject(nginx(), parseConfig("mode: classic")).mode, "classic");
  assert.equal(inject(nginx(), parseConfig("nativeSidecars: false")).mode, "classic");
  assert.equal(inject(nginx(), parseConfig("mode: native\nnativeSidecars: false")).mode, "native");
  const { out } = run(nginx(), parseConfig("mode: classic"));
  assert.deepEqual(out.spec?.containers.map((c) => c.name), ["nginx", "fluentd"]);
  assert.equal(agent(out)?.restartPolicy, undefined);
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

const basic = (spec: Record<string, unknown> = {}, meta: Record<string, unknown> = {}): Pod => {
  const pod: unknown = {
    metadata: { name: "p", ...meta },
    spec: { containers: [{ name: "app", image: "x" }], ...spec },
  };
  assertPod(pod);
  return pod;
};

const WINDOWS_TERM = {
  matchExpressions: [{ key: "kubernetes.io/os", operator: "In", values: ["windows"] }],
};

Deno.test("inject() never gives a Windows pod the Linux agent, and says so", () => {
  const windows: Array<[string, Record<string, unknown>]> = [
    ["spec.os.name", { os: { name: "windows" } }],
    ["nodeSelector", { nodeSelector: { "kubernetes.io/os": "windows" } }],
    ["required node affinity", {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              WINDOWS_TERM,
              {
                matchExpressions: [
                  { key: "zone", operator: "In", values: ["a"] },
                  { key: "kubernetes.io/os", operator: "In", values: ["windows"] },
                ],
              },
            ],
          },
        },
      },
    }],
  ];
  for (const [what, spec] of windows) {
    const r = inject(basic(spec), defaultConfig());
    assert.equal(r.decision, "skipped", what);
    assert.equal(r.skip, "windows", what);
    assert.match(r.warnings.join("\n"), /Windows pod: no log agent injected/, what);
  }
  const linux: Array<[string, Record<string, unknown>]> = [
    ["os linux", { os: { name: "linux" } }],
    ["nodeSelector linux", { nodeSelector: { "kubernetes.io/os": "linux" } }],
    ["affinity with one non-Windows term", {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              WINDOWS_TERM,
              { matchExpressions: [{ key: "zone", operator: "In", values: ["a"] }] },
            ],
          },
        },
      },
    }],
    ["affinity allowing linux too", {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{
              matchExpressions: [{
                key: "kubernetes.io/os",
                operator: "In",
                values: ["windows", "linux"],
              }],
            }],
          },
        },
      },
    }],
  ];
  for (const [what, spec] of linux) {
    assert.equal(inject(basic(spec), defaultConfig()).decision, "injected", what);
  }
});

Deno.test("inject() gives run-to-completion pods a native sidecar, whatever owns them", () => {
  for (const restartPolicy of ["Never", "OnFailure"]) {
    const { result, out } = run(basic({ restartPolicy }));
    assert.equal(result.mode, "native");
    assert.equal(agent(out)?.restartPolicy, "Always");
    assert.deepEqual(out.spec?.containers.map((c) => c.name), ["app"]);
  }
});

Deno.test("inject() in classic mode skips run-to-completion pods with a warning", () => {
  const classic = parseConfig("mode: classic");
  for (const restartPolicy of ["Never", "OnFailure"]) {
    const r = inject(basic({ restartPolicy }), classic);
    assert.equal(r.decision, "skipped");
    assert.equal(r.skip, "run_to_completion");
    assert.match(r.reason, new RegExp(`restartPolicy ${restartPolicy} in classic mode`));
    assert.match(r.warnings[0] ?? "", /could never complete; use mode native/);
  }
  assert.equal(inject(basic({ restartPolicy: "Always" }), classic).mode, "classic");
  assert.equal(inject(basic(), classic).mode, "classic");
});

Deno.test("inject() honours the sidecar-injector.io/mode annotation and warns on bad values", () => {
  const mode = (v: string) => ({ annotations: { "sidecar-injector.io/mode": v } });
  assert.equal(inject(basic({}, mode("classic")), defaultConfig()).mode, "classic");
  const native = inject(
    basic({ restartPolicy: "Never" }, mode("native")),
    parseConfig("mode: classic"),
  );
  assert.equal(native.mode, "native", "a per-pod native overrides a classic config");
  const bad = inject(basic({}, mode("sidecar")), defaultConfig());
  assert.equal(bad.mode, "native");
  assert.match(
    bad.warnings.join("\n"),
    /sidecar-injector\.io\/mode="sidecar" ignored: must be "native" or "classic"/,
  );
});

Deno.test("inject() keeps the pod's own init containers and native sidecars in order, ours last", () => {
  const { out } = run(basic({
    initContainers: [
      { name: "setup", image: "x" },
      { name: "proxy", image: "x", restartPolicy: "Always" },
      { name: "migrate", image: "x" },
    ],
  }));
  assert.deepEqual(out.spec?.initContainers?.map((c) => c.name), [
    "setup",
    "proxy",
    "migrate",
    "fluentd",
  ]);
});

Deno.test("inject() skips mirror pods and pods opted out by label", () => {
  const mirror = inject(
    basic({}, { annotations: { "kubernetes.io/config.mirror": "abc" } }),
    defaultConfig(),
  );
  assert.equal(mirror.skip, "mirror_pod");
  const label = inject(
    basic({}, { labels: { "sidecar-injector.io/inject": "false" } }),
    defaultConfig(),
  );
  assert.equal(label.skip, "opted_out");
  assert.equal(label.reason, "opted out by label");
});
