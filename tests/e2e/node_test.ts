/**
 * End-to-end tests on a REAL one-node cluster: kubelet + containerd + runc run the pods this
 * product injects, and the webhook itself runs as the Pod k8s/deployment.yaml describes,
 * deployed with `kubectl apply -k testdata/e2e/node/overlay` (see tests/e2e/node/harness.ts).
 *
 * The agent in these pods is a STAND-IN (testdata/e2e/node/stand_in_agent.sh, imported under
 * the agent image reference): CI has no Fluentd or Fluent Bit image. It honours the rendered
 * container's command, mounts and user and copies lines to stdout; these scenarios check what
 * the kubelet does with the injected pod, not what an agent does (that is `deno task agents`).
 *
 *   deno test --frozen -A tests/e2e/node_test.ts
 * @module
 */
import assert from "node:assert/strict";
import { exec, REPO_ROOT, say } from "./control_plane/harness.ts";
import { agentStatus, E2E_TEST_OPTS, getPod, newNamespace } from "./control_plane/pods.ts";
import { missingOnHost, type Node, NODE_NAME, startNode } from "./node/harness.ts";
import {
  deployWebhook,
  restartWebhook,
  waitRollout,
  WEBHOOK_NS,
  webhookConfigMap,
  webhookPods,
} from "./node/deploy.ts";
import { agentImageRef, BUSYBOX_REF, standInAgentImage } from "./node/images.ts";
import { largeReview } from "../../bench/fixtures.ts";
import { STORM_CONNECTIONS } from "../../bench/storm.ts";
import { wrk } from "../../bench/wrk.ts";
import { memoryKiB } from "../../testing/process.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

/** A stand-in agent that exits 1 at once: an agent that crashes. */
const CRASHING_REF = "localhost/crashing-agent:e2e";
/** Never imported: an agent image that cannot be pulled. */
const MISSING_REF = "localhost/no-such-agent:e2e";
const STATUS = "sidecar-injector.io/status";
const CONFIG = "sidecar-injector.io/agent-config";

const missing = missingOnHost();
const CI = Deno.env.get("CI") === "true";
if (missing.length > 0 && !CI) {
  say(`e2e node: SKIPPED, missing on this host: ${missing.join(", ")} (CI never skips)`);
}
const opts = { ...E2E_TEST_OPTS, ignore: missing.length > 0 && !CI };

let nodeRef: Node | undefined;
let setupPromise: Promise<Node> | undefined;
globalThis.addEventListener("unload", () => nodeRef?.killSync());

function setup(): Promise<Node> {
  return setupPromise ??= (async () => {
    const node = nodeRef = await startNode([agentImageRef("fluentd"), agentImageRef("fluent-bit")]);
    const crashing = await standInAgentImage(CRASHING_REF, { crash: true });
    await node.importImage(crashing);
    const ms = await deployWebhook(node);
    say(`e2e node: webhook deployed from the overlay and Ready in ${ms} ms`);
    return node;
  })();
}

async function apply(node: Node, obj: Obj): Promise<void> {
  const r = await node.cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(obj) });
  if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
}

/** A container of the app: busybox writing `lines` lines to the log volume, then `sleep`. */
function app(lines: number, thenSleep: number, extra: Obj = {}): Obj {
  return {
    name: "app",
    image: BUSYBOX_REF,
    imagePullPolicy: "Never",
    command: [
      "sh",
      "-c",
      `i=0; while [ $i -lt ${lines} ]; do echo "line $i" >> /var/log/app/app.log; i=$((i+1)); done; sleep ${thenSleep}`,
    ],
    ...extra,
  };
}

/** A bare Pod in `ns` with `annotations` and `spec`. */
function barePod(ns: string, name: string, spec: Obj, annotations: Record<string, string> = {}) {
  return { apiVersion: "v1", kind: "Pod", metadata: { name, namespace: ns, annotations }, spec };
}

/** The pod's Ready condition is True. */
const isReady = (p: Obj) =>
  p?.status?.conditions?.find((c: Obj) => c.type === "Ready")?.status === "True";

