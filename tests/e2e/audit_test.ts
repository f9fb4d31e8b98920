/**
 * End-to-end: pods that escape the injector, found on a REAL control plane
 * (kube-apiserver v1.37 + etcd + kube-controller-manager) by the shipped
 * ValidatingAdmissionPolicy, by `main.ts audit` and by the server's own
 * periodic audit; drift after a config change; pods whose agent cannot run
 * (blocked), with their status written through pods/status as a kubelet
 * would; the policy that freezes the injected annotations; a caBundle that
 * does not match; the certificate expiry gauge and warning. The webhook is registered from
 * k8s/mutatingwebhookconfiguration.yaml (failurePolicy Ignore, as shipped)
 * with its URL and caBundle replaced; the server audits with the token of the
 * ServiceAccount bound by k8s/components/audit/rbac.yaml, nothing more.
 *
 *   deno test --frozen -P tests/e2e/audit_test.ts
 * @module
 */
import assert from "node:assert/strict";
import { load } from "js-yaml";
import {
  type ControlPlane,
  exec,
  freePort,
  REPO_ROOT,
  say,
  startControlPlane,
} from "./control_plane/harness.ts";
import {
  genWebhookCerts,
  startWebhook,
  type Webhook,
  type WebhookCerts,
} from "./control_plane/webhook.ts";
import { b64, createPod, E2E_TEST_OPTS, waitForInjection } from "./control_plane/pods.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const NS = "audit-apps";
const INJECTOR_NS = "sidecar-injector";
const MWC = "sidecar-injector";
const OLD_IMAGE = "fluent/fluentd:v1.17-1";
const NEW_IMAGE = "fluent/fluentd:v1.18-1";
const ESCAPED = ["esc-1", "esc-2", "esc-3"];
const VAP_WARNING =
  "Validation failed for ValidatingAdmissionPolicy 'sidecar-injector-agent-present'";
const opts = E2E_TEST_OPTS;
const STATUS = "sidecar-injector.io/status";
const AGENT_CONFIG = "sidecar-injector.io/agent-config";
const AGENT_FILES = "sidecar-injector.io/agent-files";

interface Env {
  cp: ControlPlane;
  certs: WebhookCerts;
  webhook: Webhook;
  starts: number;
  configFile: string;
  /** Authenticates as the injector's ServiceAccount (token file). */
  saKubeconfig: string;
  /** Authenticates as admin through an exec credential plugin. */
  execKubeconfig: string;
}

let cpRef: ControlPlane | undefined;
const webhooks: Webhook[] = [];
let setupPromise: Promise<Env> | undefined;

globalThis.addEventListener("unload", () => {
  for (const w of webhooks) w.kill();
  cpRef?.killSync();
});

const configText = (image: string) => `profiles:\n  fluentd:\n    image: ${image}\n`;

async function kubectlOk(cp: ControlPlane, args: string[], stdin?: string): Promise<string> {
  const r = await cp.kubectl(args, stdin === undefined ? {} : { stdin });
  assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** Creates or replaces the ConfigMap the audit CLI reads the injector's config from. */
async function applyConfigMap(cp: ControlPlane, configFile: string): Promise<void> {
  const yaml = await kubectlOk(cp, [
    "create",
    "configmap",
    "sidecar-injector-config",
    "-n",
    INJECTOR_NS,
    `--from-file=config.yaml=${configFile}`,
    "--dry-run=client",
    "-o",
    "yaml",
  ]);
  await kubectlOk(cp, ["apply", "-f", "-"], yaml);
}

function kubeconfig(cp: ControlPlane, user: Obj): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: "e2e",
      cluster: { server: cp.server, "certificate-authority": `${cp.dir}/ca.crt` },
    }],
    users: [{ name: "u", user }],
    contexts: [{ name: "c", context: { cluster: "e2e", user: "u", namespace: "default" } }],
    "current-context": "c",
  });
}

async function launch(env: Omit<Env, "webhook" | "starts">, n: number): Promise<Webhook> {
  const logPath = `${env.cp.dir}/audit-webhook-${n}.log`;
  env.cp.addLog(`webhook #${n}`, logPath);
  const wh = await startWebhook({
    certs: env.certs,
    logPath,
    configFile: env.configFile,
    extraArgs: ["--audit-interval", "1s", "--kubeconfig", env.saKubeconfig],
  });
  webhooks.push(wh);
  return wh;
}

