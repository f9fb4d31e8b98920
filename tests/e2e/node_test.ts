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
import { say } from "./control_plane/harness.ts";
import { E2E_TEST_OPTS } from "./control_plane/pods.ts";
import { missingOnHost, type Node, NODE_NAME, startNode } from "./node/harness.ts";
import { deployWebhook, waitRollout, WEBHOOK_DEPLOYMENT, WEBHOOK_NS } from "./node/deploy.ts";
import { BUSYBOX_REF, standInAgentImage } from "./node/images.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const FLUENTD_REF = "docker.io/fluent/fluentd:v1.17-1";
const FLUENT_BIT_REF = "docker.io/fluent/fluent-bit:3.2";
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
    const node = nodeRef = await startNode([FLUENTD_REF, FLUENT_BIT_REF]);
    const crashing = await standInAgentImage(CRASHING_REF);
    await node.importImage(crashing);
    // The crashing image is the stand-in with STAND_IN_CRASH=1 in its environment: set per pod.
    const ms = await deployWebhook(node);
    say(`e2e node: webhook deployed from the overlay and Ready in ${ms} ms`);
    return node;
  })();
}

let seq = 0;
const uniq = (p: string) => `${p}-${Date.now().toString(36)}-${seq++}`;

async function apply(node: Node, obj: Obj): Promise<void> {
  const r = await node.cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(obj) });
  if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
}

async function getPod(node: Node, ns: string, name: string): Promise<Obj> {
  return await node.cp.kubectlJson(["get", "pod", "-n", ns, name, "-o", "json"]);
}

async function namespace(node: Node, prefix: string, labels: Record<string, string> = {}) {
  const ns = uniq(prefix);
  await apply(node, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels } });
  await node.cp.waitFor(`default ServiceAccount in ${ns}`, async () =>
    (await node.cp.kubectl(["get", "sa", "default", "-n", ns])).code === 0);
  return ns;
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

/** The agent's status among init (native) or regular (classic) container statuses. */
function agentStatus(pod: Obj, name = "fluentd"): Obj {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
    .find((c: Obj) => c.name === name);
}

Deno.test("node: the webhook runs as the Pod of k8s/ (overlay) and is Ready", opts, async () => {
  const node = await setup();
  const pods = await node.cp.kubectlJson([
    "get",
    "pods",
    "-n",
    WEBHOOK_NS,
    "-l",
    "app.kubernetes.io/name=sidecar-injector",
    "-o",
    "json",
  ]);
  assert.equal(pods.items.length, 2, "the two replicas of k8s/deployment.yaml");
  for (const p of pods.items) {
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
  const ns = await namespace(node, "deploy");
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
  const pod = await node.cp.waitFor("Deployment pod Ready", async () => {
    const l = await node.cp.kubectlJson(["get", "pods", "-n", ns, "-l", "app=web", "-o", "json"]);
    const p = l.items[0];
    const ready = p?.status?.conditions?.find((c: Obj) => c.type === "Ready");
    return ready?.status === "True" ? p : undefined;
  }, 120_000, 500);
  assert.ok(pod.metadata.annotations[STATUS], "injected");
  const agent = agentStatus(pod);
  assert.ok(agent, "agent status present");
  assert.equal(agent.ready, true);
  assert.ok(agent.state.running, JSON.stringify(agent.state));
  // The stand-in copies the app's lines to its stdout (kubectl logs through the kubelet).
  await node.cp.waitFor("agent copied the app's lines", async () => {
    const r = await node.cp.kubectl(["logs", "-n", ns, pod.metadata.name, "-c", "fluentd"]);
    return r.code === 0 && r.stdout.includes('"log":"line 4"');
  }, 30_000, 500);
});

Deno.test("node: teardown leaves the host as it found it", opts, async () => {
  if (!nodeRef) await setup();
  const node = nodeRef!;
  nodeRef = undefined;
  const left = await node.stop();
  assert.deepEqual(left, [], `host state differs after teardown:\n${left.join("\n")}`);
});
