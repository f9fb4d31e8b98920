/**
 * Helm and kustomize renderings of the install, for the chart tests: Helm comes from
 * `tests/helm/build.sh` (built from Go modules, cached outside the repo), kubectl from the e2e
 * control plane's `build.sh`.
 * @module
 */
import { loadAll } from "js-yaml";
import { ensureBinaries } from "../e2e/control_plane/harness.ts";
import { exec, type ExecResult, REPO_ROOT, say } from "../../testing/process.ts";

/** A Kubernetes object as rendered. */
// deno-lint-ignore no-explicit-any
export type K8sObject = Record<string, any>;

/** The chart's directory. */
export const CHART = `${REPO_ROOT}/charts/sidecar-injector`;

let helmPath: Promise<string> | undefined;

/** Runs `tests/helm/build.sh` once per process and returns the helm binary. */
export function ensureHelm(): Promise<string> {
  helmPath ??= (async () => {
    say("helm: ensuring tests/helm/build.sh (instant when cached; the first build takes ~5 min)");
    const r = await exec("bash", [`${REPO_ROOT}/tests/helm/build.sh`], { timeoutMs: 30 * 60_000 });
    if (r.code !== 0) throw new Error(`tests/helm/build.sh failed (${r.code}):\n${r.stderr}`);
    return `${r.stdout.trim().split("\n").at(-1)}/helm`;
  })();
  return helmPath;
}

/** Runs helm with a private HOME-less config (no repositories, no plugins). */
export async function helm(
  args: string[],
  opts: { stdin?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<ExecResult> {
  const bin = await ensureHelm();
  const tmp = `${REPO_ROOT}/.tmp/helm-home`;
  await Deno.mkdir(tmp, { recursive: true });
  return exec(bin, args, {
    ...opts,
    env: {
      HELM_CONFIG_HOME: `${tmp}/config`,
      HELM_CACHE_HOME: `${tmp}/cache`,
      HELM_DATA_HOME: `${tmp}/data`,
      ...opts.env,
    },
    timeoutMs: opts.timeoutMs ?? 120_000,
  });
}

/** Parses a multi-document YAML stream, dropping empty documents. */
export function parseObjects(yaml: string): K8sObject[] {
  return (loadAll(yaml) as unknown[]).filter((d): d is K8sObject =>
    typeof d === "object" && d !== null
  );
}

/** `helm template` of the chart with `values` (as a values file); throws with helm's message. */
export async function renderChart(
  values: Record<string, unknown> = {},
  opts: { release?: string; namespace?: string } = {},
): Promise<K8sObject[]> {
  const r = await templateChart(values, opts);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return parseObjects(r.stdout);
}

/** `helm template` of the chart, the raw result (for the schema rejections). */
export async function templateChart(
  values: Record<string, unknown> = {},
  opts: { release?: string; namespace?: string } = {},
): Promise<ExecResult> {
  const file = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(file, JSON.stringify(values));
    return await helm([
      "template",
      opts.release ?? "sidecar-injector",
      CHART,
      "--namespace",
      opts.namespace ?? "sidecar-injector",
      "--values",
      file,
    ]);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}

/** The kubectl of the e2e control plane's build. */
export async function kubectlBin(): Promise<string> {
  return `${await ensureBinaries()}/kubectl`;
}

/**
 * `kubectl kustomize` of a copy of k8s/ (generated/ made by k8s/gen-certs.sh in the copy);
 * `edit` may rewrite the copy's kustomization.yaml first (to turn on a component).
 */
export async function renderKustomize(
  edit: (kustomization: string) => string = (k) => k,
): Promise<K8sObject[]> {
  const kubectl = await kubectlBin();
  await Deno.mkdir(`${REPO_ROOT}/.tmp`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${REPO_ROOT}/.tmp`, prefix: "kustomize-" });
  try {
    const cp = await exec("cp", ["-r", `${REPO_ROOT}/k8s`, `${dir}/k8s`]);
    if (cp.code !== 0) throw new Error(`cp k8s/ failed: ${cp.stderr}`);
    await Deno.remove(`${dir}/k8s/generated`, { recursive: true }).catch(() => {});
    const gen = await exec("bash", [`${dir}/k8s/gen-certs.sh`, "--out", `${dir}/k8s/generated`]);
    if (gen.code !== 0) throw new Error(`gen-certs.sh failed: ${gen.stderr}`);
    const path = `${dir}/k8s/kustomization.yaml`;
    await Deno.writeTextFile(path, edit(await Deno.readTextFile(path)));
    const r = await exec(kubectl, ["kustomize", `${dir}/k8s`]);
    if (r.code !== 0) throw new Error(`kubectl kustomize failed (${r.code}): ${r.stderr}`);
    return parseObjects(r.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Turns k8s/kustomization.yaml into the cert-manager variant its component's comment describes. */
export function withCertManagerComponent(kustomization: string): string {
  const noSecret = kustomization.replace(/^ {2}- generated\/secret\.yaml\n/m, "");
  const start = noSecret.indexOf("patches:");
  if (start < 0 || noSecret.length === kustomization.length) {
    throw new Error("k8s/kustomization.yaml no longer has generated/secret.yaml and patches:");
  }
  const end = noSecret.indexOf("\n# components", start);
  return noSecret.slice(0, start) + "components:\n  - components/cert-manager" +
    (end < 0 ? "\n" : noSecret.slice(end));
}

/** `Kind/namespace/name` of an object. */
export const key = (o: K8sObject): string =>
  `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