/** Polls pod `ns/name` every 500 ms until `ok` holds; returns it. */
async function waitPod(
  node: Node,
  ns: string,
  name: string,
  what: string,
  ok: (p: Obj) => boolean,
  ms = 120_000,
): Promise<Obj> {
  return await node.cp.waitFor(
    `pod ${ns}/${name} ${what}`,
    async () => {
      const p = await getPod(node.cp, ns, name);
      return ok(p) ? p : undefined;
    },
    ms,
    500,
  );
}

/** `kubectl exec` of `cmd` in a container; its stdout. */
async function execIn(node: Node, ns: string, pod: string, container: string, cmd: string[]) {
  const r = await node.cp.kubectl(["exec", "-n", ns, pod, "-c", container, "--", ...cmd]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

Deno.test("node: the webhook runs as the Pod of k8s/ (overlay) and is Ready", opts, async () => {
  const node = await setup();
  const pods = await webhookPods(node);
  assert.equal(pods.length, 2, "the two replicas of k8s/deployment.yaml");
  for (const p of pods) {
    assert.equal(p.spec.nodeName, NODE_NAME);
    const c = p.spec.containers[0];
    assert.equal(c.image, "localhost/sidecar-injector:e2e");
    assert.equal(c.imagePullPolicy, "Never");
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    const ready = p.status.conditions.find((x: Obj) => x.type === "Ready");
    assert.equal(ready.status, "True", JSON.stringify(p.status));
  }
});

Deno.test("node: a Deployment's pod runs with the agent started and ready", opts, async () => {
  const node = await setup();
  const ns = await newNamespace(node.cp, "deploy");
  await apply(node, {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: "web" } },
      template: { metadata: { labels: { app: "web" } }, spec: { containers: [app(5, 3600)] } },
    },
  });
  const pod = await node.cp.waitFor(
    "Deployment pod Ready",
    async () => {
      const l = await node.cp.kubectlJson(["get", "pods", "-n", ns, "-l", "app=web", "-o", "json"]);
      return isReady(l.items[0]) ? l.items[0] : undefined;
    },
    120_000,
    500,
  );
  assert.ok(pod.metadata.annotations[STATUS], "injected");
  const agent = agentStatus(pod);
  assert.ok(agent, "agent status present");
  assert.equal(agent.ready, true);
  assert.ok(agent.state.running, JSON.stringify(agent.state));
  // The stand-in copies the app's lines to its stdout (kubectl logs through the kubelet).
  await node.cp.waitFor(
    "agent copied the app's lines",
    async () => {
      const r = await node.cp.kubectl(["logs", "-n", ns, pod.metadata.name, "-c", "fluentd"]);
      return r.code === 0 && r.stdout.includes('"log":"line 4"');
    },
    30_000,
    500,
  );
});

/** Waits for the pod to reach `phase`; returns it. */
function waitPhase(node: Node, ns: string, name: string, phase: string, ms = 120_000) {
  return waitPod(node, ns, name, phase, (p) => p.status?.phase === phase, ms);
}

/** The agent started before the app and stopped after it (from the container statuses). */
function assertAgentWrapsApp(pod: Obj): void {
  const agent = agentStatus(pod);
  const appStatus = pod.status.containerStatuses.find((c: Obj) => c.name === "app");
  const a = agent.state.terminated;
  const b = appStatus.state.terminated;
  assert.ok(a && b, `both terminated: ${JSON.stringify(pod.status)}`);
  assert.equal(b.exitCode, 0);
  assert.ok(Date.parse(a.startedAt) <= Date.parse(b.startedAt), "agent started before the app");
  assert.ok(Date.parse(a.finishedAt) >= Date.parse(b.finishedAt), "agent stopped after the app");
  // Native sidecars are stopped by the kubelet once the app is done (SIGTERM -> exit 0).
  assert.equal(a.exitCode, 0, JSON.stringify(a));
}

