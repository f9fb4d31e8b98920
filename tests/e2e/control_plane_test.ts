/**
 * End-to-end tests against a REAL kube-apiserver (+ etcd, kube-controller-manager)
 * and the REAL webhook server process (`main.ts serve`). The control plane and the
 * webhook are started once for this file; each scenario checks what the apiserver
 * stored. See tests/e2e/control_plane/harness.ts.
 *
 *   deno test --frozen -A tests/e2e/control_plane_test.ts
 * @module
 */
import assert from "node:assert/strict";
import { load } from "js-yaml";
import {
  type ControlPlane,
  exec,
  REPO_ROOT,
  say,
  startControlPlane,
} from "./control_plane/harness.ts";
import { startRoundRobinProxy } from "./control_plane/tcp_proxy.ts";
import {
  fileSerial,
  genWebhookCerts,
  servedSerial,
  startWebhook,
  type Webhook,
  type WebhookCerts,
} from "./control_plane/webhook.ts";
import { b64, createPod, E2E_TEST_OPTS, hasAgent, waitForInjection } from "./control_plane/pods.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const MWC = "sidecar-injector-e2e";
const HOOK = "sidecar-injector.sidecar-injector.io";
const REINVOKE_MWC = "zz-reinvoke";
const V1BETA1_MWC = "sidecar-injector-e2e-v1beta1";
const CEL_MWC = "sidecar-injector-e2e-cel";
const STATUS = "sidecar-injector.io/status";
const IMAGE = "fluent/fluentd:v1.17-1";
const NGINX = "testdata/e2e/nginx-pod.yaml";
const opts = E2E_TEST_OPTS;

interface Env {
  cp: ControlPlane;
  certs: WebhookCerts;
  webhook: Webhook;
  /** Number of webhook processes started, for unique log names. */
  starts: number;
}

let cpRef: ControlPlane | undefined;
let webhookRef: Webhook | undefined;
let setupPromise: Promise<Env> | undefined;
/** Extra webhook processes started by single scenarios. */
const extraWebhooks: Webhook[] = [];

// Safety net: if the run ends without reaching the teardown test, kill the children synchronously.
globalThis.addEventListener("unload", () => {
  webhookRef?.kill();
  for (const w of extraWebhooks) w.kill();
  cpRef?.killSync();
});

function setup(): Promise<Env> {
  return setupPromise ??= (async () => {
    const cp = cpRef = await startControlPlane();
    const certs = await genWebhookCerts(`${cp.dir}/webhook-certs`);
    const env: Env = { cp, certs, webhook: await launchWebhook(cp, certs, 1), starts: 1 };
    const t0 = performance.now();
    await apply(cp, mainConfig(env.webhook.port, certs));
    await waitForInjection(env.cp, "default", nginxPod("injection-probe"));
    say(
      `e2e: webhook on :${env.webhook.port}; injection active ${
        Math.round(performance.now() - t0)
      } ms after registration`,
    );
    return env;
  })();
}

async function launchWebhook(cp: ControlPlane, certs: WebhookCerts, n: number): Promise<Webhook> {
  const logPath = `${cp.dir}/webhook-${n}.log`;
  cp.addLog(`webhook #${n}`, logPath);
  const t0 = performance.now();
  const wh = webhookRef = await startWebhook({ certs, logPath });
  say(
    `e2e: webhook #${n} (pid ${wh.pid}) ready on :${wh.port} in ${
      Math.round(performance.now() - t0)
    } ms`,
  );
  return wh;
}

function hook(name: string, port: number, certs: WebhookCerts, extra: Obj = {}): Obj {
  return {
    name,
    clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle: b64(certs.caPem) },
    rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }],
    failurePolicy: "Fail",
    sideEffects: "None",
    admissionReviewVersions: ["v1", "v1beta1"],
    timeoutSeconds: 5,
    reinvocationPolicy: "IfNeeded",
    namespaceSelector: {
      matchExpressions: [{
        key: "kubernetes.io/metadata.name",
        operator: "NotIn",
        values: ["kube-system", "kube-public", "kube-node-lease", "sidecar-injector"],
      }],
    },
    ...extra,
  };
}

function mwc(name: string, webhooks: Obj[]): Obj {
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "MutatingWebhookConfiguration",
    metadata: { name },
    webhooks,
  };
}

/**
 * The main config; pods labelled `e2e-v1beta1` / `e2e-http1` are left to the
 * v1beta1-only / HTTP/1.1 configs.
 */
function mainConfig(port: number, certs: WebhookCerts): Obj {
  return mwc(MWC, [
    hook(HOOK, port, certs, {
      objectSelector: {
        matchExpressions: [
          { key: "e2e-v1beta1", operator: "DoesNotExist" },
          { key: "e2e-http1", operator: "DoesNotExist" },
          { key: "e2e-rolling", operator: "DoesNotExist" },
          { key: "e2e-cel", operator: "DoesNotExist" },
        ],
      },
    }),
  ]);
}

async function apply(cp: ControlPlane, obj: Obj): Promise<void> {
  const r = await cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(obj) });
  assert.equal(r.code, 0, `kubectl apply ${obj.kind}/${obj.metadata.name}: ${r.stderr}`);
}

function nginxPod(name: string, meta: Obj = {}): Obj {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, ...meta },
    spec: { containers: [{ name: "nginx", image: "nginx" }] },
  };
}

const names = (list: Obj[] | undefined): string[] => (list ?? []).map((x: Obj) => x.name);
/** True when the pod carries the fluentd agent, native or classic. */

async function getPod(env: Env, name: string, ns = "default"): Promise<Obj> {
  return await env.cp.kubectlJson(["get", "pod", name, "-n", ns, "-o", "json"]);
}

async function ensureNamespace(env: Env, ns: string): Promise<void> {
  const r = await env.cp.kubectl(["create", "namespace", ns]);
  assert.ok(r.code === 0 || r.stderr.includes("AlreadyExists"), r.stderr);
  await env.cp.waitFor(`ServiceAccount ${ns}/default`, async () => {
    return (await env.cp.kubectl(["get", "serviceaccount", "default", "-n", ns, "-o", "name"]))
      .code === 0;
  }, 30_000);
}

