/**
 * Real-agent pod scenarios on the one-node cluster of tests/e2e/node/ (`deno task agents`, not
 * CI): the injected pods run REAL Fluentd and Fluent Bit, in images assembled from the agents
 * this host already has (FLUENTD, FLUENT_BIT; see tests/e2e/node/images.ts `hostAgentImage`),
 * imported under the agent image references of the config. Needs root.
 *
 * Every line is counted from the agent's stdout as the kubelet streams it (`kubectl logs -f`,
 * started before the lines are written), so a line counts only if the agent shipped it before
 * its container ended.
 * @module
 */
import assert from "node:assert/strict";
import { say } from "../../testing/process.ts";
import { E2E_TEST_OPTS } from "../e2e/control_plane/pods.ts";
import { exec } from "../e2e/control_plane/harness.ts";
import { deployWebhook } from "../e2e/node/deploy.ts";
import { missingOnHost, type Node, startNode } from "../e2e/node/harness.ts";
import { BUSYBOX_REF, hostAgentImage } from "../e2e/node/images.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const FLUENTD = Deno.env.get("FLUENTD");
const FLUENT_BIT = Deno.env.get("FLUENT_BIT");
const missing = [...missingOnHost(), ...(FLUENTD && FLUENT_BIT ? [] : ["FLUENTD, FLUENT_BIT"])];
if (missing.length > 0) say(`agents node pods: SKIPPED, missing: ${missing.join(", ")}`);
const opts = { ...E2E_TEST_OPTS, ignore: missing.length > 0 };
const AGENTS = ["fluentd", "fluent-bit"] as const;
type Agent = typeof AGENTS[number];

/**
 * The Debian Ruby and the dirs of its libraries and gems that Fluentd loads. /usr/bin/ruby is a
 * symlink (-> ruby3.1) and Fluentd's supervisor spawns its worker with the target's path
 * (RbConfig.ruby); `hostAgentImage` copies both.
 */
const RUBY_DIRS = [
  "/usr/bin/ruby",
  "/usr/lib/ruby",
  "/usr/lib/x86_64-linux-gnu/ruby",
  "/usr/lib/x86_64-linux-gnu/rubygems-integration",
  "/usr/share/rubygems-integration",
  "/var/lib/gems",
];

async function agentImages(): Promise<Obj[]> {
  const bit = await Deno.realPath(FLUENT_BIT!);
  const wrapper = await Deno.readTextFile(FLUENTD!);
  // The wrapper's source dirs (RUBYLIB and the script it execs), at their own paths.
  const srcDirs = [
    ...new Set([...wrapper.matchAll(/(\/[\w./-]+?)\/(?:lib|bin)\b/g)].map((m) => m[1]!)),
  ];
  const exists = (p: string) => {
    try {
      Deno.statSync(p);
      return true;
    } catch {
      return false;
    }
  };
  return await Promise.all([
    hostAgentImage("real-fluent-bit", "docker.io/fluent/fluent-bit:3.2", [bit], {
      "/fluent-bit/bin/fluent-bit": bit,
    }),
    hostAgentImage(
      "real-fluentd",
      "docker.io/fluent/fluentd:v1.17-1",
      [...RUBY_DIRS.filter(exists), ...srcDirs],
      { "/usr/local/bin/fluentd": FLUENTD! },
    ),
  ]);
}

let nodeRef: Node | undefined;
let setupPromise: Promise<Node> | undefined;
globalThis.addEventListener("unload", () => nodeRef?.killSync());

function setup(): Promise<Node> {
  return setupPromise ??= (async () => {
    const node = nodeRef = await startNode([]);
    for (const img of await agentImages()) await node.importImage(img);
    await deployWebhook(node);
    return node;
  })();
}

let seq = 0;
async function namespace(node: Node, prefix: string): Promise<string> {
  const ns = `${prefix}-${Date.now().toString(36)}-${seq++}`;
  const r = await node.cp.kubectl(["create", "namespace", ns]);
  assert.equal(r.code, 0, r.stderr);
  await node.cp.waitFor(
    `default ServiceAccount in ${ns}`,
    async () => (await node.cp.kubectl(["get", "sa", "default", "-n", ns])).code === 0,
  );
  return ns;
}

