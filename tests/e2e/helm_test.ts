/**
 * The Helm chart on a REAL kube-apiserver (tests/e2e/control_plane/): `helm install`, `upgrade`
 * and `uninstall` with the real Helm (tests/helm/build.sh), the stored webhook configuration
 * compared with what `kubectl apply -k k8s/` would store, cert-manager's CRDs (from its Go module
 * source) accepting the chart's Certificates and Issuers, and cert-manager's CA injector
 * (tests/e2e/cert_manager/, built from Go modules) injecting the caBundle and following a renewal
 * while the real webhook server reloads the renewed certificate without a restart.
 *
 * There is no kubelet here: the Deployment's pods are created and stay Pending, which is as far as
 * the apiserver goes; their Pod Security is checked with a server-side dry run. cert-manager's
 * controller does not build from Go modules (its cmd/ modules are not on the proxy): where it
 * would issue the certificate, the test writes the Secret as it would (a stand-in, named so).
 *
 *   deno test -P tests/e2e/helm_test.ts
 * @module
 */
import assert from "node:assert/strict";
import {
  type ControlPlane,
  exec,
  REPO_ROOT,
  say,
  spawnLogged,
  startControlPlane,
  terminate,
} from "./control_plane/harness.ts";
import type { Proc } from "../../testing/process.ts";
import {
  fileSerial,
  genWebhookCerts,
  servedSerial,
  startWebhook,
  type Webhook,
} from "./control_plane/webhook.ts";
import { b64, E2E_TEST_OPTS } from "./control_plane/pods.ts";
import { collapseCel, diff } from "../helm/compare.ts";
import {
  CHART,
  helm,
  type K8sObject,
  parseObjects,
  renderKustomize,
  withCertManagerComponent,
} from "../helm/helm.ts";

const NS = "sidecar-injector";
const RELEASE = "sidecar-injector";
const opts = E2E_TEST_OPTS;

interface Env {
  cp: ControlPlane;
  /** What `kubectl apply -k k8s/` would store (server-side dry run before the install). */
  kustomizeStored: Map<string, K8sObject>;
}

let cpRef: ControlPlane | undefined;
let setupPromise: Promise<Env> | undefined;
const children: Proc[] = [];
let webhookRef: Webhook | undefined;

globalThis.addEventListener("unload", () => {
  webhookRef?.kill();
  for (const c of children) {
    try {
      Deno.kill(c.child.pid, "SIGKILL");
    } catch { /* gone */ }
  }
  cpRef?.killSync();
});