/** The agent `name`: a native sidecar (in initContainers) or a classic container. */
function agentOf(pod: Obj, name = "fluentd"): Obj {
  const all = [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
  const found = all.filter((c: Obj) => c.name === name);
  assert.equal(found.length, 1, `one ${name} container in ${names(all)}`);
  return found[0];
}

/** Asserts the injection of the default fluentd profile, mounted in every regular container. */
function assertInjected(pod: Obj, volume = "app-logs"): Obj {
  const spec = pod.spec;
  const sidecar = agentOf(pod);
  assert.equal(sidecar.image, IMAGE);
  const vols = spec.volumes.filter((v: Obj) => v.name === volume);
  assert.equal(vols.length, 1, `one volume ${volume} in ${names(spec.volumes)}`);
  assert.ok(vols[0].emptyDir, `volume ${volume} is an emptyDir: ${JSON.stringify(vols[0])}`);
  assert.ok(
    sidecar.volumeMounts.some((m: Obj) => m.name === volume && m.mountPath === "/var/log/app"),
    `fluentd mounts ${volume}: ${JSON.stringify(sidecar.volumeMounts)}`,
  );
  for (const c of spec.containers) {
    if (c.name === "fluentd") continue;
    assert.ok(
      (c.volumeMounts ?? []).some((m: Obj) => m.name === volume),
      `container ${c.name} mounts ${volume}: ${JSON.stringify(c.volumeMounts)}`,
    );
  }
  assert.equal(
    new Set(names(spec.volumes)).size,
    spec.volumes.length,
    `unique volume names ${names(spec.volumes)}`,
  );
  const all = [...spec.containers, ...(spec.initContainers ?? [])];
  assert.equal(new Set(names(all)).size, all.length, `unique container names ${names(all)}`);
  for (const c of all) {
    const paths = (c.volumeMounts ?? []).map((m: Obj) => m.mountPath);
    assert.equal(new Set(paths).size, paths.length, `unique mount paths in ${c.name}: ${paths}`);
  }
  const raw = pod.metadata.annotations?.[STATUS];
  assert.ok(raw, `annotation ${STATUS} present`);
  const status = JSON.parse(raw);
  assert.equal(status.sidecar, "fluentd");
  assert.equal(status.volume, volume);
  if (status.mode === "native") {
    assert.equal(sidecar.restartPolicy, "Always", "a native sidecar");
    assert.ok(names(spec.initContainers).includes("fluentd"), "in initContainers");
  } else {
    assert.ok(names(spec.containers).includes("fluentd"), "a classic container");
  }
  return status;
}

function assertNotInjected(pod: Obj): void {
  const all = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])];
  assert.deepEqual(names(all).filter((n) => n === "fluentd"), [], "no fluentd container");
  assert.ok(
    !names(pod.spec.volumes).includes("app-logs"),
    `no app-logs volume: ${names(pod.spec.volumes)}`,
  );
}

/** Admission log lines of the current webhook process for `pod`, after its log buffer flushed. */
async function admissionsFor(env: Env, pod: string): Promise<Obj[]> {
  await new Promise((r) => setTimeout(r, 100)); // the server flushes its log every 20 ms
  return env.webhook.admissions().filter((a) => a.pod === pod);
}

Deno.test(
  "e2e: plain nginx pod is stored with the fluentd sidecar, volume, mounts and status",
  opts,
  async () => {
    const env = await setup();
    const r = await env.cp.kubectl(["create", "-n", "default", "-f", NGINX]);
    assert.equal(r.code, 0, r.stderr);
    const pod = await getPod(env, "nginx");
    const status = assertInjected(pod);
    assert.equal(status.mode, "native");
    assert.deepEqual(names(pod.spec.containers), ["nginx"]);
    assert.deepEqual(names(pod.spec.initContainers), ["fluentd"]);
    const nginx = pod.spec.containers[0];
    assert.ok(
      nginx.volumeMounts.some((m: Obj) => m.name === "app-logs" && m.mountPath === "/var/log/app"),
    );
    assert.deepEqual(pod.spec.volumes.find((v: Obj) => v.name === "app-logs"), {
      name: "app-logs",
      emptyDir: { sizeLimit: "1Gi" },
    });
    // The apiserver accepted the downward API file that carries the agent's config.
    const config = pod.spec.volumes.find((v: Obj) => v.name === "app-logs-config");
    assert.equal(config.downwardAPI.items[0].path, "fluent.conf");
    assert.match(pod.metadata.annotations["sidecar-injector.io/agent-config"], /@type tail/);
    assert.ok(!r.stderr.includes("Warning:"), `no warnings expected: ${r.stderr}`);
  },
);

