import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { load } from "js-yaml";
import type { ContainerStatus, Pod } from "kubernetes-types/core/v1.d.ts";
import { type Config, defaultConfig, parseConfig, withExcludedNamespace } from "../config/mod.ts";
import { inject, STATUS_ANNOTATION } from "../inject/mod.ts";
import { assertPod } from "../inject/mod.ts";
import { auditPod, BLOCKED_RESTARTS, type PodContext, statusOf } from "./audit.ts";

const testdata = new URL("../../testdata/", import.meta.url);

function fixture(name: string): Pod {
  const doc: unknown = load(Deno.readTextFileSync(new URL(`pods/${name}`, testdata)));
  assertPod(doc);
  return doc;
}

/** The pod as the webhook would have stored it under `config`. */
function injected(pod: Pod, config: Config = defaultConfig(), namespace = "shop"): Pod {
  const result = inject(pod, config, { namespace });
  assert.equal(result.decision, "injected");
  return jsonpatch.applyPatch(structuredClone(pod), result.patch, true, false).newDocument;
}

const ctx = (extra: Partial<PodContext> = {}): PodContext => ({
  config: defaultConfig(),
  namespace: "shop",
  sentToWebhook: true,
  ...extra,
});

const NEW_IMAGE = parseConfig("profiles:\n  fluentd:\n    image: fluent/fluentd:v1.18-1\n", "cfg");

Deno.test("auditPod(): a pod the webhook would inject but did not is escaped", () => {
  const f = auditPod(fixture("nginx.yaml"), ctx());
  assert.equal(f?.problem, "escaped");
  assert.equal(f?.namespace, "shop");
  assert.equal(f?.pod, "nginx");
  assert.match(f?.reason ?? "", /no sidecar-injector\.io\/status: admitted without the webhook/);
});

Deno.test("auditPod(): the pods inject() skips are never reported", () => {
  assert.equal(auditPod(fixture("opted-out.yaml"), ctx()), undefined, "opted out");
  assert.equal(auditPod(fixture("nginx.yaml"), ctx({ namespace: "kube-system" })), undefined);
  const own = withExcludedNamespace(defaultConfig(), "sidecar-injector");
  assert.equal(
    auditPod(fixture("nginx.yaml"), ctx({ config: own, namespace: "sidecar-injector" })),
    undefined,
    "the injector's own namespace",
  );
  const windows = fixture("nginx.yaml");
  windows.spec = { ...windows.spec!, os: { name: "windows" } };
  assert.equal(auditPod(windows, ctx()), undefined, "Windows pod");
  const classicJob = fixture("job-pod.yaml");
  const classic = parseConfig("mode: classic\n", "cfg");
  assert.equal(
    auditPod(classicJob, ctx({ config: classic })),
    undefined,
    "classic run-to-completion",
  );
  assert.equal(auditPod(classicJob, ctx())?.problem, "escaped", "native mode injects Job pods");
});

Deno.test("auditPod(): a pod the webhook's selectors never send is not escaped", () => {
  assert.equal(auditPod(fixture("nginx.yaml"), ctx({ sentToWebhook: false })), undefined);
});

Deno.test("auditPod(): a pod older than the webhook registration says so", () => {
  const pod = fixture("nginx.yaml");
  pod.metadata = { ...pod.metadata, creationTimestamp: "2026-01-01T00:00:00Z" };
  const f = auditPod(pod, ctx({ webhookCreated: "2026-02-01T00:00:00Z" }));
  assert.equal(f?.problem, "escaped");
  assert.match(f?.reason ?? "", /before the webhook was registered \(2026-02-01T00:00:00Z\)/);
  const later = auditPod(pod, ctx({ webhookCreated: "2025-12-01T00:00:00Z" }));
  assert.match(later?.reason ?? "", /admitted without the webhook/);
});

Deno.test("auditPod(): an injected pod is fine under the config that injected it", () => {
  assert.equal(auditPod(injected(fixture("nginx.yaml")), ctx()), undefined);
  assert.equal(auditPod(injected(fixture("collisions.yaml")), ctx()), undefined, "renamed agent");
  // Selectors and opt-outs do not matter once a pod is injected: it ships logs.
  assert.equal(auditPod(injected(fixture("nginx.yaml")), ctx({ sentToWebhook: false })), undefined);
});

