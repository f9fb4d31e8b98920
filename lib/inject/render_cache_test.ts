import assert from "node:assert/strict";
import { load } from "js-yaml";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import { type Config, defaultConfig, parseConfig } from "../config/mod.ts";
import { inject } from "./inject.ts";
import { assertPod } from "./pod.ts";
import { renderAgent, RenderCache, type RenderInput, renderKey } from "./render_cache.ts";

const testdata = new URL("../../testdata/", import.meta.url);

function fixture(name: string): Pod {
  const doc: unknown = load(Deno.readTextFileSync(new URL(`pods/${name}`, testdata)));
  assertPod(doc);
  return doc;
}

/** The agent's parts of the patch for `pod`: everything but the pod's own. */
function agentParts(pod: Pod, config: Config): string {
  return JSON.stringify(inject(pod, config, { namespace: "default" }).patch);
}

/** A pod that differs from the nginx fixture in one render input. */
const variants: Array<[string, (pod: Pod) => void]> = [
  ["profile", (p) => p.metadata!.annotations = { "sidecar-injector.io/profile": "fluent-bit" }],
  ["image", (p) => p.metadata!.annotations = { "sidecar-injector.io/image": "x/agent:2" }],
  ["log dir", (p) => p.metadata!.annotations = { "sidecar-injector.io/log-dir": "/var/log/x" }],
  ["cpu", (p) => p.metadata!.annotations = { "sidecar-injector.io/cpu-request": "20m" }],
  ["memory", (p) => p.metadata!.annotations = { "sidecar-injector.io/memory-limit": "300Mi" }],
  ["mode", (p) => p.metadata!.annotations = { "sidecar-injector.io/mode": "classic" }],
  ["container names", (p) => p.spec!.containers[0]!.name = "web"],
  ["more containers", (p) => p.spec!.containers.push({ name: "side", image: "busybox" })],
  ["identity", (p) => p.spec!.securityContext = { runAsUser: 1234 }],
  ["group", (p) => p.spec!.securityContext = { runAsUser: 1234, runAsGroup: 99 }],
  ["name collision", (p) => p.spec!.initContainers = [{ name: "fluentd", image: "busybox" }]],
  ["volume collision", (p) => p.spec!.volumes = [{ name: "app-logs", emptyDir: {} }]],
];

Deno.test("render cache: pods differing in any render input get different agent parts", () => {
  const config = defaultConfig();
  const base = agentParts(fixture("nginx.yaml"), config);
  const seen = new Map<string, string>([[base, "nginx"]]);
  for (const [what, change] of variants) {
    const pod = fixture("nginx.yaml");
    change(pod);
    // Rendered twice: the second answer comes from the cache and must be the same.
    const first = agentParts(structuredClone(pod), config);
    assert.equal(agentParts(structuredClone(pod), config), first, `${what}: cached answer`);
    assert.equal(first, agentParts(structuredClone(pod), parseConfig("")), `${what}: fresh config`);
    assert.ok(!seen.has(first), `${what} gives the same patch as ${seen.get(first)}`);
    seen.set(first, what);
  }
});

Deno.test("render cache: every field of the input is part of the key", () => {
  const config = defaultConfig();
  const profile = config.profiles.fluentd!;
  const input: RenderInput = {
    profile,
    names: { container: "a", volume: "b", stateVolume: "c", configVolume: "d" },
    sidecar: { native: true, stateSizeLimit: "1Gi" },
    pipeline: { logDir: "/l", output: profile.output, containers: ["x"], bufferBytes: 1 },
  };
  const cache = new RenderCache();
  const a = cache.get(input);
  const equal = { ...input, names: { ...input.names }, sidecar: { ...input.sidecar } };
  assert.equal(cache.get(equal), a, "an equal input is a hit");
  // An input field the renderers do not know yet (as another change may add) still splits the key.
  const other = cache.get({ ...input, extra: 1 } as RenderInput);
  assert.notEqual(other, a);
  assert.equal(cache.misses, 2);
  assert.equal(cache.hits, 1);
});

Deno.test("render cache: bounded by entries and bytes, least recently used out first", () => {
  const profile = defaultConfig().profiles.fluentd!;
  const input = (i: number): RenderInput => ({
    profile,
    names: { container: `c${i}`, volume: "v", stateVolume: "s", configVolume: "k" },
    sidecar: { native: true },
    pipeline: { logDir: "/l", output: profile.output, containers: [`app${i}`], bufferBytes: 1 },
  });
  const cache = new RenderCache(4, 1 << 30);
  for (let i = 0; i < 10; i++) cache.get(input(i));
  assert.equal(cache.size, 4);
  const kept = cache.get(input(9));
  cache.get(input(10));
  assert.equal(cache.get(input(9)), kept, "recently used stays");
  const one = renderAgent(input(0)).bytes;
  const small = new RenderCache(1000, one * 3);
  for (let i = 0; i < 50; i++) small.get(input(i));
  assert.ok(small.bytes <= one * 3, `${small.bytes} bytes held`);
  assert.ok(small.size >= 1 && small.size <= 3);
});

Deno.test("render cache: rendered parts are frozen, so no pod can change another's", () => {
  const { patch } = inject(fixture("nginx.yaml"), defaultConfig(), { namespace: "default" });
  const sidecars = patch.find((op) => op.path === "/spec/initContainers");
  assert.ok(sidecars && sidecars.op === "add");
  const sidecar = (sidecars.value as Array<{ name: string }>)[0]!;
  assert.ok(Object.isFrozen(sidecar));
  assert.throws(() => sidecar.name = "changed", TypeError);
});

Deno.test("render cache: the key is the input's JSON, a frozen object named by a token", () => {
  const config = defaultConfig();
  const frozen = config.profiles.fluentd!;
  const plain: unknown[] = [
    { names: { a: "x", b: undefined }, list: [1, undefined, "s", { n: null }] },
    { profile: structuredClone(frozen), k: [true, false] },
    ['\u2028"quoted"', 1.5, -0, { 'odd key"': 1 }],
  ];
  for (const v of plain) assert.equal(renderKey(v), JSON.stringify(v));
  const key = renderKey({ profile: frozen });
  assert.match(key, /^\{"profile":#\d+\}$/);
  assert.equal(renderKey({ profile: frozen }), key, "same object, same token");
  assert.notEqual(renderKey({ profile: Object.freeze({ ...frozen }) }), key, "another object");
});
