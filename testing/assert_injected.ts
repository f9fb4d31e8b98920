/**
 * Test helper: applies an injection patch and checks what must hold for any
 * pod. Shared by unit, CLI and property tests.
 * @module
 */
import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import type { Container, Pod, VolumeMount } from "kubernetes-types/core/v1.d.ts";
import {
  type Config,
  inject,
  type InjectionStatus,
  type Operation,
  STATUS_ANNOTATION,
} from "../lib/mod.ts";

function unique(values: string[], what: string): void {
  assert.equal(new Set(values).size, values.length, `${what} must be unique: ${values.join(", ")}`);
}

/** Applies `patch` to a copy of `original` and checks the injected pod's invariants; returns it. */
export function assertInjected(
  original: Pod,
  patch: readonly Operation[],
  config: Config,
  options: { targets?: readonly string[] } = {},
): Pod {
  const pod =
    jsonpatch.applyPatch(structuredClone(original), structuredClone([...patch]), true, false)
      .newDocument;
  const spec = pod.spec;
  assert.ok(spec, "injected pod has a spec");

  // Nothing of the original is lost.
  for (const [k, v] of Object.entries(original.metadata?.annotations ?? {})) {
    assert.equal(pod.metadata?.annotations?.[k], v, `annotation ${k} kept`);
  }
  assert.deepEqual(pod.metadata?.labels, original.metadata?.labels, "labels kept");
  for (const v of original.spec?.volumes ?? []) {
    assert.deepEqual(spec.volumes?.find((x) => x.name === v.name), v, `volume ${v.name} kept`);
  }
  const initBefore = original.spec?.initContainers ?? [];
  assert.deepEqual(
    (spec.initContainers ?? []).slice(0, initBefore.length),
    initBefore,
    "init containers kept",
  );
  original.spec?.containers.forEach((c, i) => {
    const now = spec.containers[i];
    assert.ok(now, `container ${c.name} kept`);
    const { volumeMounts: before = [], ...rest } = c;
    const { volumeMounts: after = [], ...restNow } = now;
    assert.deepEqual(restNow, rest, `container ${c.name} unchanged but for mounts`);
    assert.deepEqual(after.slice(0, before.length), before, `container ${c.name} keeps its mounts`);
  });

  // Names and paths stay unique.
  const all: Container[] = [...spec.containers, ...(spec.initContainers ?? [])];
  unique(all.map((c) => c.name), "container names");
  unique((spec.volumes ?? []).map((v) => v.name), "volume names");
  for (const c of all) {
    unique((c.volumeMounts ?? []).map((m) => m.mountPath), `mountPaths of ${c.name}`);
  }
  unique(all.flatMap((c) => (c.ports ?? []).map((p) => String(p.containerPort))), "ports");

  // The sidecar and every targeted app container share the log volume.
  const raw = pod.metadata?.annotations?.[STATUS_ANNOTATION];
  assert.ok(raw, "status annotation present");
  const status: InjectionStatus = JSON.parse(raw);
  const sidecars = all.filter((c) => c.name === status.sidecar);
  assert.equal(sidecars.length, 1, "exactly one sidecar");
  const sidecar = sidecars[0];
  assert.ok(sidecar);
  assert.ok(
    sidecar.volumeMounts?.some((m) => m.name === status.volume),
    "sidecar mounts the log volume",
  );
  assert.ok(
    spec.volumes?.some((v) => v.name === status.volume && v.emptyDir),
    "log volume is an emptyDir",
  );
  if (status.mode === "native") {
    assert.equal(sidecar.restartPolicy, "Always", "native sidecar restarts always");
    assert.ok(spec.initContainers?.includes(sidecar), "native sidecar is an init container");
  } else {
    assert.ok(spec.containers.includes(sidecar), "classic sidecar is a container");
  }
  const targets = options.targets ?? original.spec?.containers.map((c) => c.name) ?? [];
  for (const c of spec.containers) {
    if (c === sidecar) continue;
    const mounts: VolumeMount[] = (c.volumeMounts ?? []).filter((m) => m.name === status.volume);
    assert.equal(mounts.length, targets.includes(c.name) ? 1 : 0, `log volume mounts in ${c.name}`);
  }
  for (const c of original.spec?.initContainers ?? []) {
    const now = spec.initContainers?.find((x) => x.name === c.name);
    assert.ok(
      !now?.volumeMounts?.some((m) => m.name === status.volume),
      `init container ${c.name} left alone`,
    );
  }

  // Re-admission changes nothing.
  const again = inject(pod, config, {});
  assert.equal(again.patch.length, 0, "re-injecting yields no patch");
  assert.equal(again.reason, "already injected");
  return pod;
}