Deno.test(
  "e2e: own volumes, mounts and annotations (keys with /, values with ~) are kept",
  opts,
  async () => {
    const env = await setup();
    const r = await env.cp.kubectl([
      "create",
      "-n",
      "default",
      "-f",
      "testdata/e2e/pod-own-volumes.yaml",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const pod = await getPod(env, "own-volumes");
    assertInjected(pod);
    const a = pod.metadata.annotations;
    assert.equal(a["example.com/team"], "a");
    assert.equal(a["tilde.example.com/x_y-z.w"], "a~b/c~1d");
    assert.equal(a["plain"], "x");
    assert.equal(pod.metadata.labels.app, "own-volumes");
    assert.deepEqual(pod.spec.volumes.find((v: Obj) => v.name === "data"), {
      name: "data",
      emptyDir: {},
    });
    assert.deepEqual(pod.spec.volumes.find((v: Obj) => v.name === "cache"), {
      name: "cache",
      emptyDir: { medium: "Memory" },
    });
    const byName = Object.fromEntries(pod.spec.containers.map((c: Obj) => [c.name, c]));
    assert.deepEqual(names(pod.spec.containers), ["app", "helper"]);
    assert.deepEqual(names(pod.spec.initContainers), ["fluentd"]);
    const mounts = (c: string) =>
      byName[c].volumeMounts.map((m: Obj) => `${m.name}:${m.mountPath}${m.readOnly ? ":ro" : ""}`);
    assert.ok(mounts("app").includes("data:/data"), `${mounts("app")}`);
    assert.ok(mounts("app").includes("app-logs:/var/log/app"), `${mounts("app")}`);
    for (const m of ["cache:/cache", "data:/data:ro", "app-logs:/var/log/app"]) {
      assert.ok(mounts("helper").includes(m), `helper has ${m}: ${mounts("helper")}`);
    }
    assert.deepEqual(byName.helper.command, ["sleep", "3600"]);
  },
);

Deno.test(
  "e2e: conflicting volume name and mount path are renamed, with a Warning",
  opts,
  async () => {
    const env = await setup();
    const r = await env.cp.kubectl([
      "create",
      "-n",
      "default",
      "-f",
      "testdata/e2e/pod-conflicts.yaml",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Warning:/, `kubectl should print admission warnings: ${r.stderr}`);
    const pod = await getPod(env, "conflicts");
    const status = assertInjected(pod, "app-logs-1");
    assert.equal(status.volume, "app-logs-1");
    const vols = names(pod.spec.volumes);
    assert.ok(vols.includes("app-logs") && vols.includes("app-logs-1"), `${vols}`);
    const nginx = pod.spec.containers.find((c: Obj) => c.name === "nginx");
    const mounts = nginx.volumeMounts.map((m: Obj) => `${m.name}:${m.mountPath}`);
    assert.ok(mounts.includes("app-logs:/var/log/app"), `original mount kept: ${mounts}`);
    const added = nginx.volumeMounts.find((m: Obj) => m.name === "app-logs-1");
    assert.ok(added, `nginx mounts app-logs-1: ${mounts}`);
    assert.notEqual(added.mountPath, "/var/log/app");
  },
);

Deno.test("e2e: Deployment -> ReplicaSet -> Pods (generateName) are injected", opts, async () => {
  const env = await setup();
  const r = await env.cp.kubectl(["create", "-n", "default", "-f", "testdata/e2e/deployment.yaml"]);
  assert.equal(r.code, 0, r.stderr);
  const pods: Obj[] = await env.cp.waitFor(
    "2 pods of Deployment e2e-web",
    async () => {
      const list = await env.cp.kubectlJson([
        "get",
        "pods",
        "-n",
        "default",
        "-l",
        "app=e2e-web",
        "-o",
        "json",
      ]);
      return list.items.length >= 2 ? list.items : undefined;
    },
    60_000,
    300,
  );
  assert.equal(pods.length, 2);
  for (const pod of pods) {
    assert.match(pod.metadata.name, /^e2e-web-[a-z0-9]+-[a-z0-9]{5}$/);
    assert.equal(pod.metadata.ownerReferences?.[0]?.kind, "ReplicaSet");
    assertInjected(pod);
  }
});

Deno.test("e2e: a pod in kube-system is not injected", opts, async () => {
  const env = await setup();
  await ensureNamespace(env, "kube-system");
  const r = await createPod(env.cp, nginxPod("system-pod"), "kube-system");
  assert.equal(r.code, 0, r.stderr);
  assertNotInjected(await getPod(env, "system-pod", "kube-system"));
});

Deno.test(
  'e2e: a pod annotated sidecar-injector.io/inject: "false" is not injected',
  opts,
  async () => {
    const env = await setup();
    const r = await createPod(
      env.cp,
      nginxPod("opted-out", { annotations: { "sidecar-injector.io/inject": "false" } }),
      "default",
    );
    assert.equal(r.code, 0, r.stderr);
    const pod = await getPod(env, "opted-out");
    assertNotInjected(pod);
    assert.equal(pod.metadata.annotations[STATUS], undefined);
    // The webhook saw it (no objectSelector on the annotation) and decided to skip.
    const seen = await admissionsFor(env, "opted-out");
    assert.ok(
      seen.length >= 1 && seen.every((a) => a.decision === "skipped"),
      JSON.stringify(seen),
    );
  },
);

Deno.test("e2e: a pod in namespace sidecar-injector is not injected", opts, async () => {
  const env = await setup();
  await ensureNamespace(env, "sidecar-injector");
  const r = await createPod(env.cp, nginxPod("own-namespace"), "sidecar-injector");
  assert.equal(r.code, 0, r.stderr);
  assertNotInjected(await getPod(env, "own-namespace", "sidecar-injector"));
});

Deno.test(
  "e2e: an already-injected pod (status annotation present) is unchanged",
  opts,
  async () => {
    const env = await setup();
    const value = JSON.stringify({ version: 1, sidecar: "fluentd", volume: "app-logs" });
    const r = await createPod(
      env.cp,
      nginxPod("pre-injected", { annotations: { [STATUS]: value } }),
      "default",
    );
    assert.equal(r.code, 0, r.stderr);
    const pod = await getPod(env, "pre-injected");
    assertNotInjected(pod);
    assert.equal(pod.metadata.annotations[STATUS], value);
    assert.deepEqual(names(pod.spec.containers), ["nginx"]);
  },
);

Deno.test(
  "e2e: reinvocation (second IfNeeded webhook, same URL) leaves exactly one sidecar",
  opts,
  async () => {
    const env = await setup();
    await apply(
      env.cp,
      mwc(REINVOKE_MWC, [
        hook("reinvoke.sidecar-injector.io", env.webhook.port, env.certs, {
          objectSelector: { matchLabels: { "e2e-reinvoke": "yes" } },
        }),
      ]),
    );
    // Wait until the apiserver calls the second webhook too (its config is picked up asynchronously).
    let n = 0;
    await env.cp.waitFor(
      "zz-reinvoke webhook active",
      async () => {
        const name = `reinvoke-probe-${n++}`;
        const r = await env.cp.kubectl([
          "create",
          "--dry-run=server",
          "-o",
          "name",
          "-n",
          "default",
          "-f",
          "-",
        ], {
          stdin: JSON.stringify(nginxPod(name, { labels: { "e2e-reinvoke": "yes" } })),
        });
        assert.equal(r.code, 0, r.stderr);
        return (await admissionsFor(env, name)).length >= 2;
      },
      30_000,
      200,
    );
    const r = await createPod(
      env.cp,
      nginxPod("reinvoked", { labels: { "e2e-reinvoke": "yes" } }),
      "default",
    );
    assert.equal(r.code, 0, r.stderr);
    const pod = await getPod(env, "reinvoked");
    assertInjected(pod);
    agentOf(pod);
    assert.equal(pod.spec.volumes.filter((v: Obj) => v.name === "app-logs").length, 1);
    const calls = await admissionsFor(env, "reinvoked");
    say(
      `e2e: reinvocation: webhook called ${calls.length}x for pod reinvoked: ${
        calls.map((c) => c.decision).join(", ")
      }`,
    );
    assert.equal(calls.filter((c) => c.decision === "injected").length, 1, JSON.stringify(calls));
    // main webhook + zz-reinvoke, plus at least one reinvocation round.
    assert.ok(calls.length >= 3, `expected a reinvocation (>= 3 calls), got ${calls.length}`);
  },
);

Deno.test("e2e: --dry-run=server shows the mutation and stores nothing", opts, async () => {
  const env = await setup();
  const r = await env.cp.kubectl([
    "create",
    "--dry-run=server",
    "-o",
    "json",
    "-n",
    "default",
    "-f",
    "-",
  ], {
    stdin: JSON.stringify(nginxPod("dry-run-pod")),
  });
  assert.equal(r.code, 0, r.stderr);
  assertInjected(JSON.parse(r.stdout));
  const g = await env.cp.kubectl(["get", "pod", "dry-run-pod", "-n", "default", "-o", "json"]);
  assert.notEqual(g.code, 0);
  assert.match(g.stderr, /NotFound|not found/);
  const calls = await admissionsFor(env, "dry-run-pod");
  assert.ok(calls.length >= 1 && calls.every((c) => c.dryRun === true), JSON.stringify(calls));
});

Deno.test(
  "e2e: a Job's pod gets the agent as a native sidecar (initContainers, restartPolicy Always)",
  opts,
  async () => {
    const env = await setup();
    const r = await env.cp.kubectl(["create", "-n", "default", "-f", "testdata/e2e/job.yaml"]);
    assert.equal(r.code, 0, r.stderr);
    const pod: Obj = await env.cp.waitFor(
      "the pod of Job e2e-job",
      async () => {
        const list = await env.cp.kubectlJson([
          "get",
          "pods",
          "-n",
          "default",
          "-l",
          "app=e2e-job",
          "-o",
          "json",
        ]);
        return list.items[0];
      },
      60_000,
      300,
    );
    assert.equal(pod.metadata.ownerReferences?.[0]?.kind, "Job");
    assert.deepEqual(names(pod.spec.containers), ["work"], "no fluentd among regular containers");
    const init = (pod.spec.initContainers ?? []).filter((c: Obj) => c.name === "fluentd");
    assert.equal(init.length, 1, `fluentd in initContainers: ${names(pod.spec.initContainers)}`);
    assert.equal(init[0].restartPolicy, "Always");
    assert.equal(init[0].image, IMAGE);
    assert.ok(
      init[0].volumeMounts.some((m: Obj) =>
        m.name === "app-logs" && m.mountPath === "/var/log/app"
      ),
    );
    assert.ok(pod.spec.containers[0].volumeMounts.some((m: Obj) => m.name === "app-logs"));
    assert.ok(pod.spec.volumes.some((v: Obj) => v.name === "app-logs" && v.emptyDir));
    assert.equal(JSON.parse(pod.metadata.annotations[STATUS]).mode, "native");
  },
);

Deno.test("e2e: AdmissionReview v1beta1 also injects", opts, async () => {
  const env = await setup();
  await apply(
    env.cp,
    mwc(V1BETA1_MWC, [
      hook("v1beta1.sidecar-injector.io", env.webhook.port, env.certs, {
        admissionReviewVersions: ["v1beta1"],
        objectSelector: { matchLabels: { "e2e-v1beta1": "yes" } },
      }),
    ]),
  );
  const labels = { "e2e-v1beta1": "yes" };
  await env.cp.waitFor(
    "v1beta1 webhook active",
    async () => {
      const r = await env.cp.kubectl([
        "create",
        "--dry-run=server",
        "-o",
        "json",
        "-n",
        "default",
        "-f",
        "-",
      ], {
        stdin: JSON.stringify(nginxPod("v1beta1-probe", { labels })),
      });
      if (r.code !== 0) throw new Error(r.stderr);
      return hasAgent(JSON.parse(r.stdout));
    },
    30_000,
    200,
  );
  const r = await createPod(env.cp, nginxPod("v1beta1-pod", { labels }), "default");
  assert.equal(r.code, 0, r.stderr);
  assertInjected(await getPod(env, "v1beta1-pod"));
  // Only the v1beta1 webhook matches this label, so the apiserver must have used it.
  const metrics = (await env.cp.kubectl(["get", "--raw", "/metrics"])).stdout;
  assert.match(
    metrics,
    /apiserver_admission_webhook_admission_duration_seconds_count\{[^}]*name="v1beta1\.sidecar-injector\.io"/,
  );
});

Deno.test(
  "e2e: kubectl apply -k <copy of k8s/> --dry-run=server succeeds with the generated caBundle",
  opts,
  async () => {
    const env = await setup();
    const copy = `${env.cp.dir}/k8s-copy`;
    const cp = await exec("cp", ["-R", `${REPO_ROOT}/k8s`, copy]);
    assert.equal(cp.code, 0, cp.stderr);
    await Deno.remove(`${copy}/generated`, { recursive: true }).catch(() => {});
    const gen = await exec("bash", [`${copy}/gen-certs.sh`, "--out", `${copy}/generated`]);
    assert.equal(gen.code, 0, gen.stderr);
    await ensureNamespace(env, "sidecar-injector");
    const r = await env.cp.kubectl(["apply", "-k", copy, "--dry-run=server", "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const items: Obj[] = out.kind === "List" ? out.items : [out];
    const kinds = items.map((i) => i.kind).sort();
    for (
      const k of [
        "Deployment",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Secret",
        "Service",
        "ServiceAccount",
      ]
    ) {
      assert.ok(kinds.includes(k), `${k} in ${kinds}`);
    }
    const cfg = items.find((i) => i.kind === "MutatingWebhookConfiguration");
    const ca = await Deno.readTextFile(`${copy}/generated/ca.crt`);
    assert.equal(cfg.webhooks[0].clientConfig.caBundle, b64(ca));
    // Dry run: nothing was stored.
    const g = await env.cp.kubectl(["get", "mutatingwebhookconfiguration", cfg.metadata.name]);
    assert.notEqual(g.code, 0, "dry-run must not create the MutatingWebhookConfiguration");
  },
);

interface Quantiles {
  count: number;
  p50: number;
  p99: number;
  /** Cumulative count per upper bound, summed over label sets. */
  buckets: Map<number, number>;
}

/** histogram_quantile over the summed buckets of one webhook's admission duration. */
function webhookLatency(metricsText: string, webhook: string): Quantiles {
  const buckets = new Map<number, number>();
  let count = 0;
  for (const line of metricsText.split("\n")) {
    if (!line.startsWith("apiserver_admission_webhook_admission_duration_seconds")) continue;
    if (!line.includes(`name="${webhook}"`)) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith("apiserver_admission_webhook_admission_duration_seconds_bucket{")) {
      const le = /le="([^"]+)"/.exec(line)?.[1];
      if (le === undefined) continue;
      const bound = le === "+Inf" ? Infinity : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    } else if (line.startsWith("apiserver_admission_webhook_admission_duration_seconds_count{")) {
      count += value;
    }
  }
  return { count, ...quantiles(buckets), buckets };
}

/** histogram_quantile's linear interpolation for p50 and p99. */
function quantiles(buckets: Map<number, number>): { p50: number; p99: number } {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const quantile = (q: number): number => {
    const total = sorted.at(-1)?.[1] ?? 0;
    if (total === 0) return NaN;
    const rank = q * total;
    let prevBound = 0;
    let prevCount = 0;
    for (const [bound, cum] of sorted) {
      if (cum >= rank) {
        if (bound === Infinity) return prevBound; // like Prometheus: the highest finite bound
        if (cum === prevCount) return bound;
        return prevBound + (bound - prevBound) * (rank - prevCount) / (cum - prevCount);
      }
      prevBound = bound;
      prevCount = cum;
    }
    return prevBound;
  };
  return { p50: quantile(0.5), p99: quantile(0.99) };
}

/** Latency of the calls between two snapshots (bucket counts subtracted). */
function diffLatency(before: Quantiles, after: Quantiles): Quantiles {
  const buckets = new Map<number, number>();
  for (const [le, n] of after.buckets) buckets.set(le, n - (before.buckets.get(le) ?? 0));
  return { count: after.count - before.count, ...quantiles(buckets), buckets };
}

Deno.test("e2e: a fluent-bit profile pod is stored with its agent", opts, async () => {
  const env = await setup();
  const pod = nginxPod("fluent-bit-pod", {
    annotations: { "sidecar-injector.io/profile": "fluent-bit" },
  });
  const r = await createPod(env.cp, pod, "default");
  assert.equal(r.code, 0, r.stderr);
  const stored = await getPod(env, "fluent-bit-pod");
  assert.deepEqual(names(stored.spec.containers), ["nginx"]);
  const agent = agentOf(stored, "fluent-bit");
  assert.equal(agent.image, "fluent/fluent-bit:5.1.1");
  assert.deepEqual(agent.command, ["/fluent-bit/bin/fluent-bit"]);
  assert.ok(
    agent.volumeMounts.some((m: Obj) => m.name === "app-logs" && m.mountPath === "/var/log/app"),
  );
  assert.equal(JSON.parse(stored.metadata.annotations[STATUS]).profile, "fluent-bit");
});

Deno.test(
  "e2e: an invalid annotation is admitted with the default and kubectl prints the warning",
  opts,
  async () => {
    const env = await setup();
    const pod = nginxPod("bad-annotation", {
      annotations: { "sidecar-injector.io/memory-limit": "a lot" },
    });
    const r = await createPod(env.cp, pod, "default");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /Warning: sidecar-injector: annotation sidecar-injector\.io\/memory-limit="a lot" ignored: must be a Kubernetes quantity/,
    );
    const stored = await getPod(env, "bad-annotation");
    assertInjected(stored);
    assert.equal(agentOf(stored).resources.limits.memory, "256Mi", "default limit used");
  },
);

Deno.test(
  "e2e: certificate rotation while pods are created through the apiserver: no failed create, new serial served",
  opts,
  async () => {
    const env = await setup();
    const before = await fileSerial(env.certs.tlsCrt);
    assert.equal(await servedSerial(env.webhook.port, env.certs.caCrt), before);
    let stop = false;
    const results: Array<{ code: number; stderr: string }> = [];
    const loop = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await createPod(env.cp, nginxPod(`rotate-${i}`), "default");
        results.push(r);
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    // Same CA (caBundle unchanged), new leaf: what re-running gen-certs.sh does.
    await genWebhookCerts(env.certs.dir);
    const after = await fileSerial(env.certs.tlsCrt);
    assert.notEqual(after, before);
    await env.cp.waitFor(
      "the webhook serving the new certificate",
      async () => (await servedSerial(env.webhook.port, env.certs.caCrt)) === after,
      15_000,
      100,
    );
    await new Promise((r) => setTimeout(r, 1500)); // creates continue past the old listener's drain
    stop = true;
    await loop;
    const failed = results.filter((r) => r.code !== 0);
    say(
      `e2e: rotation: ${results.length} pod creates, ${failed.length} failed; serial ${before} -> ${after}`,
    );
    assert.deepEqual(failed.map((r) => r.stderr), []);
    assert.ok(results.length >= 5, `pod creates during rotation: ${results.length}`);
    const last = await getPod(env, `rotate-${results.length - 1}`);
    assertInjected(last);
    assert.match(env.webhook.logText(), /"msg":"certificate reloaded"/);
  },
);

Deno.test(
  "e2e: rolling restart of two webhook processes behind a round-robin, under a pod-create loop: zero failures",
  opts,
  async () => {
    const env = await setup();
    const { cp } = env;
    const start = async (n: number) => {
      const logPath = `${cp.dir}/webhook-rolling-${n}.log`;
      cp.addLog(`webhook rolling ${n}`, logPath);
      const w = await startWebhook({ certs: env.certs, logPath });
      extraWebhooks.push(w);
      return w;
    };
    const backends = [await start(1), await start(2)];
    const proxy = startRoundRobinProxy(backends.map((w) => w.port));
    const label = { "e2e-rolling": "yes" };
    try {
      await apply(
        cp,
        mwc("sidecar-injector-e2e-rolling", [
          hook("rolling.sidecar-injector.io", proxy.port, env.certs, {
            reinvocationPolicy: "Never",
            objectSelector: { matchLabels: label },
          }),
        ]),
      );
      await env.cp.waitFor(
        "rolling webhook active",
        async () => {
          const r = await cp.kubectl(["create", "--dry-run=server", "-o", "json", "-f", "-"], {
            stdin: JSON.stringify(nginxPod("rolling-probe", { labels: label })),
          });
          return r.code === 0 && hasAgent(JSON.parse(r.stdout));
        },
        30_000,
        200,
      );

      let stop = false;
      const results: Array<{ name: string; code: number; stderr: string }> = [];
      const loop = (async () => {
        for (let i = 0; !stop; i++) {
          const name = `rolling-${i}`;
          const r = await createPod(env.cp, nginxPod(name, { labels: label }), "default");
          results.push({ name, ...r });
        }
      })();
      // Replace each process in turn: start the new one, point the proxy at it, SIGTERM the old.
      for (let i = 0; i < 2; i++) {
        await new Promise((r) => setTimeout(r, 700));
        const old = backends[i];
        assert.ok(old);
        const fresh = await start(3 + i);
        backends[i] = fresh;
        proxy.setBackends(backends.map((w) => w.port));
        const s = await old.stop();
        assert.equal(s.code, 0, `old webhook exit code ${s.code}`);
      }
      await new Promise((r) => setTimeout(r, 700));
      stop = true;
      await loop;
      const failed = results.filter((r) => r.code !== 0);
      say(
        `e2e: rolling restart: ${results.length} pod creates, ${failed.length} failed; ` +
          `connections per backend port: ${JSON.stringify([...proxy.counts])}`,
      );
      assert.deepEqual(failed.map((r) => r.stderr), []);
      assert.ok(results.length >= 5, `pod creates during the restart: ${results.length}`);
      for (const r of results.slice(-3)) assertInjected(await getPod(env, r.name));
    } finally {
      await cp.kubectl(["delete", "mutatingwebhookconfiguration", "sidecar-injector-e2e-rolling"]);
      await proxy.close();
      for (const w of backends) {
        await w.stop();
        extraWebhooks.splice(extraWebhooks.indexOf(w), 1);
      }
    }
  },
);

Deno.test(
  "e2e: 200 pods created as fast as kubectl allows; apiserver-measured webhook latency",
  opts,
  async () => {
    const env = await setup();
    await ensureNamespace(env, "storm");
    const before = webhookLatency(await env.cp.metrics(), HOOK);
    const items = Array.from({ length: 200 }, (_, i) => nginxPod(`storm-${i}`));
    const t0 = performance.now();
    const r = await env.cp.kubectl(["create", "-n", "storm", "-f", "-", "-o", "name"], {
      stdin: JSON.stringify({ apiVersion: "v1", kind: "List", items }),
    });
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n").length, 200);
    const after = webhookLatency(await env.cp.metrics(), HOOK);
    const delta = diffLatency(before, after);
    say(
      `e2e: storm: 200 pods in ${seconds.toFixed(2)} s (${(200 / seconds).toFixed(0)}/s); ` +
        `apiserver-observed ${HOOK} over these calls: count=${delta.count} ` +
        `p50~${(delta.p50 * 1000).toFixed(2)} ms p99~${(delta.p99 * 1000).toFixed(2)} ms`,
    );
    await Deno.mkdir(`${REPO_ROOT}/.tmp/results`, { recursive: true });
    await Deno.writeTextFile(
      `${REPO_ROOT}/.tmp/results/e2e-storm-latest.json`,
      JSON.stringify({ pods: 200, seconds, ...delta, protocol: "HTTP/2 (loopback URL)" }, null, 2) +
        "\n",
    );
    assert.ok(delta.count >= 200, `apiserver called the webhook ${delta.count}x`);
    const list = await env.cp.kubectlJson(["get", "pods", "-n", "storm", "-o", "json"]);
    assert.equal(list.items.length, 200);
    for (const pod of list.items) assertInjected(pod);
  },
);

Deno.test(
  "e2e: apiserver metric apiserver_admission_webhook_admission_duration_seconds for our webhook",
  opts,
  async () => {
    const env = await setup();
    const r = await env.cp.kubectl(["get", "--raw", "/metrics"]);
    assert.equal(r.code, 0, r.stderr);
    const q = webhookLatency(r.stdout, HOOK);
    say(
      `e2e: apiserver-observed latency of ${HOOK}: count=${q.count} ` +
        `p50~${(q.p50 * 1000).toFixed(1)} ms p99~${
          (q.p99 * 1000).toFixed(1)
        } ms (bucket interpolation)`,
    );
    assert.ok(q.count > 0, "the apiserver recorded calls to our webhook");
    assert.ok(q.p50 > 0 && q.p50 <= q.p99, JSON.stringify(q));
  },
);

Deno.test(
  "e2e: HTTP/1.1 path (non-loopback URL, as through a Service): injects, no ~40 ms response stall",
  opts,
  async () => {
    const env = await setup();
    // kube-apiserver speaks HTTP/2 only to loopback/localhost webhook URLs; any other
    // address gets HTTP/1.1 on kept-alive connections, the production protocol.
    const ip = Deno.networkInterfaces().find((i) =>
      i.family === "IPv4" && !i.address.startsWith("127.")
    )?.address;
    assert.ok(ip, "this scenario needs a non-loopback IPv4 address on the machine");
    const certs = await genWebhookCerts(`${env.cp.dir}/webhook-certs-http1`, [`IP:${ip}`]);
    const logPath = `${env.cp.dir}/webhook-http1.log`;
    env.cp.addLog("webhook http1", logPath);
    const wh = await startWebhook({ certs, logPath, host: "0.0.0.0" });
    extraWebhooks.push(wh);
    const name = "http1.sidecar-injector.io";
    try {
      await apply(
        env.cp,
        mwc("sidecar-injector-e2e-http1", [
          hook(name, wh.port, certs, {
            clientConfig: { url: `https://${ip}:${wh.port}/mutate`, caBundle: b64(certs.caPem) },
            // Never: one call per pod, each answering with the full ~1 KB patch.
            reinvocationPolicy: "Never",
            objectSelector: { matchLabels: { "e2e-http1": "yes" } },
          }),
        ]),
      );
      const dryRun = async (pod: string) => {
        const r = await env.cp.kubectl(
          ["create", "--dry-run=server", "-o", "json", "-n", "default", "-f", "-"],
          { stdin: JSON.stringify(nginxPod(pod, { labels: { "e2e-http1": "yes" } })) },
        );
        if (r.code !== 0) throw new Error(r.stderr);
        return JSON.parse(r.stdout);
      };
      await env.cp.waitFor(
        "HTTP/1.1 webhook active",
        async () => hasAgent(await dryRun("http1-probe")),
        30_000,
        200,
      );
      const before = webhookLatency(await env.cp.metrics(), name);
      const n = 20;
      for (let i = 0; i < n; i++) assertInjected(await dryRun(`http1-${i}`));
      const r = await createPod(
        env.cp,
        nginxPod("http1-pod", { labels: { "e2e-http1": "yes" } }),
        "default",
      );
      assert.equal(r.code, 0, r.stderr);
      assertInjected(await getPod(env, "http1-pod"));
      const after = webhookLatency(await env.cp.metrics(), name);
      say(
        `e2e: HTTP/1.1 webhook ${name}: calls=${after.count} (this scenario ${
          after.count - before.count
        }) p50~${(after.p50 * 1000).toFixed(1)} ms p99~${(after.p99 * 1000).toFixed(1)} ms`,
      );
      assert.ok(
        after.count - before.count >= n,
        `apiserver called ${name} ${after.count - before.count}x`,
      );
      // Nagle + delayed ACK (no TCP_NODELAY) would put every patched answer at ~40-44 ms.
      assert.ok(
        after.p50 < 0.02,
        `median apiserver-observed latency over HTTP/1.1 is ${
          (after.p50 * 1000).toFixed(1)
        } ms (>= 20 ms): ` +
          "the TLS response-size stall?",
      );
    } finally {
      await env.cp.kubectl([
        "delete",
        "mutatingwebhookconfiguration",
        "sidecar-injector-e2e-http1",
      ]);
      const s = await wh.stop();
      extraWebhooks.splice(extraWebhooks.indexOf(wh), 1);
      assert.equal(s.code, 0, `HTTP/1.1 webhook exit code ${s.code}`);
    }
  },
);

Deno.test(
  "e2e: a bare restartPolicy Never pod (kubectl run --restart=Never) gets a native sidecar",
  opts,
  async () => {
    const env = await setup();
    const pod = nginxPod("run-once");
    pod.spec.restartPolicy = "Never";
    const r = await createPod(env.cp, pod, "default");
    assert.equal(r.code, 0, r.stderr);
    const stored = await getPod(env, "run-once");
    assert.equal(assertInjected(stored).mode, "native");
    assert.deepEqual(names(stored.spec.containers), ["nginx"]);
    assert.equal(agentOf(stored).restartPolicy, "Always");
  },
);

Deno.test(
  "e2e: a pod with its own init containers and native sidecar keeps their order, the agent last",
  opts,
  async () => {
    const env = await setup();
    const pod = nginxPod("own-sidecar");
    pod.spec.initContainers = [
      { name: "setup", image: "busybox", command: ["true"] },
      { name: "proxy", image: "envoyproxy/envoy", restartPolicy: "Always" },
      { name: "migrate", image: "busybox", command: ["true"] },
    ];
    const r = await createPod(env.cp, pod, "default");
    assert.equal(r.code, 0, r.stderr);
    const stored = await getPod(env, "own-sidecar");
    assertInjected(stored);
    assert.deepEqual(names(stored.spec.initContainers), ["setup", "proxy", "migrate", "fluentd"]);
    assert.equal(stored.spec.initContainers[1].restartPolicy, "Always");
    assert.equal(stored.spec.initContainers[2].restartPolicy, undefined);
  },
);

/** Pods that can only run on Windows, one per way of saying so. */
function windowsPods(prefix: string, labels: Obj = {}): Obj[] {
  const base = (name: string, spec: Obj) => {
    const pod = nginxPod(`${prefix}-${name}`, { labels });
    Object.assign(pod.spec, spec);
    return pod;
  };
  const term = {
    matchExpressions: [{ key: "kubernetes.io/os", operator: "In", values: ["windows"] }],
  };
  return [
    base("os", { os: { name: "windows" } }),
    base("selector", { nodeSelector: { "kubernetes.io/os": "windows" } }),
    base("affinity", {
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [term] },
        },
      },
    }),
  ];
}