/** The shipped registration, pointed at the local server. */
function registration(port: number, caPem: string): Obj {
  const mwc: Obj = load(
    Deno.readTextFileSync(`${REPO_ROOT}/k8s/mutatingwebhookconfiguration.yaml`),
  );
  mwc.webhooks[0].clientConfig = { url: `https://127.0.0.1:${port}/mutate`, caBundle: b64(caPem) };
  assert.equal(mwc.webhooks[0].failurePolicy, "Ignore", "the shipped failurePolicy");
  assert.equal(mwc.metadata.name, MWC, "the name the server's audit reads");
  return mwc;
}

/** Registers (or re-points) the webhook at the current server, with `caPem` as its caBundle. */
async function register(env: Env, caPem = env.certs.caPem): Promise<void> {
  await kubectlOk(
    env.cp,
    ["apply", "-f", "-"],
    JSON.stringify(registration(env.webhook.port, caPem)),
  );
}

const pod = (name: string, annotations: Record<string, string> = {}): Obj => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, annotations },
  spec: { containers: [{ name: "app", image: "nginx" }] },
});

function setup(): Promise<Env> {
  return setupPromise ??= (async () => {
    const cp = cpRef = await startControlPlane();
    const certs = await genWebhookCerts(`${cp.dir}/webhook-certs`);
    for (
      const f of [
        "namespace.yaml",
        "serviceaccount.yaml",
        "components/audit/rbac.yaml",
        "validatingadmissionpolicy.yaml",
        "annotations-policy.yaml",
      ]
    ) {
      await kubectlOk(cp, ["apply", "-f", `${REPO_ROOT}/k8s/${f}`]);
    }
    await kubectlOk(cp, ["create", "namespace", NS]);
    await kubectlOk(cp, [
      "create",
      "secret",
      "generic",
      "sidecar-injector-certs",
      "--type=kubernetes.io/tls",
      "-n",
      INJECTOR_NS,
      `--from-file=tls.crt=${certs.tlsCrt}`,
      `--from-file=tls.key=${certs.tlsKey}`,
      `--from-file=ca.crt=${certs.caCrt}`,
    ]);
    const configFile = `${cp.dir}/injector-config.yaml`;
    await Deno.writeTextFile(configFile, configText(OLD_IMAGE));
    await applyConfigMap(cp, configFile);

    const token = (await kubectlOk(cp, [
      "create",
      "token",
      "sidecar-injector",
      "-n",
      INJECTOR_NS,
      "--duration=2h",
    ])).trim();
    await Deno.writeTextFile(`${cp.dir}/sa.token`, token);
    const saKubeconfig = `${cp.dir}/sa.kubeconfig`;
    // A relative tokenFile: resolved against the kubeconfig's directory, as kubectl does.
    await Deno.writeTextFile(saKubeconfig, kubeconfig(cp, { tokenFile: "sa.token" }));
    const credential = `${cp.dir}/exec-credential.json`;
    await Deno.writeTextFile(
      credential,
      JSON.stringify({
        apiVersion: "client.authentication.k8s.io/v1",
        kind: "ExecCredential",
        status: {
          clientCertificateData: await Deno.readTextFile(`${cp.dir}/admin.crt`),
          clientKeyData: await Deno.readTextFile(`${cp.dir}/admin.key`),
        },
      }),
    );
    const execKubeconfig = `${cp.dir}/exec.kubeconfig`;
    await Deno.writeTextFile(
      execKubeconfig,
      kubeconfig(cp, {
        exec: { apiVersion: "client.authentication.k8s.io/v1", command: "cat", args: [credential] },
      }),
    );

    const base = { cp, certs, configFile, saKubeconfig, execKubeconfig };
    const webhook = await launch(base, 1);
    const env: Env = { ...base, webhook, starts: 1 };
    await register(env);
    await cp.waitFor(
      `ServiceAccount ${NS}/default`,
      async () => (await cp.kubectl(["get", "serviceaccount", "default", "-n", NS])).code === 0,
    );
    await waitForInjection(env.cp, NS, pod("probe"));
    return env;
  })();
}

