/**
 * Deploys the webhook as a Pod the way an operator does: `k8s/gen-certs.sh`, then
 * `kubectl apply -k` of the test overlay `testdata/e2e/node/overlay/` (k8s/ with only the
 * image and its pull policy changed). Both run in a copy of k8s/ and the overlay under the
 * node's state dir, so the checkout's own k8s/generated/ is never touched.
 * @module
 */
import { REPO_ROOT } from "../control_plane/harness.ts";
import type { Node } from "./harness.ts";

/** The webhook's namespace, Deployment and Service (k8s/). */
export const WEBHOOK_NS = "sidecar-injector";
export const WEBHOOK_DEPLOYMENT = "sidecar-injector";

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, ...(cwd ? { cwd } : {}), stdin: "null" })
    .output();
  const dec = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} (${out.code}): ${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout);
}

/** Applies the overlay and waits for the rollout (readiness probe) to finish; returns ms taken. */
export async function deployWebhook(node: Node): Promise<number> {
  const t0 = performance.now();
  const copy = `${node.dir}/repo`;
  await Deno.mkdir(`${copy}/testdata/e2e/node`, { recursive: true });
  await run("cp", ["-r", `${REPO_ROOT}/k8s`, `${copy}/k8s`]);
  await Deno.remove(`${copy}/k8s/generated`, { recursive: true }).catch(() => {});
  await run("cp", [
    "-r",
    `${REPO_ROOT}/testdata/e2e/node/overlay`,
    `${copy}/testdata/e2e/node/overlay`,
  ]);
  await run("bash", [`${copy}/k8s/gen-certs.sh`]);
  const r = await node.cp.kubectl(["apply", "-k", `${copy}/testdata/e2e/node/overlay`], {
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`kubectl apply -k: ${r.stderr}`);
  await waitRollout(node);
  return Math.round(performance.now() - t0);
}

/** The webhook's pods (k8s/'s Deployment), as `kubectl get -o json` lists them. */
// deno-lint-ignore no-explicit-any
export async function webhookPods(node: Node): Promise<any[]> {
  const list = await node.cp.kubectlJson([
    "get",
    "pods",
    "-n",
    WEBHOOK_NS,
    "-l",
    "app.kubernetes.io/name=sidecar-injector",
    "-o",
    "json",
  ]);
  return list.items;
}

/** The webhook's ConfigMap (k8s/) as stored; change `data["config.yaml"]` and replace it. */
// deno-lint-ignore no-explicit-any
export async function webhookConfigMap(node: Node): Promise<any> {
  return await node.cp.kubectlJson([
    "get",
    "configmap",
    "-n",
    WEBHOOK_NS,
    "sidecar-injector-config",
    "-o",
    "json",
  ]);
}

/** `kubectl rollout restart` of the webhook Deployment; {@link waitRollout} waits for it. */
export async function restartWebhook(node: Node): Promise<void> {
  const r = await node.cp.kubectl([
    "rollout",
    "restart",
    "-n",
    WEBHOOK_NS,
    `deployment/${WEBHOOK_DEPLOYMENT}`,
  ]);
  if (r.code !== 0) throw new Error(`kubectl rollout restart: ${r.stderr}`);
}

/** Waits until the webhook Deployment's rollout is complete (every replica Ready). */
export async function waitRollout(node: Node, timeoutMs = 240_000): Promise<void> {
  const r = await node.cp.kubectl([
    "rollout",
    "status",
    "-n",
    WEBHOOK_NS,
    `deployment/${WEBHOOK_DEPLOYMENT}`,
    `--timeout=${Math.round(timeoutMs / 1000)}s`,
  ], { timeoutMs: timeoutMs + 10_000 });
  if (r.code !== 0) {
    const pods = await node.cp.kubectl(["get", "pods", "-A", "-o", "wide"]);
    const desc = await node.cp.kubectl(["describe", "pods", "-n", WEBHOOK_NS]);
    throw new Error(
      `webhook rollout: ${r.stdout}${r.stderr}\n${pods.stdout}\n${desc.stdout.slice(-4000)}\n${
        node.cp.logs(30)
      }`,
    );
  }
}
