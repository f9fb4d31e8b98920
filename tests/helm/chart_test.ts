/**
 * The Helm chart on its own: `helm lint --strict`, `helm template` against golden files for the
 * default and representative values, what each TLS mode renders, and values.schema.json refusing
 * wrong values with a message that names them. Helm is the real one (tests/helm/build.sh).
 *
 *   deno test -P tests/helm/chart_test.ts        UPDATE_GOLDEN=1 rewrites tests/helm/testdata/
 * @module
 */
import assert from "node:assert/strict";
import { dump } from "js-yaml";
import { parseConfig } from "../../lib/config/mod.ts";
import { exec } from "../../testing/process.ts";
import { CHART, helm, type K8sObject, key, renderChart, templateChart } from "./helm.ts";

const GOLDEN = new URL("./testdata/", import.meta.url).pathname;
const PEM = Deno.readTextFileSync(new URL("./testdata/ca.pem", import.meta.url));

const find = (objs: K8sObject[], kind: string, name?: string): K8sObject | undefined =>
  objs.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
const must = (objs: K8sObject[], kind: string, name?: string): K8sObject => {
  const o = find(objs, kind, name);
  assert.ok(o, `no ${kind} ${name ?? ""} in: ${objs.map(key).join(", ")}`);
  return o;
};
const b64decode = (s: string): string =>
  new TextDecoder().decode(
    Uint8Array.from(atob(s), (c) => c.charCodeAt(0)),
  );

/** Generated key material differs on every render: the goldens hold a placeholder. */
function normalize(objs: K8sObject[]): string {
  const copy: K8sObject[] = structuredClone(objs);
  for (const o of copy) {
    if (o.kind === "Secret" && o.data) {
      for (const k of Object.keys(o.data)) o.data[k] = "<generated>";
    }
    if (o.kind === "MutatingWebhookConfiguration") {
      for (const w of o.webhooks) {
        if (w.clientConfig.caBundle && !b64decode(w.clientConfig.caBundle).includes(PEM.trim())) {
          w.clientConfig.caBundle = "<generated>";
        }
      }
    }
  }
  return copy.map((o) => dump(o, { lineWidth: 100, noRefs: true })).join("---\n");
}

const CASES: Record<string, Record<string, unknown>> = {
  default: {},
  "cert-manager-cluster-issuer": {
    certManager: { enabled: true, issuerRef: { kind: "ClusterIssuer", name: "internal-ca" } },
    webhook: { failurePolicy: "Fail", timeoutSeconds: 10 },
    replicaCount: 3,
    podDisruptionBudget: { minAvailable: 2 },
    priorityClassName: "system-cluster-critical",
  },
  "cert-manager-own-issuer": { certManager: { enabled: true } },
  "existing-secret-audit-metrics": {
    tls: { existingSecret: "my-webhook-tls", caBundle: PEM },
    audit: { enabled: true, interval: "10m" },
    metrics: { port: 9090, serviceMonitor: { enabled: true, labels: { release: "prom" } } },
    image: {
      digest: `sha256:${"a".repeat(64)}`,
      pullSecrets: ["regcred"],
      pullPolicy: "Always",
    },
    logLevel: "debug",
    webhook: {
      matchConditions: false,
      namespaceSelector: { matchLabels: { "logs.example.com/ship": "true" } },
    },
    agentPresentPolicy: { validationActions: ["Deny"] },
    frozenAnnotationsPolicy: { enabled: false },
    topologySpreadConstraints: [{
      maxSkew: 1,
      topologyKey: "topology.kubernetes.io/zone",
      whenUnsatisfiable: "ScheduleAnyway",
      labelSelector: { matchLabels: { "app.kubernetes.io/name": "sidecar-injector" } },
    }],
    config: { defaultProfile: "fluent-bit", profiles: { "fluent-bit": { image: "fb:3.2" } } },
  },
};