Deno.test("auditPod(): another agent image in the config is drift, per pod annotation too", () => {
  const f = auditPod(injected(fixture("nginx.yaml")), ctx({ config: NEW_IMAGE }));
  assert.equal(f?.problem, "drifted");
  assert.equal(
    f?.reason,
    "agent image fluent/fluentd:v1.17-1, current config: fluent/fluentd:v1.18-1",
  );
  // A pod that picked its own image keeps it: the config change is no drift for it.
  const own = fixture("nginx.yaml");
  own.metadata!.annotations = { "sidecar-injector.io/image": "example.com/fluentd:9" };
  assert.equal(auditPod(injected(own), ctx({ config: NEW_IMAGE })), undefined);
});

Deno.test("auditPod(): a changed default profile is drift", () => {
  const bit = parseConfig("defaultProfile: fluent-bit\n", "cfg");
  const f = auditPod(injected(fixture("nginx.yaml")), ctx({ config: bit }));
  assert.equal(f?.problem, "drifted");
  assert.match(f?.reason ?? "", /profile fluentd, current config: fluent-bit/);
  assert.match(
    f?.reason ?? "",
    /agent image fluent\/fluentd:v1\.17-1, current config: fluent\/fluent-bit/,
  );
});

Deno.test("auditPod(): the legacy injector, an old or unreadable status are drift", () => {
  assert.match(auditPod(fixture("legacy-injected.yaml"), ctx())?.reason ?? "", /legacy injector/);
  const pod = injected(fixture("nginx.yaml"));
  const status = JSON.parse(pod.metadata!.annotations![STATUS_ANNOTATION]!);
  pod.metadata!.annotations![STATUS_ANNOTATION] = JSON.stringify({ ...status, version: 0 });
  assert.equal(auditPod(pod, ctx())?.reason, "injector status version 0, current 1");
  pod.metadata!.annotations![STATUS_ANNOTATION] = "{not json";
  assert.equal(auditPod(pod, ctx())?.reason, "status annotation unreadable (not JSON)");
});

Deno.test("auditPod(): a status annotation without its agent container is escaped", () => {
  // already-injected.yaml carries the annotation only: copied metadata, no agent.
  const f = auditPod(fixture("already-injected.yaml"), ctx());
  assert.equal(f?.problem, "escaped");
  assert.match(f?.reason ?? "", /names agent container fluentd, which the pod does not have/);
});

