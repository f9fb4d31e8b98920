/**
 * Property tests of `inject()` on generated, valid-ish pods: names collide
 * often, volumes and mounts already use the sidecar's defaults, annotation keys
 * carry `/` and `~`, and optional fields come and go.
 * @module
 */
import { say } from "../../testing/process.ts";
import assert from "node:assert/strict";
import fc from "fast-check";
import jsonpatch from "fast-json-patch";
import type { Container, Pod, Volume } from "kubernetes-types/core/v1.d.ts";
import {
  type Config,
  inject,
  type InjectionStatus,
  parseConfig,
  STATUS_ANNOTATION,
} from "../../lib/mod.ts";

const NUM_RUNS = Number(Deno.env.get("PROPERTY_RUNS") ?? 1000);

const NAMES = [
  "app",
  "web",
  "fluentd",
  "fluentd-1",
  "fluentd-2",
  "fluent-bit",
  "fluent-bit-1",
  "init",
  "x",
];
const VOLUMES = ["app-logs", "app-logs-1", "app-logs-2", "app-logs-config", "data", "logs", "x"];
const PATHS = [
  "/var/log/app",
  "/var/log/app-1",
  "/var/log/app-2",
  "/data",
  "/var/log",
  "/logs",
  "/logs-1",
  "/fluentd/etc",
];

const mountArb = fc.record({
  name: fc.constantFrom(...VOLUMES),
  mountPath: fc.constantFrom(...PATHS),
});

function containerArb(name: string): fc.Arbitrary<Container> {
  return fc.record({
    image: fc.constantFrom("nginx", "busybox:1.36"),
    volumeMounts: fc.uniqueArray(mountArb, { selector: (m) => m.mountPath, maxLength: 4 }),
    volumeDevices: fc.uniqueArray(
      fc.record({ name: fc.constantFrom("blk", "raw"), devicePath: fc.constantFrom(...PATHS) }),
      { selector: (d) => d.devicePath, maxLength: 1 },
    ),
    env: fc.array(fc.record({ name: fc.constantFrom("A", "B"), value: fc.string() }), {
      maxLength: 2,
    }),
  }, { requiredKeys: ["image"] }).map((c) => {
    // Kubernetes rejects a devicePath equal to a mountPath; keep inputs valid.
    const mounts = new Set((c.volumeMounts ?? []).map((m) => m.mountPath));
    const devices = (c.volumeDevices ?? []).filter((d) => !mounts.has(d.devicePath));
    const out: Container = { name, ...c };
    if (c.volumeDevices !== undefined) out.volumeDevices = devices;
    return out;
  });
}

const keyArb = fc.string({
  unit: fc.constantFrom("a", "b", "/", "~", "0", "1", ".", "-", "é"),
  minLength: 1,
  maxLength: 8,
});

const specialAnnotations = (names: string[]) =>
  fc.record({
    "sidecar-injector.io/profile": fc.constantFrom("fluentd", "fluent-bit", "nope", "constructor"),
    "sidecar-injector.io/log-dir": fc.constantFrom(
      "/var/log/app",
      "/logs",
      "/data",
      "relative",
      "/fluentd/etc",
      "/fluent-bit/etc",
    ),
    "sidecar-injector.io/containers": fc.subarray([...names, "ghost"]).map((s) => s.join(", ")),
    "sidecar-injector.io/inject": fc.constantFrom("true", "false", "TRUE", "maybe"),
    "sidecar-injector.io/image": fc.constantFrom("fluent/fluentd:v1.16", "bad image!"),
    "sidecar-injector.io/cpu-request": fc.constantFrom("10m", "1", "500m", "x"),
    "sidecar-injector.io/memory-limit": fc.constantFrom("32Mi", "1Gi", "8Mi", "y"),
  }, { requiredKeys: [] });

