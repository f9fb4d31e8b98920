/** `main.ts inject` as a user runs it: a real process, its own permission set. */
import assert from "node:assert/strict";
import { load, loadAll } from "js-yaml";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import { assertInjected } from "../../testing/assert_injected.ts";
import { assertPod, defaultConfig, parseConfig } from "../../lib/mod.ts";
import { exec, REPO_ROOT } from "./control_plane/harness.ts";

function inject(args: string[], stdin?: string) {
  return exec(Deno.execPath(), ["run", "--frozen", "-P=inject", "main.ts", "inject", ...args], {
    cwd: REPO_ROOT,
    timeoutMs: 60_000,
    env: { NO_COLOR: "1" },
    ...(stdin === undefined ? {} : { stdin }),
  });
}

function podFrom(doc: unknown, path: string[] = []): Pod {
  let v: unknown = doc;
  for (const k of path) v = (v as Record<string, unknown>)[k];
  assertPod(v);
  return v;
}

Deno.test("main.ts inject -f prints the nginx pod with the sidecar and shared volume (YAML)", async () => {
  const r = await inject(["-f", "testdata/pods/nginx.yaml"]);
  assert.equal(r.code, 0, r.stderr);
  const out = podFrom(load(r.stdout));
  const original = podFrom(load(await Deno.readTextFile(`${REPO_ROOT}/testdata/pods/nginx.yaml`)));
  const patch = [{ op: "replace" as const, path: "", value: out }];
  assertInjected(original, patch, defaultConfig());
  assert.deepEqual(out.spec?.containers.map((c) => c.name), ["nginx"]);
  assert.deepEqual(out.spec?.initContainers?.map((c) => c.name), ["fluentd"]);
});

Deno.test("main.ts inject reads stdin and prints JSON with -o json", async () => {
  const text = await Deno.readTextFile(`${REPO_ROOT}/testdata/pods/with-volumes.yaml`);
  const r = await inject(["-f", "-", "-o", "json"], text);
  assert.equal(r.code, 0, r.stderr);
  const out = podFrom(JSON.parse(r.stdout));
  assert.equal(out.metadata?.annotations?.["a~b/c"], "tilde-and-slash");
  assert.ok(out.metadata?.annotations?.["sidecar-injector.io/status"]);
});

Deno.test("main.ts inject mutates Deployment and CronJob pod templates", async () => {
  const deploy = await inject(["-f", "testdata/workloads/deployment.yaml"]);
  assert.equal(deploy.code, 0, deploy.stderr);
  const d = load(deploy.stdout);
  const template = podFrom(d, ["spec", "template"]);
  assert.deepEqual(template.spec?.containers.map((c) => c.name), ["web"]);
  assert.deepEqual(template.spec?.initContainers?.map((c) => c.name), ["fluentd"]);
  assert.deepEqual(template.metadata?.labels, { app: "web" }, "template labels kept");

  const cron = await inject(["-f", "testdata/workloads/cronjob.yaml"]);
  assert.equal(cron.code, 0, cron.stderr);
  const t = podFrom(load(cron.stdout), ["spec", "jobTemplate", "spec", "template"]);
  assert.equal(t.spec?.initContainers?.[0]?.name, "fluentd", "Job pods get a native sidecar");
  assert.equal(t.spec?.initContainers?.[0]?.restartPolicy, "Always");
});