async function helmOk(env: Env, args: string[]): Promise<string> {
  const r = await helm([...args, "--kubeconfig", env.cp.kubeconfig], { timeoutMs: 180_000 });
  assert.equal(r.code, 0, `helm ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function kubectlOk(env: Env, args: string[], stdin?: string): Promise<string> {
  const r = await env.cp.kubectl(args, stdin === undefined ? {} : { stdin });
  assert.equal(r.code, 0, `kubectl ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

/** `kubectl get <kind> [name] [-n ns] -o json`, parsed. */
function getJson(env: Env, kind: string, name?: string, ns?: string): Promise<K8sObject> {
  return env.cp.kubectlJson([
    "get",
    kind,
    ...(name ? [name] : []),
    ...(ns ? ["-n", ns] : []),
    "-o",
    "json",
  ]);
}

function setup(): Promise<Env> {
  return setupPromise ??= (async () => {
    const cp = cpRef = await startControlPlane();
    // The cluster-scoped objects of `kubectl apply -k k8s/`, as the apiserver would store them.
    const kustomize = await renderKustomize();
    const kustomizeStored = new Map<string, K8sObject>();
    for (const o of kustomize.filter((o) => !o.metadata.namespace && o.kind !== "Namespace")) {
      const r = await cp.kubectl(["create", "--dry-run=server", "-o", "json", "-f", "-"], {
        stdin: JSON.stringify(o),
      });
      assert.equal(r.code, 0, `dry run of ${o.kind} ${o.metadata.name}: ${r.stderr}`);
      kustomizeStored.set(`${o.kind}/${o.metadata.name}`, JSON.parse(r.stdout));
    }
    return { cp, kustomizeStored };
  })();
}

Deno.test(
  "helm install: every object the chart renders is stored by the apiserver",
  opts,
  async () => {
    const env = await setup();
    const t0 = performance.now();
    await helmOk(env, ["install", RELEASE, CHART, "-n", NS, "--create-namespace"]);
    say(`e2e: helm install took ${Math.round(performance.now() - t0)} ms`);
    const manifest = parseObjects(await helmOk(env, ["get", "manifest", RELEASE, "-n", NS]));
    assert.ok(manifest.length >= 10, `only ${manifest.length} objects`);
    for (const o of manifest) {
      const ns = o.metadata.namespace ? ["-n", o.metadata.namespace] : [];
      const stored = JSON.parse(
        await kubectlOk(
          env,
          ["get", `${o.kind}.${o.apiVersion.split("/")[0]}`, o.metadata.name, ...ns, "-o", "json"]
            .map((a) => a.replace(/^(\w+)\.v1$/, "$1")),
        ),
      );
      assert.equal(stored.metadata.labels["app.kubernetes.io/managed-by"], "Helm");
    }
    const ns = await getJson(env, "namespace", NS);
    assert.equal(ns.metadata.name, NS);
  },
);

Deno.test(
  "the stored webhook configuration and policies equal what kubectl apply -k k8s/ stores",
  opts,
  async () => {
    const env = await setup();
    for (const [name, fromKustomize] of env.kustomizeStored) {
      const [kind, objName] = name.split("/") as [string, string];
      const stored = await getJson(
        env,
        kind === "MutatingWebhookConfiguration" ? "mutatingwebhookconfigurations" : kind,
        objName,
      );
      const strip = (o: K8sObject) => {
        const body = structuredClone(o.webhooks ?? o.spec);
        for (const w of o.webhooks ? body : []) delete w.clientConfig.caBundle;
        return body;
      };
      const problems = diff(collapseCel(strip(fromKustomize)), collapseCel(strip(stored)));
      assert.deepEqual(problems, [], `${name} differs from k8s/'s:\n  ${problems.join("\n  ")}`);
    }
    assert.ok(env.kustomizeStored.has("MutatingWebhookConfiguration/sidecar-injector"));
    const mwc = await getJson(env, "mutatingwebhookconfigurations", RELEASE);
    const secret = await getJson(env, "secret", "sidecar-injector-certs", NS);
    assert.equal(mwc.webhooks[0].clientConfig.caBundle, secret.data["ca.crt"]);
  },
);

Deno.test(
  "the Deployment's pods are created (Pending without a kubelet) and pass Pod Security restricted",
  opts,
  async () => {
    const env = await setup();
    const pods = await env.cp.waitFor("the Deployment's 2 pods", async () => {
      const list = await getJson(env, "pods", undefined, NS);
      return list.items.length === 2 ? list.items : undefined;
    }, 60_000);
    assert.equal(pods[0].spec.containers[0].name, "injector");
    // The webhook would never be asked about them anyway (their namespace is excluded), and a
    // restricted namespace admits the template as it is.
    await kubectlOk(env, ["create", "namespace", "psa-restricted"]);
    await kubectlOk(env, [
      "label",
      "namespace",
      "psa-restricted",
      "pod-security.kubernetes.io/enforce=restricted",
    ]);
    await kubectlOk(env, ["create", "serviceaccount", RELEASE, "-n", "psa-restricted"]);
    const dep = await getJson(env, "deployment", RELEASE, NS);
    const pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "template", namespace: "psa-restricted" },
      spec: dep.spec.template.spec,
    };
    const r = await env.cp.kubectl(["create", "--dry-run=server", "-f", "-"], {
      stdin: JSON.stringify(pod),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /would violate/);
  },
);

Deno.test(
  "helm upgrade changes settings and keeps the self-signed certificate and caBundle",
  opts,
  async () => {
    const env = await setup();
    const get = async () => ({
      secret: await getJson(env, "secret", "sidecar-injector-certs", NS),
      mwc: await getJson(env, "mutatingwebhookconfigurations", RELEASE),
    });
    const before = await get();
    await helmOk(env, ["upgrade", RELEASE, CHART, "-n", NS, "--set", "webhook.timeoutSeconds=10"]);
    const after = await get();
    assert.equal(after.mwc.webhooks[0].timeoutSeconds, 10);
    assert.equal(
      after.secret.data["tls.crt"],
      before.secret.data["tls.crt"],
      "the cert was regenerated",
    );
    assert.equal(
      after.mwc.webhooks[0].clientConfig.caBundle,
      before.mwc.webhooks[0].clientConfig.caBundle,
    );
    assert.equal(after.mwc.webhooks[0].clientConfig.caBundle, after.secret.data["ca.crt"]);
  },
);

async function crdsDir(): Promise<string> {
  const r = await exec("bash", [`${REPO_ROOT}/tests/e2e/cert_manager/crds.sh`], {
    timeoutMs: 600_000,
  });
  assert.equal(r.code, 0, `tests/e2e/cert_manager/crds.sh: ${r.stderr}`);
  return r.stdout.trim().split("\n").at(-1) as string;
}

Deno.test(
  "cert-manager's CRDs accept the chart's Certificates and Issuers (and refuse a bad one)",
  opts,
  async () => {
    const env = await setup();
    const dir = await crdsDir();
    await kubectlOk(env, ["apply", "--server-side", "-f", dir]);
    await kubectlOk(env, ["wait", "--for=condition=Established", "--timeout=60s", "crd", "--all"]);
    // The kustomize component's objects are accepted too (dry run: the chart's come next).
    const component = (await renderKustomize(withCertManagerComponent))
      .filter((o) => o.apiVersion === "cert-manager.io/v1");
    assert.equal(component.length, 4);
    for (const o of component) {
      const r = await env.cp.kubectl(["create", "--dry-run=server", "-f", "-"], {
        stdin: JSON.stringify(o),
      });
      assert.equal(
        r.code,
        0,
        `k8s/components/cert-manager ${o.kind} ${o.metadata.name}: ${r.stderr}`,
      );
    }
    await helmOk(env, ["upgrade", RELEASE, CHART, "-n", NS, "--set", "certManager.enabled=true"]);
    const certs = await getJson(env, "certificates.cert-manager.io", undefined, NS);
    assert.deepEqual(certs.items.map((c: K8sObject) => c.metadata.name).sort(), [
      "sidecar-injector-ca",
      "sidecar-injector-serving",
    ]);
    const issuers = await getJson(env, "issuers.cert-manager.io", undefined, NS);
    assert.equal(issuers.items.length, 2);
    const mwc = await getJson(env, "mutatingwebhookconfigurations", RELEASE);
    assert.equal(
      mwc.metadata.annotations["cert-manager.io/inject-ca-from"],
      `${NS}/sidecar-injector-serving`,
    );
    // The CRDs' schemas are enforced: these objects were validated, not merely stored.
    const bad = {
      apiVersion: "cert-manager.io/v1",
      kind: "Certificate",
      metadata: { name: "bad", namespace: NS },
      spec: { secretName: "x", issuerRef: { name: "y" }, privateKey: { algorithm: "DSA" } },
    };
    const r = await env.cp.kubectl(["create", "--dry-run=server", "-f", "-"], {
      stdin: JSON.stringify(bad),
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /privateKey\.algorithm/);
  },
);

async function cainjectorBin(): Promise<string> {
  const r = await exec("bash", [`${REPO_ROOT}/tests/e2e/cert_manager/build.sh`], {
    timeoutMs: 30 * 60_000,
  });
  assert.equal(r.code, 0, `tests/e2e/cert_manager/build.sh: ${r.stderr}`);
  return `${r.stdout.trim().split("\n").at(-1)}/cainjector`;
}

/** Writes the Secret as cert-manager's controller would after issuing (stand-in for it). */
async function issueStandIn(env: Env, dir: string): Promise<void> {
  const read = (f: string) => Deno.readTextFile(`${dir}/${f}`).then(b64);
  const secret = {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: {
      name: "sidecar-injector-certs",
      namespace: NS,
      annotations: {
        "cert-manager.io/certificate-name": "sidecar-injector-serving",
        "cert-manager.io/issuer-name": "sidecar-injector-ca",
        "cert-manager.io/issuer-kind": "Issuer",
      },
    },
    data: {
      "tls.crt": await read("tls.crt"),
      "tls.key": await read("tls.key"),
      "ca.crt": await read("ca.crt"),
    },
  };
  await kubectlOk(
    env,
    ["apply", "--server-side", "--force-conflicts", "-f", "-"],
    JSON.stringify(secret),
  );
  // As cert-manager's controller does after writing the Secret: the Certificate's status records
  // the new revision.
  revision += 1;
  await kubectlOk(env, [
    "patch",
    "certificates.cert-manager.io",
    "sidecar-injector-serving",
    "-n",
    NS,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status: { revision } }),
  ]);
}
let revision = 0;

