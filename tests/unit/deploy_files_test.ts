/**
 * Consistency checks for the deployment artifacts: Dockerfile, k8s/ manifests,
 * deno.json permission sets and k8s/gen-certs.sh.
 */
import assert from "node:assert/strict";
import { load, loadAll } from "js-yaml";
import { CONFIG_ANNOTATION, FILES_ANNOTATION, STATUS_ANNOTATION } from "../../lib/mod.ts";
import { serveCommand } from "../../testing/serve_command.ts";

const ROOT = new URL("../../", import.meta.url);
const rootPath = (rel: string): string => new URL(rel, ROOT).pathname;
const readText = (rel: string): string => Deno.readTextFileSync(rootPath(rel));

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function obj(v: unknown, what: string): Obj {
  assert.ok(isObj(v), `${what} must be a mapping`);
  return v;
}

function arr(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what} must be a sequence`);
  return v;
}

function loadYamlFile(rel: string): Obj {
  return obj(load(readText(rel)), rel);
}

interface DenoJson {
  tasks: Record<string, string>;
  permissions: Record<string, { read?: boolean | string[] }>;
}

function denoJson(): DenoJson {
  return JSON.parse(readText("deno.json")) as DenoJson;
}

interface DockerStage {
  from: string;
  instructions: { op: string; args: string }[];
}

/** Minimal Dockerfile parser: joins line continuations, drops comments, splits stages. */
function parseDockerfile(text: string): DockerStage[] {
  const logical: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (current === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
      continue;
    }
    logical.push(current + line);
    current = "";
  }
  if (current !== "") logical.push(current);

  const stages: DockerStage[] = [];
  for (const line of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m === null) continue;
    const op = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (op === "FROM") {
      stages.push({ from: args, instructions: [] });
    } else {
      assert.ok(stages.length > 0, `Dockerfile instruction ${op} before FROM`);
      stages[stages.length - 1]!.instructions.push({ op, args });
    }
  }
  return stages;
}

function deploymentContainer(): Obj {
  const dep = loadYamlFile("k8s/deployment.yaml");
  const spec = obj(obj(obj(dep.spec, "spec").template, "template").spec, "pod spec");
  const containers = arr(spec.containers, "containers");
  const injector = containers.map((c) => obj(c, "container")).find((c) => c.name === "injector");
  assert.ok(injector, "deployment has an 'injector' container");
  return injector;
}

function dockerCmd(stages: DockerStage[]): string[] {
  const runtime = stages[stages.length - 1]!;
  const cmd = runtime.instructions.filter((i) => i.op === "CMD");
  assert.equal(cmd.length, 1, "runtime stage has exactly one CMD");
  const parsed: unknown = JSON.parse(cmd[0]!.args);
  assert.ok(Array.isArray(parsed), "CMD uses exec (JSON array) form");
  return parsed.map(String);
}

function isInside(path: string, dir: string): boolean {
  const d = dir.endsWith("/") ? dir : dir + "/";
  return path.startsWith(d);
}

Deno.test("deno.json compile task bakes in the 'serve' permission set", () => {
  const cfg = denoJson();
  const compile = cfg.tasks.compile;
  assert.ok(compile, "deno.json has a compile task");
  assert.match(compile, /^deno compile\b/);
  assert.match(compile, /(^|\s)-P=serve(\s|$)/);
  assert.ok(cfg.permissions.serve, "deno.json defines the serve permission set");
});

Deno.test("Dockerfile builds with deno task compile and runs on distroless nonroot", () => {
  const stages = parseDockerfile(readText("Dockerfile"));
  assert.ok(stages.length >= 2, "Dockerfile is multi-stage");

  const build = stages.find((s) => /\bAS\s+build$/i.test(s.from));
  assert.ok(build, "Dockerfile has a stage named 'build'");
  assert.match(build.from, /^denoland\/deno:\S+/);
  const runs = build.instructions.filter((i) => i.op === "RUN").map((i) => i.args);
  assert.ok(runs.includes("deno task compile"), "build stage runs `deno task compile`");
  // Permissions must come from deno.json only: no extra deno compile/permission flags.
  for (const run of runs) {
    assert.doesNotMatch(run, /deno compile/, "build stage does not call deno compile directly");
    assert.doesNotMatch(run, /--allow-|(^|\s)-A(\s|$)|(^|\s)-P\b/, `no permission flags: ${run}`);
  }

  const runtime = stages[stages.length - 1]!;
  assert.equal(runtime.from, "gcr.io/distroless/cc-debian12:nonroot");
  const ops = (op: string) => runtime.instructions.filter((i) => i.op === op).map((i) => i.args);
  assert.deepEqual(ops("USER"), ["nonroot"]);
  assert.deepEqual(ops("EXPOSE"), ["8443"]);
  assert.deepEqual(ops("RUN"), [], "runtime stage runs nothing (distroless has no shell)");
  const entrypoint = ops("ENTRYPOINT");
  assert.equal(entrypoint.length, 1);
  assert.deepEqual(JSON.parse(entrypoint[0]!), ["/usr/local/bin/sidecar-injector"]);
});

Deno.test("the Deployment runs with the serve task's V8 flags and environment, within its limit", () => {
  const { env, runtime } = serveCommand();
  const v8 = runtime.find((f) => f.startsWith("--v8-flags="));
  assert.ok(v8, "the serve task sets V8 flags");
  assert.ok(
    denoJson().tasks.compile?.split(/\s+/).includes(v8),
    `the compile task (the image) bakes in the same ${v8}`,
  );
  const container = deploymentContainer();
  const deployed = new Map(
    arr(container.env, "env").map((e) => obj(e, "env var")).map((e) => [e.name, e.value]),
  );
  for (const [name, value] of Object.entries(env)) {
    assert.equal(deployed.get(name), value, `the Deployment sets ${name} as deno task serve does`);
  }
  const limit = String(obj(obj(container.resources, "resources").limits, "limits").memory);
  const limitMiB = Number(/^(\d+)Mi$/.exec(limit)?.[1]);
  const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(v8)?.[1]);
  assert.ok(heapMiB > 0, "the V8 heap is capped (--max-old-space-size)");
  // The runtime, external buffers and TLS state live outside the V8 heap: ~3x room measured.
  assert.ok(limitMiB >= 3 * heapMiB, `limit ${limit} leaves room above a ${heapMiB} MiB heap`);
});

Deno.test("Dockerfile CMD matches the Deployment container args", () => {
  const cmd = dockerCmd(parseDockerfile(readText("Dockerfile")));
  const container = deploymentContainer();
  const args = arr(container.args, "container args").map(String);
  assert.deepEqual(args, cmd);
  assert.equal(args[0], "serve");
});

Deno.test("serve args only read files the 'serve' permission set allows", () => {
  const args = dockerCmd(parseDockerfile(readText("Dockerfile")));
  const read = denoJson().permissions.serve?.read;
  assert.ok(Array.isArray(read), "serve permission set has an explicit read list");
  for (const flag of ["--cert", "--key", "--config"]) {
    const i = args.indexOf(flag);
    assert.ok(i >= 0 && i + 1 < args.length, `${flag} is set`);
    const path = args[i + 1]!;
    assert.ok(
      read.some((dir) => isInside(path, dir)),
      `${flag} ${path} is inside the serve read list ${JSON.stringify(read)}`,
    );
  }
  assert.ok(read.includes("/tls"));
  assert.ok(read.includes("/etc/sidecar-injector"));
});

Deno.test("Deployment mounts certs and config where the args point", () => {
  const container = deploymentContainer();
  const mounts = arr(container.volumeMounts, "volumeMounts").map((m) => obj(m, "mount"));
  const mountPaths = mounts.map((m) => String(m.mountPath));
  assert.ok(mountPaths.includes("/tls"));
  assert.ok(mountPaths.includes("/etc/sidecar-injector"));
  const ports = arr(container.ports, "ports").map((p) => obj(p, "port"));
  assert.ok(ports.some((p) => p.name === "https" && p.containerPort === 8443));
  const sc = obj(container.securityContext, "container securityContext");
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.equal(sc.readOnlyRootFilesystem, true);
  assert.deepEqual(obj(sc.capabilities, "capabilities").drop, ["ALL"]);
});

Deno.test("MutatingWebhookConfiguration has safe admission settings", () => {
  const mwc = loadYamlFile("k8s/mutatingwebhookconfiguration.yaml");
  assert.equal(mwc.kind, "MutatingWebhookConfiguration");
  assert.equal(obj(mwc.metadata, "metadata").name, "sidecar-injector");
  const webhooks = arr(mwc.webhooks, "webhooks");
  assert.equal(webhooks.length, 1);
  const wh = obj(webhooks[0], "webhook");
  assert.ok(
    wh.failurePolicy === "Ignore" || wh.failurePolicy === "Fail",
    "failurePolicy is set explicitly",
  );
  assert.equal(wh.sideEffects, "None");
  assert.equal(wh.timeoutSeconds, 5);
  assert.deepEqual(wh.admissionReviewVersions, ["v1", "v1beta1"]);
  assert.equal(wh.reinvocationPolicy, "IfNeeded");
  assert.equal(wh.matchPolicy, "Equivalent");

  const svc = obj(obj(wh.clientConfig, "clientConfig").service, "clientConfig.service");
  assert.deepEqual(svc, {
    name: "sidecar-injector",
    namespace: "sidecar-injector",
    path: "/mutate",
    port: 443,
  });
  assert.equal(
    obj(wh.clientConfig, "clientConfig").caBundle,
    undefined,
    "caBundle comes from the generated patch",
  );

  const nsExprs = arr(obj(wh.namespaceSelector, "namespaceSelector").matchExpressions, "exprs")
    .map((e) => obj(e, "expression"));
  const byName = nsExprs.find((e) =>
    e.key === "kubernetes.io/metadata.name" && e.operator === "NotIn"
  );
  assert.ok(byName, "namespaceSelector excludes namespaces by name");
  const excluded = arr(byName.values, "values");
  for (const ns of ["kube-system", "kube-public", "kube-node-lease", "sidecar-injector"]) {
    assert.ok(excluded.includes(ns), `namespaceSelector excludes ${ns}`);
  }
  const objExprs = arr(obj(wh.objectSelector, "objectSelector").matchExpressions, "exprs")
    .map((e) => obj(e, "expression"));
  assert.ok(
    objExprs.some((e) =>
      e.key === "sidecar-injector.io/inject" && e.operator === "NotIn" &&
      arr(e.values, "values").includes("false")
    ),
    "objectSelector skips pods labelled sidecar-injector.io/inject=false",
  );
});

Deno.test("kustomization resources exist and every manifest is valid YAML", () => {
  const kust = loadYamlFile("k8s/kustomization.yaml");
  const resources = arr(kust.resources, "resources").map(String);
  assert.ok(resources.includes("generated/secret.yaml"));
  for (const res of resources) {
    if (res.startsWith("generated/")) continue;
    const text = readText(`k8s/${res}`);
    const docs = loadAll(text).filter((d) => d !== null && d !== undefined);
    assert.ok(docs.length > 0, `k8s/${res} has at least one document`);
    for (const doc of docs) {
      const o = obj(doc, `k8s/${res}`);
      assert.equal(typeof o.apiVersion, "string", `k8s/${res} has apiVersion`);
      assert.equal(typeof o.kind, "string", `k8s/${res} has kind`);
    }
  }
  const patches = arr(kust.patches, "patches").map((p) => obj(p, "patch"));
  assert.ok(
    patches.some((p) =>
      p.path === "generated/cabundle-patch.yaml" &&
      obj(p.target, "target").kind === "MutatingWebhookConfiguration"
    ),
  );
});

Deno.test("ConfigMap carries a parseable config.yaml", () => {
  const cm = loadYamlFile("k8s/configmap.yaml");
  assert.equal(obj(cm.metadata, "metadata").name, "sidecar-injector-config");
  const data = obj(cm.data, "data");
  assert.equal(typeof data["config.yaml"], "string");
  const cfg = obj(load(String(data["config.yaml"])), "config.yaml");
  assert.equal(cfg.defaultProfile, "fluentd");
  assert.ok(isObj(obj(cfg.profiles, "profiles").fluentd));
});

// --- gen-certs.sh -------------------------------------------------------------------

const GEN_CERTS = rootPath("k8s/gen-certs.sh");
const SERVICE_SANS = [
  "DNS:sidecar-injector",
  "DNS:sidecar-injector.sidecar-injector",
  "DNS:sidecar-injector.sidecar-injector.svc",
  "DNS:sidecar-injector.sidecar-injector.svc.cluster.local",
];

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  assert.equal(
    out.code,
    0,
    `${cmd} ${args.join(" ")} failed:\n${dec.decode(out.stdout)}${dec.decode(out.stderr)}`,
  );
  return dec.decode(out.stdout);
}

function genCerts(...args: string[]): Promise<string> {
  return run("bash", [GEN_CERTS, ...args]);
}

function serial(certPath: string): Promise<string> {
  return run("openssl", ["x509", "-noout", "-serial", "-in", certPath]).then((s) => s.trim());
}

function b64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

async function withTmpDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "gen-certs-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("gen-certs.sh creates a CA-signed server cert with the service SANs", async () => {
  await withTmpDir(async (dir) => {
    await genCerts("--out", dir, "--san", "IP:127.0.0.1");

    for (const f of ["ca.crt", "ca.key", "tls.crt", "tls.key", "secret.yaml"]) {
      assert.ok(Deno.statSync(`${dir}/${f}`).isFile, `${f} written`);
    }
    for (const f of ["ca.key", "tls.key", "secret.yaml"]) {
      assert.equal(Deno.statSync(`${dir}/${f}`).mode! & 0o777, 0o600, `${f} is mode 0600`);
    }
    const leftovers = [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("."));
    assert.deepEqual(leftovers, [], "no temporary files left behind");

    const verify = await run("openssl", ["verify", "-CAfile", `${dir}/ca.crt`, `${dir}/tls.crt`]);
    assert.match(verify, /OK/);

    const leaf = await run("openssl", ["x509", "-noout", "-text", "-in", `${dir}/tls.crt`]);
    assert.match(leaf, /CA:FALSE/);
    assert.match(leaf, /TLS Web Server Authentication/);
    assert.match(leaf, /Digital Signature, Key Encipherment/);
    assert.match(leaf, /Subject:.*CN ?= ?sidecar-injector\.sidecar-injector\.svc/);
    const sanLine = /X509v3 Subject Alternative Name:.*\n\s*(.*)/.exec(leaf)?.[1] ?? "";
    const sans = sanLine.split(",").map((s) => s.trim());
    for (const san of SERVICE_SANS) assert.ok(sans.includes(san), `leaf has SAN ${san}`);
    assert.ok(sans.includes("IP Address:127.0.0.1"), "leaf has SAN IP:127.0.0.1");

    const ca = await run("openssl", ["x509", "-noout", "-text", "-in", `${dir}/ca.crt`]);
    assert.match(ca, /CA:TRUE/);
    assert.match(ca, /Certificate Sign, CRL Sign/);

    const key = Deno.readTextFileSync(`${dir}/tls.key`);
    assert.match(key, /^-----BEGIN PRIVATE KEY-----\n/, "leaf key is PKCS#8 PEM");
  });
});

Deno.test("gen-certs.sh writes a kubernetes.io/tls Secret and a caBundle patch", async () => {
  await withTmpDir(async (dir) => {
    await genCerts("--out", dir, "--namespace", "webhooks", "--service", "injector");
    const secret = obj(load(Deno.readTextFileSync(`${dir}/secret.yaml`)), "secret.yaml");
    assert.equal(secret.apiVersion, "v1");
    assert.equal(secret.kind, "Secret");
    assert.equal(secret.type, "kubernetes.io/tls");
    const meta = obj(secret.metadata, "metadata");
    assert.equal(meta.name, "sidecar-injector-certs");
    assert.equal(meta.namespace, "webhooks");
    const data = obj(secret.data, "data");
    assert.deepEqual(Object.keys(data).sort(), ["ca.crt", "tls.crt", "tls.key"]);
    for (const f of ["ca.crt", "tls.crt", "tls.key"]) {
      assert.equal(data[f], b64(Deno.readFileSync(`${dir}/${f}`)), `secret ${f} matches file`);
    }

    const caB64 = b64(Deno.readFileSync(`${dir}/ca.crt`));
    const patchText = Deno.readTextFileSync(`${dir}/cabundle-patch.yaml`);
    assert.ok(patchText.includes(caB64), "cabundle-patch.yaml contains base64 of ca.crt");
    const patch = arr(load(patchText), "cabundle-patch.yaml");
    assert.deepEqual(patch, [{
      op: "add",
      path: "/webhooks/0/clientConfig/caBundle",
      value: caB64,
    }]);

    const leaf = await run("openssl", ["x509", "-noout", "-text", "-in", `${dir}/tls.crt`]);
    assert.match(leaf, /DNS:injector\.webhooks\.svc\.cluster\.local/);
  });
});

Deno.test("gen-certs.sh reuses an existing CA and issues a new leaf serial", async () => {
  await withTmpDir(async (dir) => {
    await genCerts("--out", dir);
    const ca1 = Deno.readFileSync(`${dir}/ca.crt`);
    const caKey1 = Deno.readFileSync(`${dir}/ca.key`);
    const serial1 = await serial(`${dir}/tls.crt`);
    const secret1 = Deno.readTextFileSync(`${dir}/secret.yaml`);

    await genCerts("--out", dir);
    assert.deepEqual(Deno.readFileSync(`${dir}/ca.crt`), ca1, "same ca.crt bytes");
    assert.deepEqual(Deno.readFileSync(`${dir}/ca.key`), caKey1, "same ca.key bytes");
    assert.notEqual(await serial(`${dir}/tls.crt`), serial1, "new leaf serial");
    await run("openssl", ["verify", "-CAfile", `${dir}/ca.crt`, `${dir}/tls.crt`]);

    // Files are rewritten whole: still exactly one document with one set of keys.
    const secret2 = Deno.readTextFileSync(`${dir}/secret.yaml`);
    assert.notEqual(secret2, secret1);
    assert.equal(loadAll(secret2).length, 1);
    assert.equal(secret2.split("\n").length, secret1.split("\n").length);
    assert.equal(arr(load(Deno.readTextFileSync(`${dir}/cabundle-patch.yaml`)), "patch").length, 1);
  });
});

Deno.test("gen-certs.sh --rotate-ca makes a new CA", async () => {
  await withTmpDir(async (dir) => {
    await genCerts("--out", dir);
    const ca1 = Deno.readFileSync(`${dir}/ca.crt`);
    await genCerts("--out", dir, "--rotate-ca");
    const ca2 = Deno.readFileSync(`${dir}/ca.crt`);
    assert.notDeepEqual(ca2, ca1, "ca.crt changed");
    await run("openssl", ["verify", "-CAfile", `${dir}/ca.crt`, `${dir}/tls.crt`]);
    const patchText = Deno.readTextFileSync(`${dir}/cabundle-patch.yaml`);
    assert.ok(patchText.includes(b64(ca2)), "patch carries the new CA");
  });
});

Deno.test("gen-certs.sh replaces a CA whose key does not match", async () => {
  await withTmpDir(async (dir) => {
    await genCerts("--out", dir);
    const ca1 = Deno.readFileSync(`${dir}/ca.crt`);
    await run("openssl", [
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-out",
      `${dir}/ca.key`,
    ]);
    await genCerts("--out", dir);
    assert.notDeepEqual(Deno.readFileSync(`${dir}/ca.crt`), ca1, "mismatched CA replaced");
    await run("openssl", ["verify", "-CAfile", `${dir}/ca.crt`, `${dir}/tls.crt`]);
  });
});

Deno.test("gen-certs.sh rejects bad arguments", async () => {
  for (
    const args of [
      ["--days", "0"],
      ["--days", "abc"],
      ["--namespace", "Bad_NS"],
      ["--san", "127.0.0.1"],
      ["--san", "DNS:a,DNS:b"],
      ["--bogus"],
    ]
  ) {
    const out = await new Deno.Command("bash", {
      args: [GEN_CERTS, "--out", "/nonexistent/should-not-be-created", ...args],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.notEqual(out.code, 0, `gen-certs.sh ${args.join(" ")} must fail`);
  }
  const help = await genCerts("--help");
  assert.match(help, /--rotate-ca/);
});

// --- audit: ValidatingAdmissionPolicy and the kustomize component -------------------

Deno.test("ValidatingAdmissionPolicy selects exactly the pods the webhook does, and only warns", () => {
  const docs = loadAll(readText("k8s/validatingadmissionpolicy.yaml")).map((d) => obj(d, "doc"));
  const policy = docs.find((d) => d.kind === "ValidatingAdmissionPolicy");
  const binding = docs.find((d) => d.kind === "ValidatingAdmissionPolicyBinding");
  assert.ok(policy && binding, "a policy and its binding");
  assert.equal(policy.apiVersion, "admissionregistration.k8s.io/v1");
  const spec = obj(policy.spec, "policy spec");
  const bindingSpec = obj(binding.spec, "binding spec");
  assert.equal(bindingSpec.policyName, obj(policy.metadata, "metadata").name);
  assert.deepEqual(bindingSpec.validationActions, ["Warn", "Audit"], "never Deny");
  assert.equal(spec.failurePolicy, "Ignore");
  const wh = obj(arr(loadYamlFile("k8s/mutatingwebhookconfiguration.yaml").webhooks, "w")[0], "w");
  const constraints = obj(spec.matchConstraints, "matchConstraints");
  assert.deepEqual(constraints.namespaceSelector, wh.namespaceSelector);
  assert.deepEqual(constraints.objectSelector, wh.objectSelector);
  assert.deepEqual(spec.matchConditions, wh.matchConditions);
  assert.deepEqual(constraints.resourceRules, wh.rules);
  const [validation] = arr(spec.validations, "validations").map((v) => obj(v, "validation"));
  assert.match(
    String(validation?.expression),
    /'sidecar-injector\.io\/status' in object\.metadata\.annotations/,
  );
  assert.ok(
    arr(loadYamlFile("k8s/kustomization.yaml").resources, "resources").includes(
      "validatingadmissionpolicy.yaml",
    ),
  );
});

Deno.test("components/audit: read-only RBAC for the injector's ServiceAccount, token mounted, audit on, 320Mi", () => {
  const kust = loadYamlFile("k8s/components/audit/kustomization.yaml");
  assert.equal(kust.kind, "Component");
  assert.deepEqual(kust.resources, ["rbac.yaml"]);
  const docs = loadAll(readText("k8s/components/audit/rbac.yaml")).map((d) => obj(d, "doc"));
  const role = docs.find((d) => d.kind === "ClusterRole");
  const binding = docs.find((d) => d.kind === "ClusterRoleBinding");
  assert.ok(role && binding);
  const verbs = arr(role.rules, "rules").flatMap((r) => arr(obj(r, "rule").verbs, "verbs"));
  assert.deepEqual([...new Set(verbs)].sort(), ["get", "list"], "read-only");
  assert.deepEqual(binding.subjects, [
    { kind: "ServiceAccount", name: "sidecar-injector", namespace: "sidecar-injector" },
  ]);
  const [patch] = arr(kust.patches, "patches").map((p) => obj(p, "patch"));
  assert.deepEqual(obj(patch?.target, "target").name, "sidecar-injector");
  const ops = arr(load(String(patch?.patch)), "ops").map((o) => obj(o, "op"));
  assert.deepEqual(ops.map((o) => o.value), [true, "--audit-interval", "5m", "320Mi"]);
  // The audit keeps 30-47 MB more on top of the large-pod storm's peak (docs/performance.md).
  assert.equal(ops.at(-1)?.path, "/spec/template/spec/containers/0/resources/limits/memory");
  // What the audit reads in the pod must be in the serve permission set the image bakes in.
  const serve = JSON.parse(readText("deno.json")).permissions.serve;
  assert.ok(serve.read.includes("/var/run/secrets/kubernetes.io/serviceaccount"));
  assert.ok(serve.net.includes("kubernetes.default.svc:443"));
});

Deno.test("the frozen-annotations policy refuses pod UPDATEs changing the injected annotations, and only those", () => {
  const docs = loadAll(readText("k8s/annotations-policy.yaml")).map((d) => obj(d, "doc"));
  assert.equal(docs.length, 2, "a policy and its binding, in a file of their own");
  const policy = docs.find((d) => d.kind === "ValidatingAdmissionPolicy");
  const binding = docs.find((d) => d.kind === "ValidatingAdmissionPolicyBinding");
  assert.ok(policy && binding, "a policy and its binding");
  assert.equal(policy.apiVersion, "admissionregistration.k8s.io/v1");
  assert.equal(binding.apiVersion, "admissionregistration.k8s.io/v1");
  const name = obj(policy.metadata, "metadata").name;
  assert.notEqual(name, "sidecar-injector-agent-present", "not the escaped-pod policy");
  const bindingSpec = obj(binding.spec, "binding spec");
  assert.equal(bindingSpec.policyName, name);
  assert.deepEqual(bindingSpec.validationActions, ["Deny"]);
  assert.equal(bindingSpec.matchResources, undefined, "every namespace");
  const spec = obj(policy.spec, "policy spec");
  assert.equal(spec.failurePolicy, "Ignore", "a broken policy never blocks pod updates");
  const constraints = obj(spec.matchConstraints, "matchConstraints");
  assert.equal(constraints.namespaceSelector, undefined, "no namespace is exempt");
  assert.equal(constraints.objectSelector, undefined);
  assert.deepEqual(constraints.resourceRules, [{
    operations: ["UPDATE"],
    apiGroups: [""],
    apiVersions: ["v1"],
    resources: ["pods", "pods/status"],
    scope: "Namespaced",
  }]);
  const validations = arr(spec.validations, "validations").map((v) => obj(v, "validation"));
  const keys = [
    "sidecar-injector.io/agent-config",
    "sidecar-injector.io/agent-files",
    "sidecar-injector.io/status",
  ];
  assert.equal(validations.length, keys.length);
  for (const [i, key] of keys.entries()) {
    const v = validations[i]!;
    // Both presence and value, before (oldObject) and after (object).
    assert.equal(String(v.expression).split(`'${key}' in variables.before`).length, 3, key);
    assert.match(String(v.expression), new RegExp(`'${key}' in variables\\.after`));
    assert.match(String(v.expression), new RegExp(`variables\\.after\\['${key}'\\]`));
    assert.match(String(v.messageExpression), new RegExp(`the annotation ${key}`));
    assert.equal(v.reason, "Forbidden");
  }
  const vars = arr(spec.variables, "variables").map((v) => obj(v, "variable"));
  assert.deepEqual(vars.map((v) => [v.name, String(v.expression).includes("oldObject")]), [
    ["before", true],
    ["after", false],
  ]);
  for (const key of keys) {
    const cond = arr(spec.matchConditions, "matchConditions").map((c) => obj(c, "c").expression);
    assert.ok(cond.some((e) => String(e).includes(`'${key}' in oldObject.metadata.annotations`)));
    assert.ok(cond.some((e) => String(e).includes(`'${key}' in object.metadata.annotations`)));
  }
  assert.ok(
    arr(loadYamlFile("k8s/kustomization.yaml").resources, "resources").includes(
      "annotations-policy.yaml",
    ),
  );
});

Deno.test("the frozen annotations are the ones inject() writes", () => {
  const text = readText("k8s/annotations-policy.yaml");
  for (const key of [CONFIG_ANNOTATION, FILES_ANNOTATION, STATUS_ANNOTATION]) {
    assert.ok(text.includes(`'${key}'`), key);
  }
});