const podArb: fc.Arbitrary<Pod> = fc
  .uniqueArray(fc.constantFrom(...NAMES), { minLength: 1, maxLength: 6 })
  .chain((names) =>
    fc.integer({ min: 1, max: names.length }).chain((nApp) => {
      const appNames = names.slice(0, nApp);
      const initNames = names.slice(nApp);
      return fc.record({
        containers: fc.tuple(...appNames.map(containerArb)),
        initContainers: fc.tuple(...initNames.map(containerArb)),
        hasInit: fc.boolean(),
        volumes: fc.option(
          fc.uniqueArray(
            fc.record({
              name: fc.constantFrom(...VOLUMES),
              kind: fc.constantFrom("emptyDir", "configMap"),
            }).map(({ name, kind }): Volume =>
              kind === "emptyDir" ? { name, emptyDir: {} } : { name, configMap: { name } }
            ),
            { selector: (v) => v.name, maxLength: 5 },
          ),
          { nil: undefined },
        ),
        metadata: fc.option(
          fc.record({
            name: fc.constantFrom("p", "web-0"),
            namespace: fc.constantFrom("default", "kube-system", "team-a"),
            annotations: fc.tuple(
              fc.dictionary(keyArb, fc.string({ maxLength: 6 }), { maxKeys: 4 }),
              specialAnnotations(appNames),
            ).map(([a, b]) => ({ ...a, ...b })),
            labels: fc.dictionary(keyArb, fc.string({ maxLength: 6 }), { maxKeys: 3 }),
            ownerReferences: fc.array(
              fc.record({
                apiVersion: fc.constant("v1"),
                kind: fc.constantFrom("Job", "ReplicaSet", "StatefulSet"),
                name: fc.constant("o"),
                uid: fc.constant("u"),
              }),
              { maxLength: 1 },
            ),
          }, { requiredKeys: [] }),
          { nil: undefined },
        ),
        restartPolicy: fc.option(fc.constantFrom("Always", "Never"), { nil: undefined }),
      });
    })
  )
  .map((g) => {
    const pod: Pod = { spec: { containers: g.containers } };
    if (g.initContainers.length > 0 || g.hasInit) pod.spec!.initContainers = g.initContainers;
    if (g.volumes !== undefined) pod.spec!.volumes = g.volumes;
    if (g.restartPolicy !== undefined) pod.spec!.restartPolicy = g.restartPolicy;
    if (g.metadata !== undefined) pod.metadata = g.metadata as NonNullable<Pod["metadata"]>;
    // Decoded pods are plain JSON: ordinary prototypes (fast-check makes null-prototype records).
    return JSON.parse(JSON.stringify(pod)) as Pod;
  });

const configArb: fc.Arbitrary<Config> = fc.record({
  mode: fc.constantFrom("auto", "native", "classic"),
  nativeSidecars: fc.boolean(),
  configMap: fc.boolean(),
  volumeName: fc.constantFrom("app-logs", "logs", "x".repeat(63)),
  logDir: fc.constantFrom("/var/log/app", "/logs"),
}).map((o) => {
  // Built the way an operator would: a config file (the result is deeply frozen).
  const profile = {
    volumeName: o.volumeName,
    logDir: o.logDir,
    ...(o.configMap ? { configMap: "agent-config" } : {}),
  };
  return parseConfig(JSON.stringify({
    mode: o.mode,
    nativeSidecars: o.nativeSidecars,
    profiles: { "fluentd": profile, "fluent-bit": profile },
  }));
});

const namespaceArb = fc.option(fc.constantFrom("default", "kube-system", "team-a", ""), {
  nil: undefined,
});

function dupes(xs: string[]): string[] {
  return xs.filter((x, i) => xs.indexOf(x) !== i);
}

/** Checks every property for one pod; throws an AssertionError naming the broken one. */
function check(pod: Pod, config: Config, namespace: string | undefined): void {
  const original = structuredClone(pod);
  const result = inject(pod, config, { namespace });
  assert.deepEqual(pod, original, "inject() mutated its input");
  if (result.decision === "skipped") {
    assert.deepEqual(result.patch, [], "a skipped pod got a patch");
    return;
  }
  const out: Pod = jsonpatch.applyPatch(structuredClone(pod), result.patch, true, false)
    .newDocument;
  const spec = out.spec!;

  // Nothing original is lost.
  for (const [i, v] of (original.spec!.volumes ?? []).entries()) {
    assert.deepEqual(spec.volumes?.[i], v, `volume ${v.name} changed`);
  }
  for (const key of ["containers", "initContainers"] as const) {
    for (const [i, c] of (original.spec![key] ?? []).entries()) {
      const now = spec[key]?.[i];
      assert.ok(now, `${key}[${i}] ${c.name} lost`);
      const { volumeMounts: before = [], ...rest } = c;
      const { volumeMounts: after = [], ...restNow } = now;
      assert.deepEqual(restNow, rest, `${key} ${c.name} changed beyond volumeMounts`);
      assert.deepEqual(after.slice(0, before.length), before, `${c.name}'s mounts changed`);
    }
  }
  for (const [k, v] of Object.entries(original.metadata?.annotations ?? {})) {
    assert.equal(out.metadata?.annotations?.[k], v, `annotation ${k} lost or changed`);
  }
  assert.deepEqual(out.metadata?.labels, original.metadata?.labels, "labels changed");
  for (const k of Object.keys(original.spec!) as Array<keyof typeof spec>) {
    if (!["containers", "initContainers", "volumes"].includes(k)) {
      assert.deepEqual(spec[k], original.spec![k], `spec.${k} changed`);
    }
  }

  // Names and paths stay unique.
  const all = [...spec.containers, ...(spec.initContainers ?? [])];
  assert.deepEqual(dupes(all.map((c) => c.name)), [], "duplicate container names");
  const volumeNames = (spec.volumes ?? []).map((v) => v.name);
  assert.deepEqual(dupes(volumeNames), [], "duplicate volume names");
  for (const c of all) {
    const paths = [
      ...(c.volumeMounts ?? []).map((m) => m.mountPath),
      ...(c.volumeDevices ?? []).map((d) => d.devicePath),
    ];
    assert.deepEqual(dupes(paths), [], `container ${c.name} mounts a path twice`);
  }

  // The sidecar and every targeted app container share the log volume.
  const statusText = out.metadata?.annotations?.[STATUS_ANNOTATION];
  assert.ok(statusText, "no status annotation");
  const status: InjectionStatus = JSON.parse(statusText);
  const sidecar = all.find((c) => c.name === status.sidecar);
  assert.ok(sidecar, `sidecar ${status.sidecar} not in the pod`);
  assert.ok(volumeNames.includes(status.volume), `log volume ${status.volume} not in volumes`);
  for (const m of sidecar.volumeMounts ?? []) {
    assert.ok(volumeNames.includes(m.name), `sidecar mounts missing volume ${m.name}`);
  }
  assert.ok(
    (sidecar.volumeMounts ?? []).some((m) => m.name === status.volume),
    "the sidecar does not mount the log volume",
  );
  const appNames = original.spec!.containers.map((c) => c.name);
  const listed = (original.metadata?.annotations?.["sidecar-injector.io/containers"] ?? "")
    .split(",").map((s) => s.trim()).filter((s) => appNames.includes(s));
  const targets = original.metadata?.annotations?.["sidecar-injector.io/containers"] !==
        undefined && listed.length > 0
    ? listed
    : appNames;
  for (const name of targets) {
    const c = spec.containers.find((x) => x.name === name)!;
    assert.ok(
      (c.volumeMounts ?? []).some((m) => m.name === status.volume),
      `app container ${name} does not mount the log volume ${status.volume}`,
    );
  }

  // Idempotent.
  const again = inject(out, config, { namespace });
  assert.deepEqual(again.patch, [], "a second injection still patches");
}