const b64decode = (s: string): string =>
  new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));

Deno.test(
  "cert-manager's CA injector sets the caBundle and follows a renewal; the server reloads without a restart",
  opts,
  async () => {
    const env = await setup();
    const bin = await cainjectorBin();
    const log = `${env.cp.dir}/cainjector.log`;
    env.cp.addLog("cainjector", log);
    const proc = spawnLogged("cainjector", bin, [
      `--kubeconfig=${env.cp.kubeconfig}`,
    ], log);
    children.push(proc);
    try {
      // The files the server reads stand for the Secret volume (the kubelet writes them).
      const certs = await genWebhookCerts(`${env.cp.dir}/cm-certs`);
      await issueStandIn(env, certs.dir);
      const caBundle = async () =>
        (await getJson(env, "mutatingwebhookconfigurations", RELEASE))
          .webhooks[0].clientConfig.caBundle;
      let t0 = performance.now();
      await env.cp.waitFor(
        "the caBundle injected",
        async () => await caBundle() === b64(certs.caPem),
        60_000,
      );
      say(`e2e: cainjector injected the caBundle in ${Math.round(performance.now() - t0)} ms`);

      const logPath = `${env.cp.dir}/webhook-cm.log`;
      env.cp.addLog("webhook (cert-manager certs)", logPath);
      const webhook = webhookRef = await startWebhook({ certs, logPath });
      try {
        const first = await servedSerial(webhook.port, certs.caCrt);
        assert.equal(first, await fileSerial(certs.tlsCrt));
        // A renewal with a new CA (an issuer that rotated it): the Secret is rewritten, the injector
        // follows, the server serves the new certificate from the same process.
        const renewed = await genWebhookCerts(certs.dir, [], ["--rotate-ca"]);
        assert.notEqual(renewed.caPem, certs.caPem);
        t0 = performance.now();
        await issueStandIn(env, renewed.dir);
        // cert-manager v1.21 merges (CAInjectorMerging): the new CA joins the bundle and the old one
        // stays while still valid, so connections signed by either verify during the rollover.
        const pems = async () => b64decode(await caBundle());
        await env.cp.waitFor(
          "the renewed CA injected",
          async () => (await pems()).includes(renewed.caPem.trim()),
          60_000,
        );
        say(`e2e: cainjector followed the renewal in ${Math.round(performance.now() - t0)} ms`);
        assert.ok(
          (await pems()).includes(certs.caPem.trim()),
          "the old CA left the bundle at once",
        );
        const serial = await fileSerial(renewed.tlsCrt);
        await env.cp.waitFor(
          "the server serving the renewed certificate",
          async () => await servedSerial(webhook.port, renewed.caCrt).catch(() => "") === serial,
          30_000,
        );
        assert.ok(!webhook.proc.exited(), "the server restarted");
      } finally {
        await webhook.close();
        webhookRef = undefined;
      }
    } finally {
      await terminate(proc);
    }
  },
);

Deno.test(
  "uninstall: the webhook configuration first, then helm uninstall removes the rest",
  opts,
  async () => {
    const env = await setup();
    try {
      await kubectlOk(env, ["delete", "mutatingwebhookconfiguration", RELEASE]);
      await helmOk(env, ["uninstall", RELEASE, "-n", NS]);
      for (
        const [kind, ns] of [
          ["deployments", NS],
          ["services", NS],
          ["configmaps", NS],
          ["certificates.cert-manager.io", NS],
          ["validatingadmissionpolicies", ""],
        ]
      ) {
        const list = await env.cp.kubectlJson([
          "get",
          kind as string,
          ...(ns ? ["-n", ns] : []),
          "-l",
          "app.kubernetes.io/managed-by=Helm",
          "-o",
          "json",
        ]);
        assert.deepEqual(
          list.items.map((o: K8sObject) => o.metadata.name),
          [],
          `${kind} left behind`,
        );
      }
      const r = await env.cp.kubectl(["get", "mutatingwebhookconfigurations", RELEASE]);
      assert.notEqual(r.code, 0);
    } finally {
      await env.cp.stop();
      cpRef = undefined;
    }
  },
);