interface AuditRun {
  code: number;
  stdout: string;
  stderr: string;
  json: Obj;
}

/** `main.ts audit` as `deno task audit` runs it (the `audit` permission set), `-o json`. */
async function audit(
  env: Env,
  args: string[],
  kubeconfigFile = `${env.cp.dir}/kubeconfig`,
): Promise<AuditRun> {
  const r = await exec(Deno.execPath(), [
    "run",
    "--frozen",
    "-P=audit",
    "main.ts",
    "audit",
    "--kubeconfig",
    kubeconfigFile,
    ...args,
  ], { cwd: REPO_ROOT, timeoutMs: 60_000, env: { NO_COLOR: "1" } });
  let json: Obj = undefined;
  if (args.includes("json")) {
    try {
      json = JSON.parse(r.stdout);
    } catch {
      assert.fail(`audit -o json printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
    }
  }
  return { ...r, json };
}

const listed = (run: AuditRun, problem: string) =>
  run.json.findings.filter((f: Obj) => f.problem === problem).map((f: Obj) =>
    `${f.namespace}/${f.pod}`
  ).sort();

async function metrics(env: Env): Promise<string> {
  const client = Deno.createHttpClient({ caCerts: [env.certs.caPem] });
  try {
    const res = await fetch(`https://127.0.0.1:${env.webhook.port}/metrics`, { client });
    return await res.text();
  } finally {
    client.close();
  }
}

function gauge(text: string, name: string, ns: string): number | undefined {
  const m = new RegExp(`^${name}\\{namespace="${ns}"\\} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

async function waitForGauge(env: Env, name: string, value: number): Promise<void> {
  let last: number | undefined;
  await env.cp.waitFor(
    `${name}{namespace="${NS}"} == ${value}`,
    async () => {
      last = gauge(await metrics(env), name, NS);
      return last === value;
    },
    30_000,
    250,
  ).catch((err) => {
    throw new Error(`${err.message}; last value ${last}`);
  });
}

const serverLines = (env: Env, msg: string): Obj[] =>
  env.webhook.logText().split("\n").flatMap((l) => {
    try {
      const j = JSON.parse(l);
      return j.msg === msg ? [j] : [];
    } catch {
      return [];
    }
  });

Deno.test(
  "e2e audit: webhook up, injected pods are fine; exit 0; certificate verified, days to expiry",
  opts,
  async () => {
    const env = await setup();
    const r = await createPod(env.cp, pod("up-1"), NS);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stderr.includes(VAP_WARNING), `an injected pod trips no policy: ${r.stderr}`);
    const table = await audit(env, ["-A"]);
    assert.equal(table.code, 0, table.stdout + table.stderr);
    assert.match(table.stdout, /pods audited: 0 without the agent, 0 drifted, 0 blocked/);
    assert.match(
      table.stdout,
      /certificate \(sidecar-injector\/sidecar-injector-certs\): ok: sidecar-injector\.sidecar-injector\.io: caBundle verifies the serving certificate; expires \S+ \((364|365) days\)/,
    );
    const json = await audit(env, ["-A", "-o", "json"]);
    assert.equal(json.code, 0);
    assert.equal(json.json.certificate.status, "ok");
    const end =
      (await exec("openssl", ["x509", "-noout", "-enddate", "-in", env.certs.tlsCrt])).stdout;
    const notAfter = new Date(end.trim().replace("notAfter=", ""));
    assert.equal(json.json.certificate.notAfter, notAfter.toISOString());

    // The server: expiry gauge from its own certificate; audits succeed with the RBAC of components/audit.
    await env.cp.waitFor(
      "a successful in-server audit",
      async () =>
        /^sidecar_injector_audit_runs_total\{result="ok"\} [1-9]/m.test(await metrics(env)),
    );
    const text = await metrics(env);
    assert.match(
      text,
      new RegExp(
        `^sidecar_injector_cert_expiry_timestamp_seconds ${notAfter.getTime() / 1000}$`,
        "m",
      ),
    );
    assert.doesNotMatch(
      text,
      /audit_runs_total\{result="error"\}/,
      "the ServiceAccount may read all it needs",
    );
    assert.equal(gauge(text, "sidecar_injector_escaped_pods", NS), undefined, "nothing found yet");
  },
);

/** Writes `status` through the pods/status subresource, as the kubelet does. */
async function writeStatus(cp: ControlPlane, name: string, status: Obj): Promise<void> {
  await kubectlOk(cp, [
    "patch",
    "pod",
    name,
    "-n",
    NS,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status }),
  ]);
}

/** A pod's status as the kubelet writes it while the native agent `fluentd` is in `agent`. */
function nativeStatus(agent: Obj, restartCount = 0, started = false): Obj {
  return {
    phase: "Pending",
    initContainerStatuses: [{
      name: "fluentd",
      image: OLD_IMAGE,
      imageID: "",
      ready: started,
      started,
      restartCount,
      state: agent,
    }],
    containerStatuses: [{
      name: "app",
      image: "nginx",
      imageID: "",
      ready: false,
      restartCount: 0,
      state: { waiting: { reason: "PodInitializing" } },
    }],
  };
}

/** Deletes pods of NS at once (they are bound to no node, so nothing waits for a kubelet). */
async function deletePods(cp: ControlPlane, names: string[]): Promise<void> {
  await kubectlOk(cp, ["delete", "pod", "-n", NS, "--grace-period=0", "--force", ...names]);
}

Deno.test(
  "e2e audit: an agent that cannot pull its image is blocked (CLI, gauge, warn line) until it runs",
  opts,
  async () => {
    const env = await setup();
    const r = await createPod(env.cp, pod("blocked-1"), NS);
    assert.equal(r.code, 0, r.stderr);
    const message = `Back-off pulling image "${OLD_IMAGE}": not found`;
    await writeStatus(
      env.cp,
      "blocked-1",
      nativeStatus({ waiting: { reason: "ImagePullBackOff", message } }),
    );
    const run = await audit(env, ["-A", "-o", "json"]);
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(listed(run, "blocked"), [`${NS}/blocked-1`]);
    assert.deepEqual([...listed(run, "escaped"), ...listed(run, "drifted")], []);
    assert.equal(run.json.blocked, 1);
    assert.equal(
      run.json.findings[0].reason,
      `agent container fluentd waiting: ImagePullBackOff: ${message}; the app containers cannot ` +
        "start until it runs",
    );
    const table = await audit(env, ["-A"]);
    assert.match(table.stdout, new RegExp(`^${NS} +blocked-1 +blocked +- +agent container`, "m"));
    assert.match(table.stdout, /pods audited: 0 without the agent, 0 drifted, 1 blocked/);

    // The server's periodic audit: a gauge and one warn line.
    await waitForGauge(env, "sidecar_injector_blocked_pods", 1);
    await env.cp.waitFor(
      "the warn line",
      () => Promise.resolve(serverLines(env, "pod whose log agent cannot run").length > 0),
    );
    const [warn] = serverLines(env, "pod whose log agent cannot run");
    assert.equal(warn.pod, "blocked-1");
    assert.match(warn.reason, /ImagePullBackOff/);

    // The image arrives, the agent runs: nothing to report.
    await writeStatus(
      env.cp,
      "blocked-1",
      nativeStatus({ running: { startedAt: new Date().toISOString() } }, 0, true),
    );
    const fine = await audit(env, ["-A", "-o", "json"]);
    assert.equal(fine.code, 0, JSON.stringify(fine.json.findings));
    await waitForGauge(env, "sidecar_injector_blocked_pods", 0);

    // An agent that keeps crashing: CrashLoopBackOff, then running again after 6 restarts.
    await writeStatus(
      env.cp,
      "blocked-1",
      nativeStatus({ waiting: { reason: "CrashLoopBackOff", message: "back-off 2m40s" } }, 6),
    );
    const crash = await audit(env, ["-A", "-o", "json"]);
    assert.match(
      crash.json.findings[0]?.reason ?? "",
      /waiting: CrashLoopBackOff: back-off 2m40s \(restarted 6 times\)/,
    );
    await deletePods(env.cp, ["blocked-1"]);
    await waitForGauge(env, "sidecar_injector_blocked_pods", 0);
  },
);

Deno.test(
  "e2e audit: the injected annotations cannot be changed or removed; other pod updates pass",
  opts,
  async () => {
    const env = await setup();
    const r = await createPod(env.cp, pod("frozen-1", { "example.com/team": "a" }), NS);
    assert.equal(r.code, 0, r.stderr);
    const stored = await env.cp.kubectlJson(["get", "pod", "frozen-1", "-n", NS, "-o", "json"]);
    const before = stored.metadata.annotations;
    assert.ok(
      before[STATUS] && before[AGENT_CONFIG] && before[AGENT_FILES],
      "injected: the three annotations are there",
    );
    const annotate = (args: string[]) =>
      env.cp.kubectl(["annotate", "pod", "frozen-1", "-n", NS, ...args]);
    // The binding is compiled asynchronously: a server-side dry run shows when it refuses.
    await env.cp.waitFor(
      "the frozen-annotations policy",
      async () => (await annotate(["--dry-run=server", "--overwrite", `${STATUS}=x`])).code !== 0,
    );
    const refusals: Array<[string, string[]]> = [
      [STATUS, ["--overwrite", `${STATUS}={"version":1}`]],
      [STATUS, [`${STATUS}-`]],
      [AGENT_CONFIG, ["--overwrite", `${AGENT_CONFIG}=<match **>\n@type null\n</match>`]],
      [AGENT_CONFIG, [`${AGENT_CONFIG}-`]],
      [AGENT_FILES, ["--overwrite", `${AGENT_FILES}=puts 1`]],
      [AGENT_FILES, [`${AGENT_FILES}-`]],
    ];
    for (const [key, args] of refusals) {
      const refused = await annotate(args);
      assert.notEqual(refused.code, 0, `kubectl annotate ${args.join(" ")} must be refused`);
      assert.match(
        refused.stderr,
        new RegExp(
          `ValidatingAdmissionPolicy 'sidecar-injector-frozen-annotations' .*denied request: ` +
            `sidecar-injector: the annotation ${key.replaceAll(".", "\\.")} of pod frozen-1 is ` +
            "set by the injector when the pod is created and cannot be added, changed or removed",
        ),
      );
    }
    // A whole-object update (kubectl edit, a controller's PUT) that drops them: refused too.
    const put = structuredClone(stored);
    delete put.metadata.annotations[AGENT_CONFIG];
    const replaced = await env.cp.kubectl(["replace", "-f", "-"], { stdin: JSON.stringify(put) });
    assert.notEqual(replaced.code, 0, "kubectl replace without agent-config must be refused");
    assert.match(replaced.stderr, /cannot be added, changed or removed/);
    // Through the status subresource as well.
    const viaStatus = await env.cp.kubectl([
      "patch",
      "pod",
      "frozen-1",
      "-n",
      NS,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ metadata: { annotations: { [STATUS]: null } } }),
    ]);
    assert.notEqual(viaStatus.code, 0, "removing it through pods/status must be refused");

    // Everything else passes: another annotation, labels, finalizers, the kubelet's status writes.
    await kubectlOk(env.cp, [
      "annotate",
      "pod",
      "frozen-1",
      "-n",
      NS,
      "--overwrite",
      "example.com/team=b",
    ]);
    await kubectlOk(env.cp, ["label", "pod", "frozen-1", "-n", NS, "tier=web"]);
    for (const finalizers of [["example.com/keep"], null]) {
      await kubectlOk(env.cp, [
        "patch",
        "pod",
        "frozen-1",
        "-n",
        NS,
        "--type=merge",
        "-p",
        JSON.stringify({ metadata: { finalizers } }),
      ]);
    }
    await writeStatus(env.cp, "frozen-1", nativeStatus({ waiting: { reason: "PodInitializing" } }));
    const after = await env.cp.kubectlJson(["get", "pod", "frozen-1", "-n", NS, "-o", "json"]);
    assert.equal(after.metadata.annotations[STATUS], before[STATUS]);
    assert.equal(after.metadata.annotations[AGENT_CONFIG], before[AGENT_CONFIG]);
    assert.equal(after.metadata.annotations["example.com/team"], "b");
    assert.equal(after.metadata.labels.tier, "web");
    assert.equal(after.status.initContainerStatuses[0].state.waiting.reason, "PodInitializing");

    // A pod that never had them cannot be given them (it would hide an escaped pod from the audit),
    // and its other updates pass, in the webhook's own namespace as anywhere.
    const own = await createPod(env.cp, pod("own-ns-pod"), INJECTOR_NS);
    assert.equal(own.code, 0, own.stderr);
    const add = await env.cp.kubectl([
      "annotate",
      "pod",
      "own-ns-pod",
      "-n",
      INJECTOR_NS,
      `${STATUS}={}`,
    ]);
    assert.notEqual(add.code, 0, "adding the status annotation must be refused");
    await kubectlOk(env.cp, ["label", "pod", "own-ns-pod", "-n", INJECTOR_NS, "tier=web"]);
    await kubectlOk(env.cp, [
      "patch",
      "pod",
      "own-ns-pod",
      "-n",
      INJECTOR_NS,
      "--subresource=status",
      "--type=merge",
      "-p",
      JSON.stringify({ status: { conditions: [{ type: "PodScheduled", status: "False" }] } }),
    ]);
    await kubectlOk(env.cp, [
      "delete",
      "pod",
      "own-ns-pod",
      "-n",
      INJECTOR_NS,
      "--grace-period=0",
      "--force",
    ]);
    await deletePods(env.cp, ["frozen-1"]);
  },
);

Deno.test(
  "e2e audit: webhook down (failurePolicy Ignore): the policy warns for 3 pods, audit lists exactly those, exit 1",
  opts,
  async () => {
    const env = await setup();
    const status = await env.webhook.stop();
    assert.equal(status.code, 0);
    // The policy is compiled asynchronously: a server-side dry run shows when it warns.
    await env.cp.waitFor("the ValidatingAdmissionPolicy warning", async () => {
      const r = await env.cp.kubectl(["create", "--dry-run=server", "-n", NS, "-f", "-"], {
        stdin: JSON.stringify(pod("vap-probe")),
      });
      return r.code === 0 && r.stderr.includes(VAP_WARNING);
    });
    for (const name of ESCAPED) {
      const r = await createPod(env.cp, pod(name), NS);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stderr.includes(VAP_WARNING), `${name}: kubectl prints the warning: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`pod ${name} was created WITHOUT the log agent`));
    }
    const optedOut = await createPod(
      env.cp,
      pod("opted-out", { "sidecar-injector.io/inject": "false" }),
      NS,
    );
    assert.equal(optedOut.code, 0, optedOut.stderr);
    assert.ok(!optedOut.stderr.includes(VAP_WARNING), optedOut.stderr);
    const system = await createPod(env.cp, pod("system-pod"), "kube-system");
    assert.equal(system.code, 0, system.stderr);
    assert.ok(!system.stderr.includes(VAP_WARNING), system.stderr);

    const run = await audit(env, ["-A", "-o", "json"]);
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(listed(run, "escaped"), ESCAPED.map((n) => `${NS}/${n}`));
    assert.deepEqual(listed(run, "drifted"), []);
    for (const f of run.json.findings) {
      assert.match(f.reason, /admitted without the webhook \(it was down, timed out or failed/);
    }
    const table = await audit(env, ["-A"]);
    assert.equal(table.code, 1);
    for (const name of ESCAPED) {
      assert.match(
        table.stdout,
        new RegExp(`^${NS} +${name} +escaped `, "m"),
      );
    }
    assert.match(table.stdout, /pods audited: 3 without the agent, 0 drifted, 0 blocked/);
    const other = await audit(env, ["-n", "default"]);
    assert.equal(other.code, 0, `nothing escaped in default: ${other.stdout}`);
    // The same, authenticated by an exec credential plugin (a client certificate from `cat`).
    const viaExec = await audit(env, ["-A", "-o", "json"], env.execKubeconfig);
    assert.equal(viaExec.code, 1, viaExec.stderr);
    assert.deepEqual(listed(viaExec, "escaped"), ESCAPED.map((n) => `${NS}/${n}`));
  },
);