Deno.test("helm lint --strict passes for the default and every golden case's values", async () => {
  for (const [name, values] of Object.entries(CASES)) {
    const file = await Deno.makeTempFile({ suffix: ".yaml" });
    await Deno.writeTextFile(file, JSON.stringify(values));
    const r = await helm(["lint", "--strict", CHART, "--values", file]);
    await Deno.remove(file);
    assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

for (const [name, values] of Object.entries(CASES)) {
  Deno.test(`helm template matches testdata/${name}.yaml`, async () => {
    const text = normalize(await renderChart(values));
    const path = `${GOLDEN}${name}.yaml`;
    if (Deno.env.get("UPDATE_GOLDEN") === "1") await Deno.writeTextFile(path, text);
    assert.equal(text, await Deno.readTextFile(path), `re-run with UPDATE_GOLDEN=1 if intended`);
  });
}

Deno.test("self-signed default: the Secret's CA is the caBundle and signs a cert for the Service", async () => {
  const objs = await renderChart({}, { namespace: "logs" });
  const secret = must(objs, "Secret", "sidecar-injector-certs");
  assert.equal(secret.type, "kubernetes.io/tls");
  const mwc = must(objs, "MutatingWebhookConfiguration");
  assert.equal(mwc.webhooks[0].clientConfig.caBundle, secret.data["ca.crt"]);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/ca.crt`, b64decode(secret.data["ca.crt"]));
    await Deno.writeTextFile(`${dir}/tls.crt`, b64decode(secret.data["tls.crt"]));
    const v = await exec("openssl", ["verify", "-CAfile", `${dir}/ca.crt`, `${dir}/tls.crt`]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const san = await exec("openssl", [
      "x509",
      "-in",
      `${dir}/tls.crt`,
      "-noout",
      "-ext",
      "subjectAltName",
    ]);
    assert.match(san.stdout, /DNS:sidecar-injector\.logs\.svc\b/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const dep = must(objs, "Deployment");
  assert.equal(dep.spec.template.spec.volumes[0].secret.secretName, "sidecar-injector-certs");
});

Deno.test("existingSecret: no Secret rendered, the Deployment mounts it, caBundle is the given CA", async () => {
  const objs = await renderChart({ tls: { existingSecret: "mine", caBundle: PEM } });
  assert.equal(find(objs, "Secret"), undefined);
  assert.equal(must(objs, "Deployment").spec.template.spec.volumes[0].secret.secretName, "mine");
  const mwc = must(objs, "MutatingWebhookConfiguration");
  assert.equal(b64decode(mwc.webhooks[0].clientConfig.caBundle), PEM);
});

Deno.test("certManager: the MWC's inject-ca-from names the Certificate whose Secret is mounted", async () => {
  for (const issuerRef of [{}, { kind: "ClusterIssuer", name: "corp-ca" }]) {
    const objs = await renderChart({ certManager: { enabled: true, issuerRef } });
    const mwc = must(objs, "MutatingWebhookConfiguration");
    assert.equal(mwc.webhooks[0].clientConfig.caBundle, undefined);
    const [ns, name] = mwc.metadata.annotations["cert-manager.io/inject-ca-from"].split("/");
    const cert = must(objs, "Certificate", name);
    assert.equal(cert.metadata.namespace, ns);
    const mounted = must(objs, "Deployment").spec.template.spec.volumes[0].secret.secretName;
    assert.equal(cert.spec.secretName, mounted);
    assert.ok(
      cert.spec.dnsNames.includes(`${mwc.webhooks[0].clientConfig.service.name}.${ns}.svc`),
    );
    assert.equal(find(objs, "Secret"), undefined, "cert-manager writes the Secret");
    if ("name" in issuerRef) {
      assert.deepEqual(cert.spec.issuerRef, { group: "cert-manager.io", ...issuerRef });
      assert.equal(find(objs, "Issuer"), undefined);
    } else {
      const issuer = must(objs, "Issuer", cert.spec.issuerRef.name);
      assert.ok(issuer.spec.ca, "the serving cert comes from a CA issuer, so renewals keep the CA");
    }
  }
});

Deno.test("another namespace and fullnameOverride: every reference follows", async () => {
  const objs = await renderChart({ fullnameOverride: "si" }, {
    namespace: "logging",
    release: "r1",
  });
  for (const o of objs) {
    if (
      !["MutatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding"].includes(o.kind) &&
      !o.kind.startsWith("ValidatingAdmissionPolicy")
    ) {
      assert.equal(o.metadata.namespace, "logging", key(o));
    }
    assert.match(o.metadata.name, /^si(-|$)/, key(o));
  }
  const hook = must(objs, "MutatingWebhookConfiguration", "si").webhooks[0];
  assert.deepEqual(hook.clientConfig.service, {
    name: "si",
    namespace: "logging",
    path: "/mutate",
    port: 443,
  });
  assert.ok(hook.namespaceSelector.matchExpressions[0].values.includes("logging"));
  const spec = must(objs, "Deployment").spec.template.spec;
  assert.equal(spec.serviceAccountName, "si");
  assert.equal(spec.volumes[1].configMap.name, "si-config");
  assert.equal(spec.volumes[0].secret.secretName, "si-certs");
});

Deno.test("audit.enabled: read-only RBAC for the ServiceAccount, the token, --audit-interval, its memory limit", async () => {
  const objs = await renderChart({ audit: { enabled: true, interval: "2m" } }, {
    namespace: "logging",
  });
  assert.deepEqual(must(objs, "ClusterRole").rules[1].resourceNames, ["sidecar-injector"]);
  assert.deepEqual(must(objs, "ClusterRoleBinding").subjects, [
    { kind: "ServiceAccount", name: "sidecar-injector", namespace: "logging" },
  ]);
  const spec = must(objs, "Deployment").spec.template.spec;
  assert.equal(spec.automountServiceAccountToken, true);
  assert.deepEqual(spec.containers[0].args.slice(-2), ["--audit-interval", "2m"]);
  // What the audit keeps in memory comes on top of the storm's peak: its own limit, requests kept.
  assert.deepEqual(spec.containers[0].resources, {
    requests: { cpu: "50m", memory: "128Mi" },
    limits: { memory: "320Mi" },
  });
  const raised = await renderChart({ audit: { enabled: true, memoryLimit: "1Gi" } });
  assert.equal(
    must(raised, "Deployment").spec.template.spec.containers[0].resources.limits.memory,
    "1Gi",
  );
  // The in-server audit looks its objects up by the k8s/ names: another name fails the install.
  const r = await templateChart({ audit: { enabled: true }, fullnameOverride: "si" });
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    /audit\.enabled: the in-server audit reads the objects named sidecar-injector/,
  );
});

Deno.test("the agent-present policy always has the webhook's selectors and matchConditions", async () => {
  for (
    const webhook of [{}, { matchConditions: false, objectSelector: { matchLabels: { a: "b" } } }]
  ) {
    const objs = await renderChart({ webhook });
    const hook = must(objs, "MutatingWebhookConfiguration").webhooks[0];
    const vap = must(objs, "ValidatingAdmissionPolicy", "sidecar-injector-agent-present").spec;
    assert.deepEqual(vap.matchConstraints.namespaceSelector, hook.namespaceSelector);
    assert.deepEqual(vap.matchConstraints.objectSelector, hook.objectSelector);
    assert.deepEqual(vap.matchConditions, hook.matchConditions);
  }
});

Deno.test("image: the tag defaults to the chart's appVersion; a digest pins it", async () => {
  const chart = await Deno.readTextFile(`${CHART}/Chart.yaml`);
  const appVersion = chart.match(/^appVersion: "?([^"\n]+)"?$/m)?.[1];
  const image = async (values: Record<string, unknown>) =>
    must(await renderChart({ image: values }), "Deployment").spec.template.spec.containers[0].image;
  assert.equal(await image({}), `ghcr.io/example/sidecar-injector:${appVersion}`);
  assert.equal(await image({ tag: "1.2.3", repository: "r/x" }), "r/x:1.2.3");
  const digest = `sha256:${"0".repeat(64)}`;
  assert.equal(await image({ digest }), `ghcr.io/example/sidecar-injector:${appVersion}@${digest}`);
});

Deno.test("config: the default values are a valid injector config, and values flow into it", async () => {
  const objs = await renderChart({ config: { onError: "deny", mode: "classic" } });
  const text = must(objs, "ConfigMap").data["config.yaml"];
  const config = parseConfig(text, "config.yaml");
  assert.equal(config.onError, "deny");
  assert.equal(config.mode, "classic");
  parseConfig(must(await renderChart(), "ConfigMap").data["config.yaml"], "default");
});

Deno.test("optional objects: audit RBAC, PDB, policies and the ServiceMonitor only when asked", async () => {
  const off = await renderChart({
    podDisruptionBudget: { enabled: false },
    agentPresentPolicy: { enabled: false },
    frozenAnnotationsPolicy: { enabled: false },
  });
  for (
    const kind of [
      "ClusterRole",
      "PodDisruptionBudget",
      "ValidatingAdmissionPolicy",
      "ServiceMonitor",
    ]
  ) {
    assert.equal(find(off, kind), undefined, kind);
  }
  assert.equal(must(off, "Deployment").spec.template.spec.automountServiceAccountToken, false);
  const sm = must(
    await renderChart({ metrics: { serviceMonitor: { enabled: true } } }),
    "ServiceMonitor",
  );
  assert.equal(sm.spec.endpoints[0].port, "https");
  assert.equal(sm.spec.endpoints[0].tlsConfig.ca.secret.key, "ca.crt");
});

/** Values that must fail `helm template` (hence `helm install`) and what the message must name. */
const BAD: [string, Record<string, unknown>, RegExp][] = [
  ["unknown top-level key", { replicas: 2 }, /additional properties 'replicas' not allowed/],
  ["failurePolicy", { webhook: { failurePolicy: "Sometimes" } }, /\/webhook\/failurePolicy/],
  ["timeoutSeconds above 30", { webhook: { timeoutSeconds: 31 } }, /\/webhook\/timeoutSeconds/],
  ["replicaCount 0", { replicaCount: 0 }, /\/replicaCount/],
  ["pullPolicy", { image: { pullPolicy: "Sometimes" } }, /\/image\/pullPolicy/],
  ["digest", { image: { digest: "latest" } }, /\/image\/digest/],
  ["logLevel", { logLevel: "verbose" }, /\/logLevel/],
  ["existingSecret without caBundle", { tls: { existingSecret: "x" } }, /\/tls/],
  [
    "issuer kind",
    { certManager: { issuerRef: { kind: "Vault" } } },
    /\/certManager\/issuerRef\/kind/,
  ],
  [
    "validationActions",
    { agentPresentPolicy: { validationActions: ["Log"] } },
    /validationActions/,
  ],
  ["audit interval", { audit: { interval: "often" } }, /\/audit\/interval/],
  ["metrics port on the TLS port", { metrics: { port: 8443 } }, /\/metrics\/port/],
  ["matchConditions as a list", { webhook: { matchConditions: [] } }, /\/webhook\/matchConditions/],
];

Deno.test("values.schema.json refuses wrong values with a message naming them", async () => {
  for (const [what, values, message] of BAD) {
    const r = await templateChart(values);
    assert.notEqual(r.code, 0, `${what}: accepted`);
    assert.match(r.stderr, message, `${what}: ${r.stderr}`);
  }
});