async function agentLogs(node: Node, ns: string, pod: string, name = "fluentd") {
  const r = await node.cp.kubectl(["logs", "-n", ns, pod, "-c", name]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

Deno.test(
  "node: a Job completes, the agent started before and stopped after the app",
  opts,
  async () => {
    const node = await setup();
    const ns = await newNamespace(node.cp, "job");
    // The app runs a few seconds: a Job shorter than the agent's first pass loses lines; that
    // is issue 26 (startup probe + preStop), not checked here.
    await apply(node, {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "work", namespace: ns },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: { labels: { app: "work" } },
          spec: { restartPolicy: "Never", containers: [app(100, 3)] },
        },
      },
    });
    await node.cp.waitFor(
      "Job complete",
      async () => {
        const j = await node.cp.kubectlJson(["get", "job", "-n", ns, "work", "-o", "json"]);
        return j.status?.succeeded === 1;
      },
      120_000,
      500,
    );
    const pods = await node.cp.kubectlJson([
      "get",
      "pods",
      "-n",
      ns,
      "-l",
      "app=work",
      "-o",
      "json",
    ]);
    const pod = pods.items[0];
    assert.equal(pod.status.phase, "Succeeded");
    assertAgentWrapsApp(pod);
    const logs = await agentLogs(node, ns, pod.metadata.name);
    for (let i = 0; i < 100; i++) assert.ok(logs.includes(`"log":"line ${i}"`), `line ${i}`);
  },
);

Deno.test(
  "node: a bare restartPolicy Never pod completes, in native and in classic mode",
  opts,
  async () => {
    const node = await setup();
    const ns = await newNamespace(node.cp, "bare");
    for (const mode of ["native", "classic"]) {
      await apply(
        node,
        barePod(ns, `bare-${mode}`, { restartPolicy: "Never", containers: [app(10, 2)] }, {
          "sidecar-injector.io/mode": mode,
        }),
      );
    }
    const native = await waitPhase(node, ns, "bare-native", "Succeeded");
    assertAgentWrapsApp(native);
    // Classic: the injector refuses (a regular agent container never exits, so the pod could
    // never complete) and says so; the pod runs and completes without the agent.
    const classic = await waitPhase(node, ns, "bare-classic", "Succeeded");
    assert.equal(classic.metadata.annotations?.[STATUS], undefined, "classic: not injected");
  },
);

Deno.test(
  "node: a pod in a Pod Security restricted namespace is admitted and runs",
  opts,
  async () => {
    const node = await setup();
    const ns = await newNamespace(node.cp, "restricted", {
      "pod-security.kubernetes.io/enforce": "restricted",
    });
    const restricted = {
      runAsNonRoot: true,
      runAsUser: 1000,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    };
    await apply(
      node,
      barePod(ns, "strict", { containers: [app(3, 3600, { securityContext: restricted })] }),
    );
    const pod = await waitPod(node, ns, "strict", "Ready", isReady);
    assert.ok(pod.metadata.annotations[STATUS], "injected");
    assert.ok(agentStatus(pod).state.running);
    // runc applied the rendered user (the agent takes the app's uid, to read its files).
    const rendered = pod.spec.initContainers.find((c: Obj) => c.name === "fluentd");
    assert.equal(rendered.securityContext.runAsUser, 1000);
    const uid = await execIn(node, ns, "strict", "fluentd", ["id", "-u"]);
    assert.equal(uid.trim(), String(rendered.securityContext.runAsUser));
  },
);

Deno.test(
  "node: the agent's config file in the container equals the annotation",
  opts,
  async () => {
    const node = await setup();
    const ns = await newNamespace(node.cp, "config");
    for (const profile of ["fluentd", "fluent-bit"]) {
      await apply(
        node,
        barePod(ns, profile, { containers: [app(1, 3600)] }, {
          "sidecar-injector.io/profile": profile,
        }),
      );
    }
    for (const profile of ["fluentd", "fluent-bit"]) {
      const pod = await waitPod(
        node,
        ns,
        profile,
        "agent running",
        (p) => agentStatus(p, profile)?.state?.running,
      );
      const agent = [...pod.spec.initContainers, ...pod.spec.containers].find((c: Obj) =>
        c.name === profile
      );
      const args: string[] = [...(agent.command ?? []), ...(agent.args ?? [])];
      const path = args.join(" ").match(/-c (\/\S+)/)?.[1];
      assert.ok(path, `config path in ${args.join(" ")}`);
      assert.equal(
        await execIn(node, ns, profile, profile, ["cat", path]),
        pod.metadata.annotations[CONFIG],
      );
    }
  },
);