async function create(node: Node, obj: Obj): Promise<void> {
  const r = await node.cp.kubectl(["create", "-f", "-"], { stdin: JSON.stringify(obj) });
  assert.equal(r.code, 0, r.stderr);
}

/** `kubectl logs -f` of the agent container; resolves with the `line N` numbers it shipped. */
function follow(node: Node, ns: string, pod: string, agent: Agent): Promise<Set<number>> {
  return exec(`${node.cp.binDir}/kubectl`, [
    `--kubeconfig=${node.cp.kubeconfig}`,
    "logs",
    "-f",
    "-n",
    ns,
    pod,
    "-c",
    agent,
  ], { timeoutMs: 300_000 }).then((r) => {
    const seen = new Set<number>();
    for (const l of r.stdout.split("\n")) {
      if (!l.startsWith("{")) continue;
      try {
        const m = String(JSON.parse(l).log ?? "").match(/^line (\d+)$/);
        if (m) seen.add(Number(m[1]));
      } catch { /* the agent's own log */ }
    }
    return seen;
  });
}

/** A busybox app pod injected with `agent`'s profile; `restartPolicy` set when given. */
function appPod(
  ns: string,
  name: string,
  agent: Agent,
  script: string,
  restartPolicy?: string,
): Obj {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ns, annotations: { "sidecar-injector.io/profile": agent } },
    spec: {
      ...(restartPolicy ? { restartPolicy } : {}),
      containers: [{
        name: "app",
        image: BUSYBOX_REF,
        imagePullPolicy: "Never",
        command: ["sh", "-c", script],
      }],
    },
  };
}

/** The pod once it has Succeeded or Failed. */
function waitDone(node: Node, ns: string, name: string, timeoutMs: number, everyMs: number) {
  return node.cp.waitFor(
    `${ns}/${name} done`,
    async () => {
      const p = await node.cp.kubectlJson(["get", "pod", "-n", ns, name, "-o", "json"]);
      return ["Succeeded", "Failed"].includes(p.status?.phase) ? p : undefined;
    },
    timeoutMs,
    everyMs,
  );
}

async function waitAgentRunning(node: Node, ns: string, pod: string, agent: Agent) {
  return await node.cp.waitFor(
    `${agent} running in ${ns}/${pod}`,
    async () => {
      const p = await node.cp.kubectlJson(["get", "pod", "-n", ns, pod, "-o", "json"]);
      const s = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]
        .find((c: Obj) => c.name === agent);
      return s?.state?.running && p.status.phase === "Running" ? p : undefined;
    },
    180_000,
    500,
  );
}

const figures: string[] = [];

for (const agent of AGENTS) {
  Deno.test(
    `node pods, ${agent}: every line of a Job ships before it completes`,
    opts,
    async () => {
      const node = await setup();
      const ns = await namespace(node, "job");
      const N = 5000;
      // The app runs a few seconds after its last line: a Job shorter than the agent's first
      // read loses lines, which is issue 26 (startup probe + preStop), not measured here.
      const pod = appPod(
        ns,
        "job",
        agent,
        `sleep 3; i=0; while [ $i -lt ${N} ]; do echo "line $i"; i=$((i+1)); done >> /var/log/app/app.log; sleep 3`,
        "Never",
      );
      await create(node, pod);
      await waitAgentRunning(node, ns, "job", agent);
      const t0 = performance.now();
      const shipped = await follow(node, ns, "job", agent);
      const p = await waitDone(node, ns, "job", 60_000, 500);
      figures.push(
        `${agent} job: ${shipped.size}/${N} lines, pod ${p.status.phase} after ${
          Math.round(performance.now() - t0)
        } ms`,
      );
      say(figures.at(-1)!);
      assert.equal(p.status.phase, "Succeeded");
      assert.equal(shipped.size, N);
    },
  );

  Deno.test(
    `node pods, ${agent}: kubectl delete pod right after a burst ships every line`,
    opts,
    async () => {
      const node = await setup();
      const ns = await namespace(node, "delete");
      const N = 5000;
      await create(node, appPod(ns, "burst", agent, "sleep 3600"));
      await waitAgentRunning(node, ns, "burst", agent);
      await new Promise((r) => setTimeout(r, 2000)); // the agent's tail is set up
      const shipped = follow(node, ns, "burst", agent);
      const burst = await node.cp.kubectl([
        "exec",
        "-n",
        ns,
        "burst",
        "-c",
        "app",
        "--",
        "sh",
        "-c",
        `i=0; while [ $i -lt ${N} ]; do echo "line $i"; i=$((i+1)); done >> /var/log/app/app.log`,
      ]);
      assert.equal(burst.code, 0, burst.stderr);
      const t0 = performance.now();
      const del = await node.cp.kubectl(["delete", "pod", "-n", ns, "burst", "--wait=true"], {
        timeoutMs: 120_000,
      });
      assert.equal(del.code, 0, del.stderr);
      const got = await shipped;
      figures.push(
        `${agent} delete after burst: ${got.size}/${N} lines, deleted in ${
          Math.round(performance.now() - t0)
        } ms`,
      );
      say(figures.at(-1)!);
      assert.equal(got.size, N);
    },
  );
}