Deno.test(
  "e2e audit: restarted webhook's gauges show the 3 (one warn each); re-created pods clear them; exit 0",
  opts,
  async () => {
    const env = await setup();
    env.starts += 1;
    env.webhook = await launch(env, env.starts);
    await register(env);
    await waitForInjection(env.cp, NS, pod("probe"));
    await waitForGauge(env, "sidecar_injector_escaped_pods", 3);
    assert.equal(gauge(await metrics(env), "sidecar_injector_drifted_pods", NS), 0);
    // Give a few more audits the chance to log again: still one line per pod.
    const runs = () => serverLines(env, "audit done").length;
    const seen = runs();
    await env.cp.waitFor("two more audits", () => Promise.resolve(runs() >= seen + 2), 30_000);
    const warns = serverLines(env, "pod without the log agent");
    assert.deepEqual(
      warns.map((w) => `${w.namespace}/${w.pod}`).sort(),
      ESCAPED.map((n) => `${NS}/${n}`),
    );
    for (const w of warns) assert.equal(w.level, "warn");

    await kubectlOk(env.cp, ["delete", "pod", "-n", NS, ...ESCAPED]);
    for (const name of ESCAPED) {
      const r = await createPod(env.cp, pod(name), NS);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!r.stderr.includes(VAP_WARNING), `${name} injected now: ${r.stderr}`);
    }
    const run = await audit(env, ["-A", "-o", "json"]);
    assert.equal(run.code, 0, JSON.stringify(run.json.findings));
    await waitForGauge(env, "sidecar_injector_escaped_pods", 0);
  },
);

