/**
 * Pod helpers shared by the end-to-end tests on the real control plane.
 * @module
 */
import type { ControlPlane, ExecResult } from "./harness.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

/** Deno.test options for tests that share one control plane across the file. */
export const E2E_TEST_OPTS = { sanitizeOps: false, sanitizeResources: false, sanitizeExit: false };

/** Base64 of UTF-8 text (a caBundle). */
export const b64 = (text: string): string =>
  btoa(String.fromCharCode(...new TextEncoder().encode(text)));

/** Whether the stored pod carries the agent container `name` (native or classic). */
export const hasAgent = (pod: Obj, name = "fluentd"): boolean =>
  [...(pod.spec.initContainers ?? []), ...pod.spec.containers].some((c: Obj) => c.name === name);

/** The kubelet's status of the agent container `name`: an init container (native) or a regular one. */
export const agentStatus = (pod: Obj, name = "fluentd"): Obj =>
  [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]
    .find((c: Obj) => c.name === name);

/** The stored pod `ns/name`. */
export async function getPod(cp: ControlPlane, ns: string, name: string): Promise<Obj> {
  return await cp.kubectlJson(["get", "pod", "-n", ns, name, "-o", "json"]);
}

let seq = 0;
/** A new namespace `<prefix>-<unique>` with `labels`, returned once its default ServiceAccount exists. */
export async function newNamespace(
  cp: ControlPlane,
  prefix: string,
  labels: Record<string, string> = {},
): Promise<string> {
  const ns = `${prefix}-${Date.now().toString(36)}-${seq++}`;
  const r = await cp.kubectl(["apply", "-f", "-"], {
    stdin: JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels } }),
  });
  if (r.code !== 0) throw new Error(`kubectl apply namespace ${ns}: ${r.stderr}`);
  await cp.waitFor(
    `default ServiceAccount in ${ns}`,
    async () => (await cp.kubectl(["get", "sa", "default", "-n", ns])).code === 0,
  );
  return ns;
}

/** `kubectl create` of `obj` in `ns`; the result, for the caller to check. */
export async function createPod(
  cp: ControlPlane,
  obj: Obj,
  ns: string,
): Promise<ExecResult> {
  return await cp.kubectl(["create", "-n", ns, "-f", "-", "-o", "name"], {
    stdin: JSON.stringify(obj),
  });
}

/** Retries a server-side dry-run create of `probe` in `ns` until the stored pod would carry the agent. */
export async function waitForInjection(
  cp: ControlPlane,
  ns: string,
  probe: Obj,
  what = "webhook injection via dry-run",
): Promise<void> {
  await cp.waitFor(
    what,
    async () => {
      const r = await cp.kubectl(
        ["create", "--dry-run=server", "-o", "json", "-n", ns, "-f", "-"],
        {
          stdin: JSON.stringify(probe),
        },
      );
      if (r.code !== 0) throw new Error(r.stderr.trim());
      return hasAgent(JSON.parse(r.stdout));
    },
    30_000,
    200,
  );
}