/** Lines the `k`th short pod writes: 20 to 200, spread by a fixed step. */
const shortPodLines = (k: number) => 20 + (k * 73) % 181;

/** The `q` quantile (0..1) of `xs`, nearest rank. */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

for (const agent of AGENTS) {
  Deno.test(
    `node pods, ${agent}: 20 short pods in a row each ship every line of a new file (issue 26)`,
    opts,
    async () => {
      const node = await setup();
      const ns = await namespace(node, "short");
      const PODS = 20;
      const times: number[] = [];
      let expected = 0;
      let got = 0;
      const failed: string[] = [];
      const exits = new Set<number | undefined>();
      for (let k = 0; k < PODS; k++) {
        const name = `short-${k}`;
        const n = shortPodLines(k);
        expected += n;
        const t0 = performance.now();
        // A bare pod, native sidecar (the default): the app writes a file the agent has not
        // seen yet and exits at once.
        await create(
          node,
          appPod(
            ns,
            name,
            agent,
            `i=0; while [ $i -lt ${n} ]; do echo "line $i"; i=$((i+1)); done > /var/log/app/run-${k}.log`,
            "Never",
          ),
        );
        const p = await waitDone(node, ns, name, 180_000, 200);
        times.push(performance.now() - t0);
        // The pod is done: its agent container has ended, so its whole log is there.
        const shipped = await follow(node, ns, name, agent);
        got += shipped.size;
        // The agent exits 0 too (an image lacking a library it loads late exits 127 after
        // shipping everything, which the pod's phase does not show).
        const exit = [...(p.status.initContainerStatuses ?? []), ...p.status.containerStatuses]
          .find((c: Obj) => c.name === agent)?.state?.terminated?.exitCode;
        exits.add(exit);
        if (p.status.phase !== "Succeeded" || shipped.size !== n || exit !== 0) {
          failed.push(`${name}: ${p.status.phase}, ${shipped.size}/${n} lines, agent exit ${exit}`);
        }
      }
      figures.push(
        `${agent} ${PODS} short pods: ${
          PODS - failed.length
        }/${PODS} ok, ${got}/${expected} lines, ` +
          `create->Succeeded p50 ${(quantile(times, 0.5) / 1000).toFixed(1)} s, max ${
            (Math.max(...times) / 1000).toFixed(1)
          } s, agent exit codes ${[...exits].join(",")}`,
      );
      say(figures.at(-1)!);
      assert.deepEqual(failed, []);
      assert.equal(got, expected);
    },
  );
}

Deno.test("node pods: teardown leaves the host as it found it", opts, async () => {
  if (!nodeRef) return;
  const node = nodeRef;
  nodeRef = undefined;
  const left = await node.stop();
  say(`node pods figures:\n${figures.join("\n")}`);
  assert.deepEqual(left, []);
});