Deno.test("node: kubectl rollout restart of the webhook loses no pod create", opts, async () => {
  const node = await setup();
  const ns = await newNamespace(node.cp, "rollout");
  await restartWebhook(node);
  const rollout = waitRollout(node);
  let done = false;
  rollout.finally(() => done = true).catch(() => {});
  const results: { name: string; code: number; err: string }[] = [];
  // Pods that are never scheduled (no node has the label): the creates are what counts.
  while (!done || results.length < 10) {
    const name = `p${results.length}`;
    const r = await node.cp.kubectl(["create", "-n", ns, "-f", "-", "-o", "name"], {
      stdin: JSON.stringify(
        barePod(ns, name, { nodeSelector: { "e2e/never": "true" }, containers: [app(1, 1)] }),
      ),
    });
    results.push({ name, code: r.code, err: r.stderr });
  }
  await rollout;
  const failed = results.filter((r) => r.code !== 0);
  assert.deepEqual(failed, [], "every create succeeded");
  const pods = await node.cp.kubectlJson(["get", "pods", "-n", ns, "-o", "json"]);
  const missed = pods.items.filter((p: Obj) => !p.metadata.annotations?.[STATUS])
    .map((p: Obj) => p.metadata.name);
  say(
    `e2e node: ${results.length} creates during the rollout restart, ${missed.length} not injected`,
  );
  assert.equal(pods.items.length, results.length);
  assert.deepEqual(missed, [], "every pod created during the rollout was injected");
});

/**
 * The main process of container `containerId` and its memory cgroup's peak and limit hits (v1 or
 * v2). Through `cat`: Deno reads nothing under /proc without --allow-all.
 */
async function containerMemory(
  node: Node,
  containerId: string,
): Promise<{ pid: number; peakMiB(): Promise<number>; limitHits(): Promise<string> }> {
  const task = (await node.ctr(["task", "ls"])).split("\n").find((l) => l.startsWith(containerId));
  const pid = Number(task?.split(/\s+/)[1]);
  assert.ok(pid > 0, `the task of container ${containerId}: ${task}`);
  const cgroups = (await exec("cat", [`/proc/${pid}/cgroup`])).stdout.split("\n");
  const v1 = cgroups.find((l) => /^\d+:memory:/.test(l))?.split(":")[2];
  const v2 = cgroups.find((l) => l.startsWith("0::"))?.slice(3);
  const dir = v1 !== undefined ? `/sys/fs/cgroup/memory${v1}` : `/sys/fs/cgroup${v2}`;
  const read = async (f: string) => (await exec("cat", [`${dir}/${f}`])).stdout.trim();
  return {
    pid,
    // cgroup v2 before Linux 5.19 has no memory.peak: NaN
    peakMiB: async () =>
      Number((await read(v1 !== undefined ? "memory.max_usage_in_bytes" : "memory.peak")) || NaN) /
      1048576,
    limitHits: async () =>
      v1 !== undefined
        ? `failcnt ${await read("memory.failcnt")}`
        : (await read("memory.events")).split("\n").find((l) => l.startsWith("max")) ?? "",
  };
}