Deno.test(
  "e2e audit: a new agent image in the config is drift for every injected pod, CLI and gauge",
  opts,
  async () => {
    const env = await setup();
    const oldConfig = `${env.cp.dir}/old-config.yaml`;
    await Deno.writeTextFile(oldConfig, configText(OLD_IMAGE));
    await Deno.writeTextFile(env.configFile, configText(NEW_IMAGE));
    await applyConfigMap(env.cp, env.configFile);
    const injected = ["up-1", ...ESCAPED].map((n) => `${NS}/${n}`).sort();

    const run = await audit(env, ["-A", "-o", "json"]);
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(listed(run, "drifted"), injected);
    assert.deepEqual(listed(run, "escaped"), []);
    for (const f of run.json.findings) {
      assert.equal(f.reason, `agent image ${OLD_IMAGE}, current config: ${NEW_IMAGE}`);
    }
    // --config: a local file instead of the cluster's ConfigMap.
    const local = await audit(env, ["-A", "--config", oldConfig]);
    assert.equal(local.code, 0, local.stdout + local.stderr);
    // The server reloaded the same file and its next audits agree.
    await waitForGauge(env, "sidecar_injector_drifted_pods", injected.length);
    // Log lines are flushed every 20 ms, just after the gauges are set.
    const warned = () =>
      serverLines(env, "pod with an outdated log agent").map((w) => `${w.namespace}/${w.pod}`)
        .sort();
    await env.cp.waitFor(
      "a warn line per drifted pod",
      () => Promise.resolve(warned().length >= 4),
    );
    assert.deepEqual(warned(), injected);
  },
);