Deno.test("auditPod(): names the controlling owner", () => {
  const pod = fixture("nginx.yaml");
  pod.metadata!.ownerReferences = [
    { apiVersion: "v1", kind: "Other", name: "x", uid: "1" },
    { apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-5d4", uid: "2", controller: true },
  ];
  assert.equal(auditPod(pod, ctx())?.owner, "ReplicaSet/web-5d4");
});

Deno.test("statusOf() reads the status from each form of the patch", () => {
  for (
    const pod of [
      { spec: { containers: [{ name: "a" }] } },
      fixture("nginx.yaml"),
      fixture("with-volumes.yaml"),
    ]
  ) {
    const result = inject(pod, defaultConfig(), { namespace: "shop" });
    const out: Pod =
      jsonpatch.applyPatch(structuredClone(pod), result.patch, true, false).newDocument;
    assert.equal(statusOf(result), out.metadata?.annotations?.[STATUS_ANNOTATION]);
    assert.ok(statusOf(result));
  }
  assert.equal(statusOf(inject(fixture("opted-out.yaml"), defaultConfig())), undefined);
});

/** `pod` with the kubelet's status of its agent container `fluentd` (native: an init container). */
function withAgentStatus(pod: Pod, status: Partial<ContainerStatus>, list = "init"): Pod {
  const agent: ContainerStatus = {
    name: "fluentd",
    image: "fluent/fluentd:v1.17-1",
    imageID: "",
    ready: false,
    restartCount: 0,
    ...status,
  };
  const app: ContainerStatus = {
    name: "nginx",
    image: "nginx",
    imageID: "",
    ready: false,
    restartCount: 0,
    state: { waiting: { reason: "PodInitializing" } },
  };
  return {
    ...pod,
    status: list === "init"
      ? { phase: "Pending", initContainerStatuses: [agent], containerStatuses: [app] }
      : { phase: "Running", containerStatuses: [app, agent] },
  };
}

Deno.test("auditPod(): an agent that cannot pull its image is blocked, with the kubelet's reason", () => {
  for (const reason of ["ImagePullBackOff", "ErrImagePull"]) {
    const pod = withAgentStatus(injected(fixture("nginx.yaml")), {
      state: {
        waiting: { reason, message: 'Back-off pulling image "fluent/fluentd:v9-typo"' },
      },
    });
    const f = auditPod(pod, ctx());
    assert.equal(f?.problem, "blocked", reason);
    assert.equal(
      f?.reason,
      `agent container fluentd waiting: ${reason}: Back-off pulling image ` +
        '"fluent/fluentd:v9-typo"; the app containers cannot start until it runs',
    );
  }
});

Deno.test("auditPod(): crash loops, config errors and repeated restarts are blocked; a healthy agent is not", () => {
  const pod = injected(fixture("nginx.yaml"));
  const crash = auditPod(
    withAgentStatus(pod, {
      restartCount: 3,
      state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 40s" } },
    }),
    ctx(),
  );
  assert.equal(crash?.problem, "blocked");
  assert.match(
    crash?.reason ?? "",
    /waiting: CrashLoopBackOff: back-off 40s \(restarted 3 times\)/,
  );
  const config = auditPod(
    withAgentStatus(pod, {
      state: {
        waiting: { reason: "CreateContainerConfigError", message: 'secret "ca" not found' },
      },
    }),
    ctx(),
  );
  assert.match(config?.reason ?? "", /CreateContainerConfigError: secret "ca" not found/);
  const restarts = auditPod(
    withAgentStatus(pod, {
      restartCount: BLOCKED_RESTARTS,
      started: true,
      state: { running: { startedAt: "2026-12-04T05:00:00Z" } },
      lastState: {
        terminated: { exitCode: 137, reason: "OOMKilled", finishedAt: "2026-12-04T04:59:50Z" },
      },
    }),
    ctx(),
  );
  assert.equal(restarts?.problem, "blocked");
  assert.equal(
    restarts?.reason,
    `agent container fluentd restarting repeatedly: restarted ${BLOCKED_RESTARTS} times; ` +
      "last exit 137 (OOMKilled) at 2026-12-04T04:59:50Z",
  );
  // Below the threshold, starting up, running, or waiting for another reason: not blocked.
  for (
    const status of [
      { restartCount: BLOCKED_RESTARTS - 1, state: { running: {} } },
      { state: { waiting: { reason: "ContainerCreating" } } },
      { state: { running: { startedAt: "2026-12-04T05:00:00Z" } }, ready: true },
      {},
    ]
  ) {
    assert.equal(auditPod(withAgentStatus(pod, status), ctx()), undefined, JSON.stringify(status));
  }
  assert.equal(auditPod(pod, ctx()), undefined, "no status yet (not scheduled)");
});

Deno.test("auditPod(): a classic-mode agent is found among the regular containers", () => {
  const classic = parseConfig("mode: classic\n", "cfg");
  const pod = injected(fixture("nginx.yaml"), classic);
  const status = JSON.parse(pod.metadata!.annotations![STATUS_ANNOTATION]!);
  assert.equal(status.mode, "classic");
  const f = auditPod(
    withAgentStatus(pod, { state: { waiting: { reason: "ImagePullBackOff" } } }, "regular"),
    ctx({ config: classic }),
  );
  assert.equal(f?.problem, "blocked");
  assert.equal(f?.reason, "agent container fluentd waiting: ImagePullBackOff");
  // Another container of the same name in the other list is not the agent's status.
  const wrongList = withAgentStatus(pod, { state: { waiting: { reason: "ImagePullBackOff" } } });
  assert.equal(auditPod(wrongList, ctx({ config: classic })), undefined);
});

Deno.test("auditPod(): a blocked agent with an outdated image says both, blocked first", () => {
  const pod = withAgentStatus(injected(fixture("nginx.yaml")), {
    state: { waiting: { reason: "ImagePullBackOff" } },
  });
  const f = auditPod(pod, ctx({ config: NEW_IMAGE }));
  assert.equal(f?.problem, "blocked");
  assert.equal(
    f?.reason,
    "agent container fluentd waiting: ImagePullBackOff; the app containers cannot start until " +
      "it runs; drifted: agent image fluent/fluentd:v1.17-1, current config: fluent/fluentd:v1.18-1",
  );
});