Deno.test("main.ts inject handles several documents and reports skipped ones", async () => {
  const text = [
    await Deno.readTextFile(`${REPO_ROOT}/testdata/pods/nginx.yaml`),
    await Deno.readTextFile(`${REPO_ROOT}/testdata/pods/opted-out.yaml`),
    "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\ndata: { a: b }\n",
  ].join("\n---\n");
  const r = await inject(["-f", "-"], text);
  assert.equal(r.code, 0, r.stderr);
  const docs = loadAll(r.stdout) as Array<
    { kind: string; spec?: { containers: unknown[]; initContainers?: unknown[] } }
  >;
  assert.deepEqual(docs.map((d) => d.kind), ["Pod", "Pod", "ConfigMap"]);
  assert.equal(docs[0]?.spec?.containers.length, 1);
  assert.equal(docs[0]?.spec?.initContainers?.length, 1, "the agent");
  assert.equal(docs[1]?.spec?.containers.length, 1);
  assert.match(r.stderr, /# not injected: opted out by annotation/);
  assert.match(r.stderr, /# not injected: kind ConfigMap has no pod template/);
});

Deno.test("main.ts inject honours --config and prints annotation warnings", async () => {
  await Deno.mkdir(`${REPO_ROOT}/.tmp`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${REPO_ROOT}/.tmp`, prefix: "cli-" });
  try {
    await Deno.writeTextFile(`${dir}/config.yaml`, "defaultProfile: fluent-bit\n");
    const pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n" +
      "    sidecar-injector.io/cpu-request: lots\nspec:\n  containers: [{ name: a, image: x }]\n";
    const r = await inject(["-f", "-", "--config", `${dir}/config.yaml`], pod);
    assert.equal(r.code, 0, r.stderr);
    const out = podFrom(load(r.stdout));
    assert.equal(out.spec?.initContainers?.[0]?.name, "fluent-bit");
    assertInjected(
      podFrom(load(pod)),
      [{ op: "replace", path: "", value: out }],
      parseConfig("defaultProfile: fluent-bit"),
    );
    assert.match(
      r.stderr,
      /Warning: sidecar-injector: annotation sidecar-injector\.io\/cpu-request="lots" ignored/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("main.ts inject exits non-zero with a message on bad input", async () => {
  const missing = await inject(["-f", "testdata/pods/does-not-exist.yaml"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /error: .*No such file/);
  const bad = await inject(["-f", "-"], "kind: Pod\nspec:\n  containers: {}\n");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Pod\.spec\.containers must be an array/);
  const usage = await inject(["--bogus"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /unknown flag --bogus/);
});

Deno.test("main.ts inject accepts empty YAML keys (null = unset), as kubectl apply does", async () => {
  const r = await inject(["-f", "testdata/pods/empty-keys.yaml"]);
  assert.equal(r.code, 0, r.stderr);
  const out = podFrom(load(r.stdout));
  assert.deepEqual(out.spec?.containers.map((c) => c.name), ["app"]);
  assert.deepEqual(out.spec?.initContainers?.map((c) => c.name), ["fluentd"]);
  assert.equal(out.spec?.containers[0]?.volumeMounts?.[0]?.mountPath, "/var/log/app");
  assert.ok(out.metadata?.annotations?.["sidecar-injector.io/status"]);
  const wrong = await inject(
    ["-f", "-"],
    "kind: Pod\nmetadata:\n  annotations: [a]\nspec:\n  containers: []\n",
  );
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /Pod\.metadata\.annotations must be a map of strings, got array/);
});

Deno.test("the README's log-writer pod gets the log volume mounted where it writes", async () => {
  const r = await inject(["-f", "testdata/pods/log-writer.yaml"]);
  assert.equal(r.code, 0, r.stderr);
  const out = podFrom(load(r.stdout));
  const [app, ...rest] = [...(out.spec?.containers ?? []), ...(out.spec?.initContainers ?? [])];
  const script = app?.args?.join(" ") ?? "";
  const target = /\$\{?i\}?" >> (\S+)\/([^/\s;]+\.log)/.exec(script);
  assert.ok(target, `the example writes a *.log file: ${script}`);
  const dir = target[1];
  assert.ok(app?.volumeMounts?.some((m) => m.mountPath === dir), `app mounts ${dir}`);
  const agent = rest.find((c) => c.name === "fluentd");
  assert.ok(agent, "the agent is there");
  const volume = app?.volumeMounts?.find((m) => m.mountPath === dir)?.name;
  assert.ok(agent.volumeMounts?.some((m) => m.name === volume && m.mountPath === dir));
  assert.match(Deno.readTextFileSync(`${REPO_ROOT}/README.md`), /testdata\/pods\/log-writer\.yaml/);
});