Deno.test("inject(): patch applies, nothing lost, names/paths unique, log volume shared, idempotent", () => {
  fc.assert(
    fc.property(podArb, configArb, namespaceArb, (pod, config, ns) => check(pod, config, ns)),
    { numRuns: NUM_RUNS, seed: Number(Deno.env.get("PROPERTY_SEED") ?? 20240601) },
  );
});

Deno.test("inject(): same properties with random seeds", () => {
  fc.assert(
    fc.property(podArb, configArb, namespaceArb, (pod, config, ns) => check(pod, config, ns)),
    { numRuns: NUM_RUNS },
  );
});

Deno.test("inject(): the generator reaches the interesting cases", () => {
  // Guards the property tests against a generator that never collides.
  const samples = fc.sample(fc.tuple(podArb, configArb, namespaceArb), { numRuns: 2000, seed: 7 });
  let injected = 0, renamedContainer = 0, renamedVolume = 0, movedMount = 0, native = 0;
  for (const [pod, config, ns] of samples) {
    const r = inject(pod, config, { namespace: ns });
    if (r.decision !== "injected") continue;
    injected++;
    if (r.mode === "native") native++;
    if (r.warnings.some((w) => w.includes("container name"))) renamedContainer++;
    if (r.warnings.some((w) => w.includes("volume name"))) renamedVolume++;
    if (r.warnings.some((w) => w.includes("the shared log volume is mounted at"))) movedMount++;
  }
  const counts = { injected, renamedContainer, renamedVolume, movedMount, native };
  say(`inject generator: ${JSON.stringify(counts)}`);
  for (const [k, v] of Object.entries(counts)) assert.ok(v >= 20, `${k}=${v} in 2000 samples`);
});

Deno.test("inject(): a log-dir annotation equal to the agent's config dir does not mount two volumes at one path", () => {
  // Minimal case found by the properties above: with a profile that names a ConfigMap,
  // the sidecar mounts the config volume at /fluentd/etc (fluent-bit: /fluent-bit/etc),
  // and checkLogDir accepts that same path for the log volume: Kubernetes then rejects
  // the pod ("must be unique") and every such pod fails to create.
  for (const agent of ["fluentd", "fluent-bit"] as const) {
    const config = parseConfig(
      JSON.stringify({
        defaultProfile: agent,
        profiles: { [agent]: { configMap: "agent-config" } },
      }),
    );
    const pod: Pod = {
      metadata: { annotations: { "sidecar-injector.io/log-dir": `/${agent}/etc` } },
      spec: { containers: [{ name: "app", image: "nginx" }] },
    };
    const result = inject(pod, config, { namespace: "default" });
    const out: Pod = jsonpatch.applyPatch(structuredClone(pod), result.patch, true, false)
      .newDocument;
    const sidecar = [...out.spec!.initContainers ?? [], ...out.spec!.containers].find((c) =>
      c.name === agent
    )!;
    const paths = (sidecar.volumeMounts ?? []).map((m) => m.mountPath);
    assert.deepEqual(
      dupes(paths),
      [],
      `${agent}: decision=${result.decision} warnings=${JSON.stringify(result.warnings)} ` +
        `sidecar volumeMounts=${JSON.stringify(sidecar.volumeMounts)}`,
    );
  }
});
