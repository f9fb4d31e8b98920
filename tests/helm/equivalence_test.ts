/**
 * The Helm chart and `kubectl apply -k k8s/` cannot drift: both are rendered with default settings
 * and every object compared field by field. A failure names the object and the exact field, e.g.
 * `Deployment/sidecar-injector/sidecar-injector: spec.template.spec.containers[0].resources.limits.memory:
 * kustomize "256Mi", helm "320Mi"` — change charts/sidecar-injector/ (values.yaml or templates) to match.
 *
 * What legitimately differs is normalised first: Helm's extra labels (helm.sh/chart, instance...),
 * the Namespace (Helm's `--create-namespace`), the generated key material, comments in the config.
 * @module
 */
import assert from "node:assert/strict";
import { load } from "js-yaml";
import { collapseCel, diff } from "./compare.ts";
import {
  type K8sObject,
  key,
  renderChart,
  renderKustomize,
  withCertManagerComponent,
} from "./helm.ts";

/** Makes a chart object comparable with its kustomize twin (see the module doc). */
function comparable(o: K8sObject, labelsKept: string[]): K8sObject {
  const c: K8sObject = structuredClone(o);
  const keep = (labels: Record<string, string> | undefined) =>
    labels &&
    Object.fromEntries(Object.entries(labels).filter(([k]) => labelsKept.includes(k)));
  c.metadata.labels = keep(c.metadata.labels);
  if (c.kind === "Deployment") {
    c.spec.template.metadata.labels = keep(c.spec.template.metadata.labels);
  }
  if (c.kind === "Secret") c.data = Object.keys(c.data ?? {}).sort();
  if (c.kind === "ConfigMap") {
    c.data = Object.fromEntries(
      Object.entries(c.data as Record<string, string>).map(([k, v]) => [k, load(v)]),
    );
  }
  if (c.kind === "MutatingWebhookConfiguration") {
    for (const w of c.webhooks) delete w.clientConfig.caBundle;
  }
  return collapseCel(c) as K8sObject;
}

/** Compares two renderings; returns one line per difference. */
function compare(kustomize: K8sObject[], chart: K8sObject[]): string[] {
  const problems: string[] = [];
  const byKey = new Map(chart.map((o) => [key(o), o]));
  for (const k of kustomize) {
    // Helm's way: `helm install --namespace X --create-namespace`, the chart makes no Namespace.
    if (k.kind === "Namespace") continue;
    const h = byKey.get(key(k));
    byKey.delete(key(k));
    if (!h) {
      problems.push(`${key(k)}: rendered by kustomize, missing from the chart`);
      continue;
    }
    const labelsKept = [
      ...Object.keys(k.metadata.labels ?? {}),
      ...Object.keys(k.spec?.template?.metadata?.labels ?? {}),
    ];
    const base = comparable(k, labelsKept);
    for (const d of diff(base, comparable(h, labelsKept))) problems.push(`${key(k)}: ${d}`);
  }
  for (const extra of byKey.keys()) problems.push(`${extra}: rendered by the chart only`);
  return problems;
}

Deno.test("helm template (defaults) and kubectl kustomize k8s/ render the same objects", async () => {
  const [kustomize, chart] = await Promise.all([renderKustomize(), renderChart()]);
  const problems = compare(kustomize, chart);
  assert.deepEqual(problems, [], `the chart drifted from k8s/:\n  ${problems.join("\n  ")}`);
  // The comparison covers what matters most; make sure those objects were really compared.
  const kinds = new Set(kustomize.map((o) => o.kind));
  for (
    const kind of [
      "Deployment",
      "MutatingWebhookConfiguration",
      "Service",
      "PodDisruptionBudget",
      "ValidatingAdmissionPolicy",
      "ValidatingAdmissionPolicyBinding",
    ]
  ) assert.ok(kinds.has(kind), `kustomize rendered no ${kind}`);
});

Deno.test("with the audit on: k8s/components/audit and audit.enabled render the same", async () => {
  const [kustomize, chart] = await Promise.all([
    renderKustomize((k) =>
      k.replace("# components:\n#   - components/audit", "components:\n  - components/audit")
    ),
    renderChart({ audit: { enabled: true } }),
  ]);
  assert.ok(kustomize.some((o) => o.kind === "ClusterRole"), "the audit component was not enabled");
  const problems = compare(kustomize, chart);
  assert.deepEqual(
    problems,
    [],
    `the chart drifted from k8s/ + components/audit:\n  ${problems.join("\n  ")}`,
  );
});

Deno.test("with cert-manager: k8s/components/cert-manager and certManager.enabled render the same", async () => {
  const [kustomize, chart] = await Promise.all([
    renderKustomize(withCertManagerComponent),
    renderChart({ certManager: { enabled: true } }),
  ]);
  assert.ok(kustomize.some((o) => o.kind === "Certificate"), "the component was not enabled");
  assert.ok(!kustomize.some((o) => o.kind === "Secret"), "cert-manager owns the Secret");
  const problems = compare(kustomize, chart);
  assert.deepEqual(
    problems,
    [],
    `the chart drifted from k8s/ + components/cert-manager:\n  ${problems.join("\n  ")}`,
  );
});

Deno.test("diff names the exact field that differs", () => {
  assert.deepEqual(
    diff({ spec: { limits: { memory: "256Mi" }, l: [1, 2] } }, {
      spec: { limits: { memory: "320Mi" }, l: [1] },
    }),
    [
      'spec.limits.memory: kustomize "256Mi", helm "320Mi"',
      "spec.l[1]: kustomize 2, helm (absent)",
    ],
  );
});

Deno.test("a drift in k8s/ is reported as the one field that differs", async () => {
  // What issue-style changes to k8s/ look like: a lower memory limit patched in.
  const lowered = (k: string) =>
    k + `
  - target: {kind: Deployment, name: sidecar-injector}
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/resources/limits/memory
        value: 200Mi
`;
  const [kustomize, chart] = await Promise.all([renderKustomize(lowered), renderChart()]);
  assert.deepEqual(compare(kustomize, chart), [
    'Deployment/sidecar-injector/sidecar-injector: spec.template.spec.containers[0].resources.limits.memory: kustomize "200Mi", helm "256Mi"',
  ]);
});