Deno.test(
  "e2e audit: a caBundle that does not verify the serving certificate is reported, exit 1",
  opts,
  async () => {
    const env = await setup();
    const other = await genWebhookCerts(`${env.cp.dir}/other-ca`);
    await register(env, other.caPem);
    // The config the pods were injected with: no pod finding, only the certificate's.
    const config = `${env.cp.dir}/old-config.yaml`;
    await Deno.writeTextFile(config, configText(OLD_IMAGE));
    const run = await audit(env, ["-A", "-o", "json", "--config", config]);
    assert.equal(run.code, 1);
    assert.deepEqual(run.json.findings, []);
    assert.equal(run.json.certificate.status, "problem");
    assert.match(run.json.certificate.detail, /caBundle does not verify the serving certificate/);
    const table = await audit(env, ["-A", "--config", config]);
    assert.match(
      table.stdout,
      /certificate \(sidecar-injector\/sidecar-injector-certs\): problem: /,
    );
    // Restore the right caBundle for anything after.
    await register(env);
  },
);

Deno.test(
  "e2e audit: k8s/ with components/audit is accepted by the apiserver (dry run)",
  opts,
  async () => {
    const env = await setup();
    const copy = `${env.cp.dir}/k8s-audit`;
    const cp = await exec("cp", ["-R", `${REPO_ROOT}/k8s`, copy]);
    assert.equal(cp.code, 0, cp.stderr);
    await Deno.remove(`${copy}/generated`, { recursive: true }).catch(() => {});
    const gen = await exec("bash", [`${copy}/gen-certs.sh`, "--out", `${copy}/generated`]);
    assert.equal(gen.code, 0, gen.stderr);
    const kust = await Deno.readTextFile(`${copy}/kustomization.yaml`);
    assert.match(kust, /^# components:\n# {3}- components\/audit$/m, "the documented switch");
    await Deno.writeTextFile(
      `${copy}/kustomization.yaml`,
      kust.replace("# components:\n#   - components/audit", "components:\n  - components/audit"),
    );
    const r = await env.cp.kubectl(["apply", "-k", copy, "--dry-run=server", "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    const items: Obj[] = out.kind === "List" ? out.items : [out];
    const kinds = items.map((i) => i.kind);
    for (
      const k of [
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
      ]
    ) {
      assert.ok(kinds.includes(k), `${k} in ${kinds}`);
    }
    const deploy = items.find((i) => i.kind === "Deployment");
    assert.equal(deploy.spec.template.spec.automountServiceAccountToken, true);
    assert.deepEqual(deploy.spec.template.spec.containers[0].args.slice(-2), [
      "--audit-interval",
      "5m",
    ]);
    assert.equal(deploy.spec.template.spec.containers[0].resources.limits.memory, "320Mi");
  },
);

Deno.test(
  "e2e audit: a serving certificate 10 days from expiry is logged at warn and exposed",
  opts,
  async () => {
    const env = await setup();
    const certs = await genWebhookCerts(`${env.cp.dir}/short-certs`, [], ["--days", "10"]);
    const wh = await startWebhook({ certs, logPath: `${certs.dir}/server.log` });
    webhooks.push(wh);
    try {
      await env.cp.waitFor(
        "the expiry warning",
        () => Promise.resolve(wh.logText().includes('"msg":"serving certificate expires soon"')),
      );
      const line = JSON.parse(wh.logText().split("\n").find((l) => l.includes("expires soon"))!);
      assert.equal(line.level, "warn");
      assert.ok(line.daysLeft === 9 || line.daysLeft === 10, `daysLeft ${line.daysLeft}`);
      assert.doesNotMatch(wh.logText(), /"msg":"audit/, "--audit-interval is off by default");
    } finally {
      const s = await wh.stop();
      assert.equal(s.code, 0);
    }
  },
);

Deno.test(
  "e2e audit: errors exit 2: no kubeconfig, an unreachable API server, a forbidden read",
  opts,
  async () => {
    const env = await setup();
    const missing = await audit(env, ["-A"], `${env.cp.dir}/no-such-kubeconfig`);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /error: no kubeconfig found \(looked at .*no-such-kubeconfig\)/);

    const dead = `${env.cp.dir}/dead.kubeconfig`;
    const port = freePort();
    await Deno.writeTextFile(
      dead,
      kubeconfig(env.cp, { token: "x" }).replace(env.cp.server, `https://127.0.0.1:${port}`),
    );
    const unreachable = await audit(env, ["-A"], dead);
    assert.equal(unreachable.code, 2, unreachable.stderr);
    assert.match(
      unreachable.stderr,
      new RegExp(`error: GET .* on https://127\\.0\\.0\\.1:${port}: `),
    );

    // The in-server audit's ServiceAccount may not read ConfigMaps or Secrets: the CLI says so.
    const forbidden = await audit(env, ["-A"], env.saKubeconfig);
    assert.equal(forbidden.code, 2, forbidden.stdout);
    assert.match(
      forbidden.stderr,
      /error: GET \/api\/v1\/namespaces\/sidecar-injector\/configmaps\/sidecar-injector-config: 403 /,
    );
  },
);

Deno.test("e2e audit: teardown", opts, async () => {
  if (!setupPromise) return;
  const env = await setupPromise.catch(() => undefined);
  for (const w of webhooks) await w.close();
  const cp = env?.cp ?? cpRef;
  if (cp) {
    say(`e2e audit: stopping the control plane (${cp.dir})`);
    await cp.stop();
  }
  cpRef = undefined;
});