Deno.test(
  "e2e: a Windows pod is stored without the Linux agent and kubectl prints why",
  opts,
  async () => {
    const env = await setup();
    for (const pod of windowsPods("win")) {
      const r = await createPod(env.cp, pod, "default");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Warning: sidecar-injector: Windows pod: no log agent injected/);
      const stored = await getPod(env, pod.metadata.name);
      assertNotInjected(stored);
      assert.equal(stored.metadata.annotations?.[STATUS], undefined);
      const seen = await admissionsFor(env, pod.metadata.name);
      assert.ok(seen.length >= 1 && seen.every((a) => a.decision === "skipped"));
      assert.match(seen[0]?.reason ?? "", /Windows pod/);
    }
  },
);

Deno.test(
  "e2e: the shipped matchConditions are accepted and spare the webhook opted-out, Windows and mirror pods",
  opts,
  async () => {
    const env = await setup();
    const shipped: Obj = load(
      await Deno.readTextFile(`${REPO_ROOT}/k8s/mutatingwebhookconfiguration.yaml`),
    );
    const matchConditions = shipped.webhooks[0].matchConditions;
    assert.ok(matchConditions?.length >= 4, "k8s/ ships matchConditions");
    // A webhook nobody answers, failurePolicy Fail: any call it makes refuses the pod.
    const dead = await Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (dead.addr as Deno.NetAddr).port;
    dead.close();
    const cel = { "e2e-cel": "yes" };
    await apply(
      env.cp,
      mwc(CEL_MWC, [
        hook("cel.sidecar-injector.io", port, env.certs, {
          objectSelector: { matchLabels: cel },
          matchConditions,
        }),
      ]),
    );
    let lastErr = "";
    await env.cp.waitFor(
      "the CEL webhook refuses a normal pod",
      async () => {
        const r = await createPod(
          env.cp,
          nginxPod(`cel-normal-${crypto.randomUUID().slice(0, 6)}`, { labels: cel }),
          "default",
        );
        lastErr = r.stderr;
        return r.code !== 0 && r.stderr.includes("cel.sidecar-injector.io");
      },
      30_000,
      300,
    ).catch((err) => {
      throw new Error(`${err.message}: ${lastErr}`);
    });

    const spared: Obj[] = [
      nginxPod("cel-annotated", {
        labels: cel,
        annotations: { "sidecar-injector.io/inject": " False " },
      }),
      nginxPod("cel-labelled", { labels: { ...cel, "sidecar-injector.io/inject": "false" } }),
      // The apiserver accepts the mirror annotation only with a node name, as the kubelet sets it.
      {
        ...nginxPod("cel-mirror", {
          labels: cel,
          annotations: { "kubernetes.io/config.mirror": "x" },
        }),
        spec: { nodeName: "node-1", containers: [{ name: "nginx", image: "nginx" }] },
      },
      ...windowsPods("cel-win", cel),
    ];
    for (const pod of spared) {
      const r = await createPod(env.cp, pod, "default");
      assert.equal(r.code, 0, `${pod.metadata.name}: CEL must skip the webhook: ${r.stderr}`);
      assertNotInjected(await getPod(env, pod.metadata.name));
    }
    const refused = await createPod(env.cp, nginxPod("cel-refused", { labels: cel }), "default");
    assert.notEqual(refused.code, 0, "a normal pod still calls the (dead) webhook");
    assert.match(refused.stderr, /cel\.sidecar-injector\.io/);
    const d = await env.cp.kubectl(["delete", "mutatingwebhookconfiguration", CEL_MWC]);
    assert.equal(d.code, 0, d.stderr);
  },
);