Deno.test(
  "node: the webhook Pod rides out a large-pod storm under its memory limit",
  opts,
  async () => {
    // The bench's storm (400 KB reviews at 16, 64, 256 connections, 8 s each), sent to one
    // webhook Pod as k8s/deployment.yaml runs it: the limit is what the kernel enforces.
    const node = await setup();
    const pod = (await webhookPods(node)).find((p: Obj) =>
      !p.metadata.deletionTimestamp && isReady(p)
    );
    assert.ok(pod, "a Ready webhook pod");
    const limit = pod.spec.containers[0].resources.limits.memory;
    const webhook = (p: Obj) => p.status.containerStatuses[0];
    const status0 = webhook(pod);
    const memory = await containerMemory(node, status0.containerID.replace(/^.*:\/\//, ""));
    const body = `${node.dir}/large-review.json`;
    await Deno.writeTextFile(body, JSON.stringify(largeReview()));
    const rows: string[] = [];
    for (const connections of STORM_CONNECTIONS) {
      const w = await wrk({ hostname: pod.status.podIP, port: 8443 }, body, {
        seconds: 8,
        connections,
        statuses: true,
      });
      const hwm = (await memoryKiB(memory.pid)).hwm / 1024; // NaN once the process is gone
      rows.push(
        `${connections}: ${Math.round(w.rps)} req/s ${JSON.stringify(w.statuses)}, ` +
          `cgroup peak ${(await memory.peakMiB()).toFixed(0)} MiB, VmHWM ${hwm.toFixed(0)} MiB`,
      );
      let now = webhook(await getPod(node.cp, WEBHOOK_NS, pod.metadata.name));
      if (Number.isNaN(hwm) && now.containerID === status0.containerID) {
        // A killed process: the kubelet reports the restart within a few seconds.
        const p = await waitPod(
          node,
          WEBHOOK_NS,
          pod.metadata.name,
          "restarted",
          (p) => webhook(p).containerID !== status0.containerID,
          15_000,
        );
        now = webhook(p);
      }
      assert.ok(
        now.restartCount === status0.restartCount && now.containerID === status0.containerID,
        `the webhook container (limit ${limit}) restarted during the storm at ${connections} ` +
          `connections: ${JSON.stringify(now.lastState)}`,
      );
      const other = Object.entries(w.statuses ?? {}).filter(([s]) => s !== "200" && s !== "503");
      assert.deepEqual(other, [], `only 200 and budget 503 answers at ${connections}`);
      assert.ok((w.statuses?.["200"] ?? 0) > 0, `answers at ${connections}: ${rows.at(-1)}`);
      assert.equal(w.socketErrors, "", `no connection error at ${connections}`);
    }
    say(
      `e2e node: large-pod storm on the webhook Pod (limit ${limit}, ${await memory
        .limitHits()}): ${rows.join("; ")}`,
    );
  },
);

Deno.test("node: a log volume written past its sizeLimit is evicted", opts, async () => {
  const node = await setup();
  // An operator's config change: a profile whose log volume is 1Mi. The webhook reloads its
  // config file when the kubelet updates the ConfigMap volume.
  const cm = await webhookConfigMap(node);
  cm.data["config.yaml"] += "  tiny:\n    agent: fluentd\n    logVolumeSizeLimit: 1Mi\n";
  delete cm.metadata.resourceVersion;
  await apply(node, cm);
  const ns = await newNamespace(node.cp, "evict");
  const pod = (name: string) =>
    barePod(ns, name, {
      restartPolicy: "Never",
      containers: [{
        ...app(0, 0),
        command: ["sh", "-c", "head -c 5242880 /dev/zero > /var/log/app/big.log; sleep 3600"],
      }],
    }, { "sidecar-injector.io/profile": "tiny" });
  const t0 = performance.now();
  await node.cp.waitFor(
    "the webhook serves the tiny profile",
    async () => {
      const r = await node.cp.kubectlJson(["create", "--dry-run=server", "-f", "-", "-o", "json"], {
        stdin: JSON.stringify(pod("probe")),
      });
      return r.spec.volumes.some((v: Obj) => v.emptyDir?.sizeLimit === "1Mi");
    },
    120_000,
    1000,
  );
  say(`e2e node: config change served ${Math.round(performance.now() - t0)} ms after the apply`);
  // Each webhook replica reloads when the kubelet updates its ConfigMap volume, not at once:
  // create until the stored pod carries the 1Mi limit.
  let t1 = 0;
  await node.cp.waitFor(
    "a pod created with the 1Mi log volume",
    async () => {
      await node.cp.kubectl(["delete", "pod", "-n", ns, "big", "--ignore-not-found", "--wait"]);
      t1 = performance.now();
      await apply(node, pod("big"));
      const p = await getPod(node.cp, ns, "big");
      return p.spec.volumes.some((v: Obj) =>
        v.name === "app-logs" && v.emptyDir?.sizeLimit === "1Mi"
      );
    },
    120_000,
    1000,
  );
  const evicted = await waitPhase(node, ns, "big", "Failed", 120_000);
  say(
    `e2e node: evicted ${
      Math.round(performance.now() - t1)
    } ms after the create: ${evicted.status.message}`,
  );
  assert.equal(evicted.status.reason, "Evicted");
  assert.match(evicted.status.message, /app-logs.*exceeds the limit "1Mi"/);
});

Deno.test(
  "node: an agent that cannot be pulled or crashes, native vs classic, and the audit",
  opts,
  async () => {
    const node = await setup();
    const ns = await newNamespace(node.cp, "blocked");
    const cases = [
      { name: "pull-native", mode: "native", image: MISSING_REF },
      { name: "pull-classic", mode: "classic", image: MISSING_REF },
      { name: "crash-native", mode: "native", image: CRASHING_REF },
      { name: "crash-classic", mode: "classic", image: CRASHING_REF },
    ];
    for (const c of cases) {
      await apply(
        node,
        barePod(ns, c.name, { containers: [app(3, 3600)] }, {
          "sidecar-injector.io/mode": c.mode,
          "sidecar-injector.io/image": c.image,
        }),
      );
    }
    const appState = (p: Obj) =>
      p.status?.containerStatuses?.find((c: Obj) => c.name === "app")?.state ?? {};
    // What the app container does, per case, once the agent has failed a few times.
    const seen: Record<string, string> = {};
    await node.cp.waitFor(
      "every agent failed at least once and every app settled",
      async () => {
        for (const c of cases) {
          const p = await getPod(node.cp, ns, c.name);
          const agent = agentStatus(p);
          const waiting = agent?.state?.waiting?.reason ?? "";
          const failed = /ImagePull|ErrImage|CrashLoop/.test(waiting) ||
            (agent?.restartCount ?? 0) > 0;
          if (!failed) return false;
          const a = appState(p);
          seen[c.name] = a.running
            ? "app running"
            : `app waiting (${a.waiting?.reason ?? "no status"})`;
        }
        return true;
      },
      120_000,
      1000,
    );
    say(`e2e node: agent cannot start -> ${JSON.stringify(seen)}`);
    // Classic: the app runs without its agent. Native: the app waits for an agent that cannot
    // be pulled (the kubelet starts app containers once every sidecar has started).
    assert.equal(seen["pull-classic"], "app running");
    assert.equal(seen["crash-classic"], "app running");
    assert.match(seen["pull-native"] ?? "", /app waiting/);
    // The audit names every one of them as blocked (the operator's runbook starts there).
    const r = await exec(Deno.execPath(), [
      "run",
      "--frozen",
      "-P=audit",
      "main.ts",
      "audit",
      "--kubeconfig",
      node.cp.kubeconfig,
      "-n",
      ns,
      "-o",
      "json",
    ], { cwd: REPO_ROOT, timeoutMs: 60_000, env: { NO_COLOR: "1" } });
    const report = JSON.parse(r.stdout);
    const blocked = report.findings.filter((f: Obj) => f.problem === "blocked");
    say(`e2e node: audit (exit ${r.code}): ${JSON.stringify(blocked)}`);
    assert.equal(r.code, 1, r.stderr);
    const names = blocked.map((f: Obj) => f.pod);
    // The pods whose agent image cannot be pulled are blocked at once; a crashing agent only
    // after BLOCKED_RESTARTS restarts (back-off makes that minutes), so it is not waited for.
    for (const c of cases.filter((c) => c.image === MISSING_REF)) {
      assert.ok(names.includes(c.name), `${c.name} listed as blocked: ${JSON.stringify(names)}`);
    }
    const native = blocked.find((f: Obj) => f.pod === "pull-native");
    assert.match(native.reason, /the app containers cannot start until it runs/);
  },
);

Deno.test("node: teardown leaves the host as it found it", opts, async () => {
  if (!nodeRef) await setup();
  const node = nodeRef!;
  nodeRef = undefined;
  const left = await node.stop();
  assert.deepEqual(left, [], `host state differs after teardown:\n${left.join("\n")}`);
});
