import assert from "node:assert/strict";
import { load } from "js-yaml";
import { matches, parseSelector } from "../kube/mod.ts";
import { parseWebhook, sentToWebhook } from "./webhook.ts";

const shipped = (): Record<string, unknown> =>
  load(
    Deno.readTextFileSync(
      new URL("../../k8s/mutatingwebhookconfiguration.yaml", import.meta.url),
    ),
  ) as Record<string, unknown>;

const ns = (name: string, labels: Record<string, string> = {}) => ({
  "kubernetes.io/metadata.name": name,
  ...labels,
});

Deno.test("parseWebhook() reads the shipped registration: selectors and the Service", () => {
  const reg = parseWebhook(shipped());
  assert.equal(reg.name, "sidecar-injector");
  assert.equal(reg.hooks.length, 1);
  assert.deepEqual(reg.hooks[0]?.service, {
    namespace: "sidecar-injector",
    name: "sidecar-injector",
  });
  assert.equal(reg.hooks[0]?.caBundle, undefined, "caBundle comes from the generated patch");
  assert.equal(sentToWebhook(reg, ns("shop"), {}), true);
  assert.equal(sentToWebhook(reg, ns("shop"), { app: "web" }), true);
  for (const system of ["kube-system", "kube-public", "kube-node-lease", "sidecar-injector"]) {
    assert.equal(sentToWebhook(reg, ns(system), {}), false, system);
  }
  assert.equal(
    sentToWebhook(reg, ns("shop", { "sidecar-injector.io/inject": "disabled" }), {}),
    false,
  );
  assert.equal(sentToWebhook(reg, ns("shop"), { "sidecar-injector.io/inject": "false" }), false);
});

Deno.test("parseWebhook() keeps only webhooks called for pod creates and decodes caBundle", () => {
  const pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  const reg = parseWebhook({
    metadata: { name: "m", creationTimestamp: "2026-01-01T00:00:00Z" },
    webhooks: [
      {
        name: "deploys",
        rules: [{
          operations: ["CREATE"],
          apiGroups: ["apps"],
          apiVersions: ["v1"],
          resources: ["deployments"],
        }],
      },
      {
        name: "updates",
        rules: [{
          operations: ["UPDATE"],
          apiGroups: [""],
          apiVersions: ["v1"],
          resources: ["pods"],
        }],
      },
      {
        name: "all",
        rules: [{ operations: ["*"], apiGroups: ["*"], apiVersions: ["*"], resources: ["*"] }],
        clientConfig: { url: "https://x/mutate", caBundle: btoa(pem) },
      },
    ],
  });
  assert.deepEqual(reg.hooks.map((h) => h.name), ["all"]);
  assert.equal(reg.hooks[0]?.caBundle, pem);
  assert.equal(reg.hooks[0]?.service, undefined);
  assert.equal(reg.created, "2026-01-01T00:00:00Z");
  // No selector at all: every namespace and pod.
  assert.equal(sentToWebhook(reg, ns("kube-system"), {}), true);
  assert.throws(() => parseWebhook({ webhooks: [] }), /not a MutatingWebhookConfiguration/);
});

Deno.test("label selectors: matchLabels, In, Exists, DoesNotExist, bad operators", () => {
  const s = parseSelector({
    matchLabels: { tier: "web" },
    matchExpressions: [
      { key: "env", operator: "In", values: ["prod", "staging"] },
      { key: "team", operator: "Exists" },
      { key: "legacy", operator: "DoesNotExist" },
    ],
  }, "s");
  assert.equal(matches(s, { tier: "web", env: "prod", team: "a" }), true);
  assert.equal(matches(s, { tier: "web", env: "dev", team: "a" }), false);
  assert.equal(matches(s, { tier: "web", env: "prod" }), false);
  assert.equal(matches(s, { tier: "web", env: "prod", team: "a", legacy: "" }), false);
  assert.equal(matches(s, { tier: "db", env: "prod", team: "a" }), false);
  assert.equal(matches(parseSelector(undefined, "s"), {}), true);
  assert.throws(
    () => parseSelector({ matchExpressions: [{ key: "a", operator: "Gt", values: ["1"] }] }, "sel"),
    /sel\.matchExpressions\[0\]\.operator Gt is not supported/,
  );
});