Deno.test(
  "e2e: failurePolicy Fail blocks pod creation while the webhook is down; Ignore admits without sidecar",
  opts,
  async () => {
    const env = await setup();
    const { cp } = env;
    const status = await env.webhook.stop();
    assert.equal(
      status.code,
      0,
      `webhook exits 0 on SIGTERM (got ${status.code}, signal ${status.signal})`,
    );

    const failed = await createPod(env.cp, nginxPod("while-down-fail"), "default");
    assert.notEqual(failed.code, 0, "creation must fail with failurePolicy Fail");
    assert.match(failed.stderr, new RegExp(HOOK.replaceAll(".", "\\.")), failed.stderr);
    const gone = await cp.kubectl(["get", "pod", "while-down-fail", "-n", "default"]);
    assert.notEqual(gone.code, 0);

    const patch = (ops: Obj[], name = MWC) =>
      cp.kubectl([
        "patch",
        "mutatingwebhookconfiguration",
        name,
        "--type=json",
        "-p",
        JSON.stringify(ops),
      ]);
    let p = await patch([{ op: "replace", path: "/webhooks/0/failurePolicy", value: "Ignore" }]);
    assert.equal(p.code, 0, p.stderr);
    // The apiserver picks up the change asynchronously: retry (bounded) until admitted.
    let lastErr = "";
    await cp.waitFor(
      "pod admitted with failurePolicy Ignore",
      async () => {
        const r = await createPod(env.cp, nginxPod("while-down-ignore"), "default");
        lastErr = r.stderr;
        return r.code === 0;
      },
      30_000,
      300,
    ).catch((err) => {
      throw new Error(`${err.message}; last kubectl stderr: ${lastErr}`);
    });
    assertNotInjected(await getPod(env, "while-down-ignore"));

    // Restore for anything later: new process (new port), patched URLs, failurePolicy Fail.
    env.starts += 1;
    env.webhook = await launchWebhook(cp, env.certs, env.starts);
    const url = `https://127.0.0.1:${env.webhook.port}/mutate`;
    p = await patch([
      { op: "replace", path: "/webhooks/0/clientConfig/url", value: url },
      { op: "replace", path: "/webhooks/0/failurePolicy", value: "Fail" },
    ]);
    assert.equal(p.code, 0, p.stderr);
    for (const other of [REINVOKE_MWC, V1BETA1_MWC]) {
      if ((await cp.kubectl(["get", "mutatingwebhookconfiguration", other])).code !== 0) continue;
      p = await patch([{ op: "replace", path: "/webhooks/0/clientConfig/url", value: url }], other);
      assert.equal(p.code, 0, p.stderr);
    }
    await waitForInjection(
      env.cp,
      "default",
      nginxPod("injection-probe"),
      "injection through the restarted webhook",
    );
    const r = await createPod(env.cp, nginxPod("after-restart"), "default");
    assert.equal(r.code, 0, r.stderr);
    assertInjected(await getPod(env, "after-restart"));
  },
);

Deno.test("e2e: teardown (stop webhook and control plane, remove temp dir)", opts, async () => {
  if (!setupPromise) return;
  const env = await setupPromise.catch(() => undefined);
  if (env) {
    const s = await env.webhook.stop();
    assert.equal(s.code, 0, `webhook exit code ${s.code}`);
  } else {
    webhookRef?.kill();
  }
  const cp = env?.cp ?? cpRef;
  if (cp) {
    await cp.stop();
    assert.throws(() => Deno.statSync(cp.dir), Deno.errors.NotFound);
  }
  cpRef = undefined;
  webhookRef = undefined;
});
