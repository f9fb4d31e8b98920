import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import { assertInjected } from "../../testing/assert_injected.ts";
import { type Config, defaultConfig, parseConfig } from "../config/mod.ts";
import { memoryLogger } from "../../testing/memory_logger.ts";
import { Metrics } from "../observe/mod.ts";
import { ByteBudget } from "./budget.ts";
import { createHandler, timeoutFromQuery } from "./handler.ts";

const nginx: Pod = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "nginx" },
  spec: { containers: [{ name: "nginx", image: "nginx" }] },
};

function review(
  apiVersion = "admission.k8s.io/v1",
  overrides: Record<string, unknown> = {},
  object: unknown = nginx,
) {
  return {
    apiVersion,
    kind: "AdmissionReview",
    request: {
      uid: "uid-1",
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      operation: "CREATE",
      namespace: "default",
      object,
      ...overrides,
    },
  };
}

function setup(config: Config = defaultConfig(), ready = () => true) {
  const log = memoryLogger();
  const metrics = new Metrics();
  const handler = createHandler({
    config: () => config,
    log,
    metrics,
    now: () => performance.now(),
    ready,
  });
  return { handler, log, metrics, config };
}

function post(
  body: BodyInit | null,
  init: RequestInit = {},
  path = "/mutate?timeout=10s",
): Request {
  return new Request(`https://injector.test${path}`, {
    method: "POST",
    body,
    ...init,
    headers: { "content-type": "application/json", ...init.headers },
  });
}

function decodePatch(patch: string): jsonpatch.Operation[] {
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(patch), (c) => c.charCodeAt(0))));
}

for (const apiVersion of ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]) {
  Deno.test(`handler answers a ${apiVersion} Pod CREATE in the same version with a patch`, async () => {
    const { handler, log, metrics, config } = setup();
    const res = await handler(post(JSON.stringify(review(apiVersion))));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    const body = await res.json();
    assert.equal(body.apiVersion, apiVersion);
    assert.equal(body.kind, "AdmissionReview");
    assert.equal(body.response.uid, "uid-1");
    assert.equal(body.response.allowed, true);
    assert.equal(body.response.patchType, "JSONPatch");
    const pod = assertInjected(nginx, decodePatch(body.response.patch), config);
    assert.equal(pod.spec?.initContainers?.[0]?.name, "fluentd");
    const line = log.lines.find((l) => l.msg === "admission");
    assert.equal(line?.level, "info");
    assert.equal(line?.uid, "uid-1");
    assert.equal(line?.decision, "injected");
    assert.equal(line?.pod, "nginx");
    assert.equal(typeof line?.durationMs, "number");
    assert.match(
      metrics.render(),
      /sidecar_injector_admissions_total\{decision="injected",profile="fluentd"\} 1/,
    );
  });
}

Deno.test("handler allows other operations and kinds unchanged", async () => {
  const { handler, log } = setup();
  const cases = [
    { operation: "UPDATE" },
    { operation: "DELETE", object: null },
    { kind: { group: "apps", version: "v1", kind: "Deployment" }, object: { spec: {} } },
    { kind: { group: "", version: "v1", kind: "Binding" }, subResource: "binding", object: {} },
    { operation: "CONNECT", object: null },
  ];
  for (const c of cases) {
    const res = await handler(post(JSON.stringify(review("admission.k8s.io/v1", c))));
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.deepEqual(body.response, { uid: "uid-1", allowed: true }, JSON.stringify(c));
  }
  assert.ok(log.lines.every((l) => l.msg !== "admission" || l.decision === "skipped"));
  assert.ok(log.lines.some((l) => l.reason === "operation UPDATE"), "skip reason is logged");
});

Deno.test("handler injects pods that have only generateName and the namespace in the request", async () => {
  const { handler } = setup();
  const pod = { metadata: { generateName: "web-7d4b9-" }, spec: { containers: [{ name: "web" }] } };
  const res = await handler(post(JSON.stringify(review("admission.k8s.io/v1", { name: "" }, pod))));
  const body = await res.json();
  assert.equal(body.response.patchType, "JSONPatch");
});

Deno.test("handler treats dryRun requests the same", async () => {
  const { handler, log } = setup();
  const res = await handler(post(JSON.stringify(review("admission.k8s.io/v1", { dryRun: true }))));
  assert.equal((await res.json()).response.patchType, "JSONPatch");
  assert.equal(log.lines.find((l) => l.msg === "admission")?.dryRun, true);
});

Deno.test("handler answers without a patch for excluded namespaces and opted-out pods", async () => {
  const { handler } = setup();
  for (
    const [overrides, object] of [
      [{ namespace: "kube-system" }, nginx],
      [{}, { ...nginx, metadata: { annotations: { "sidecar-injector.io/inject": "false" } } }],
    ] as const
  ) {
    const body =
      await (await handler(post(JSON.stringify(review("admission.k8s.io/v1", overrides, object)))))
        .json();
    assert.deepEqual(body.response, { uid: "uid-1", allowed: true });
  }
});

Deno.test("handler returns admission warnings for collisions and bad annotations", async () => {
  const { handler } = setup();
  const pod = {
    metadata: { annotations: { "sidecar-injector.io/profile": "nope" } },
    spec: { containers: [{ name: "app" }], volumes: [{ name: "app-logs", emptyDir: {} }] },
  };
  const body = await (await handler(post(JSON.stringify(review("admission.k8s.io/v1", {}, pod)))))
    .json();
  assert.equal(body.response.warnings.length, 2);
  assert.match(
    body.response.warnings[0],
    /sidecar-injector.io\/profile="nope" ignored: no such profile/,
  );
  assert.match(body.response.warnings[1], /volume name "app-logs" is already used/);
});

const badInputs: Array<[string, () => Request, number, RegExp]> = [
  ["GET /mutate", () => new Request("https://injector.test/mutate"), 405, /use POST/],
  ["not JSON", () => post("{nope"), 400, /not valid JSON/],
  ["a JSON array", () => post("[]"), 400, /not a JSON object/],
  ["an empty body", () => post(""), 400, /not valid JSON/],
  [
    "wrong kind",
    () => post(JSON.stringify({ ...review(), kind: "Pod" })),
    400,
    /kind must be "AdmissionReview"/,
  ],
  [
    "wrong apiVersion",
    () => post(JSON.stringify(review("admission.k8s.io/v2"))),
    400,
    /apiVersion must be one of/,
  ],
  [
    "no request",
    () => post('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}'),
    400,
    /request is missing/,
  ],
  ["no uid", () => post(JSON.stringify(review(undefined, { uid: "" }))), 400, /request.uid/],
  [
    "a numeric operation",
    () => post(JSON.stringify(review(undefined, { operation: 1 }))),
    400,
    /operation/,
  ],
  [
    "containers as an object",
    () => post(JSON.stringify(review(undefined, {}, { spec: { containers: {} } }))),
    400,
    /request.object.spec.containers must be an array/,
  ],
  [
    "annotations as null values",
    () =>
      post(
        JSON.stringify(
          review(undefined, {}, {
            metadata: { annotations: { a: null } },
            spec: { containers: [] },
          }),
        ),
      ),
    400,
    /annotations\["a"\] must be a string/,
  ],
  [
    "text/plain",
    () => post("{}", { headers: { "content-type": "text/plain" } }),
    415,
    /content-type/,
  ],
  ["invalid UTF-8", () => post(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 400, /UTF-8/],
  ["an unknown path", () => new Request("https://injector.test/nope"), 404, /no route/],
];

for (const [name, make, status, message] of badInputs) {
  Deno.test(`handler answers ${status} for ${name}`, async () => {
    const { handler, log, metrics } = setup();
    const res = await handler(make());
    assert.equal(res.status, status);
    const body = await res.json();
    assert.match(body.error, message);
    assert.ok(!("stack" in body));
    if (status !== 404) {
      assert.equal(log.lines.at(-1)?.level, "warn");
      assert.match(
        metrics.render(),
        new RegExp(`sidecar_injector_errors_total\\{reason="http_${status}"\\} 1`),
      );
    }
  });
}

Deno.test("handler answers 413 for a declared body over 7 MiB without reading it", async () => {
  const { handler } = setup();
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      pulled++;
      c.enqueue(new Uint8Array(1024));
    },
  });
  const res = await handler(post(body, { headers: { "content-length": String(8 * 1024 * 1024) } }));
  assert.equal(res.status, 413);
  assert.ok(pulled <= 1, `read ${pulled} chunks`);
});

Deno.test("handler answers 413 for a streamed body past 7 MiB and stops reading", async () => {
  const { handler } = setup();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      sent += 65536;
      c.enqueue(new Uint8Array(65536));
    },
  });
  const res = await handler(post(body));
  assert.equal(res.status, 413);
  assert.ok(sent <= 7 * 1024 * 1024 + 2 * 65536, `read ${sent} bytes`);
});

Deno.test("handler accepts a body just under the cap", async () => {
  const { handler } = setup();
  const pod = {
    ...nginx,
    metadata: { name: "big", annotations: { big: "x".repeat(7 * 1024 * 1024 - 1024) } },
  };
  const res = await handler(post(JSON.stringify(review(undefined, {}, pod))));
  assert.equal(res.status, 200);
  assert.equal((await res.json()).response.patchType, "JSONPatch");
});

Deno.test("handler survives deeply nested JSON", async () => {
  const { handler } = setup();
  const deep = "[".repeat(1_000_000) + "]".repeat(1_000_000);
  const res = await handler(
    post(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":${deep}}`),
  );
  assert.equal(res.status, 400);
  const ok = await handler(post(JSON.stringify(review())));
  assert.equal(ok.status, 200);
});

Deno.test("handler gives up on a body that does not arrive before the apiserver's timeout", async () => {
  const { handler } = setup();
  const body = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) });
  const started = performance.now();
  const res = await handler(post(body, {}, "/mutate?timeout=300ms"));
  assert.equal(res.status, 408);
  assert.ok(performance.now() - started < 1000);
});

Deno.test("timeoutFromQuery() reads the apiserver's timeout parameter", () => {
  assert.equal(timeoutFromQuery("timeout=10s"), 10_000);
  assert.equal(timeoutFromQuery("a=b&timeout=250ms"), 250);
  assert.equal(timeoutFromQuery("timeout=1m"), 60_000);
  assert.equal(timeoutFromQuery("x=1"), undefined);
});

Deno.test("handler fails open per pod when inject throws, or denies when configured", async () => {
  // A profile whose name is missing makes inject() throw: a stand-in for any internal bug.
  const broken = (onError: "allow" | "deny"): Config => ({
    ...defaultConfig(),
    onError,
    defaultProfile: "missing",
  });
  for (const onError of ["allow", "deny"] as const) {
    const { handler, log } = setup(broken(onError));
    const res = await handler(post(JSON.stringify(review())));
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.response.uid, "uid-1");
    assert.equal(body.response.allowed, onError === "allow");
    assert.equal(body.response.patch, undefined);
    if (onError === "allow") {
      assert.match(body.response.warnings[0], /admitted without the log sidecar/);
    } else assert.match(body.response.status.message, /injection failed/);
    assert.ok(log.lines.some((l) => l.level === "error" && l.msg === "injection failed"));
  }
});

Deno.test("handler serves /healthz, /readyz and /metrics", async () => {
  let ready = false;
  const { handler } = setup(parseConfig(""), () => ready);
  assert.equal((await handler(new Request("https://x/healthz"))).status, 200);
  assert.equal((await handler(new Request("https://x/readyz"))).status, 503);
  ready = true;
  assert.equal((await handler(new Request("https://x/readyz"))).status, 200);
  const metrics = await handler(new Request("https://x/metrics"));
  assert.match(metrics.headers.get("content-type") ?? "", /text\/plain/);
  assert.match(await metrics.text(), /# TYPE sidecar_injector_request_duration_seconds histogram/);
});

Deno.test("handler picks up a new config without restarting", async () => {
  let config = defaultConfig();
  const handler = createHandler({
    config: () => config,
    log: memoryLogger(),
    metrics: new Metrics(),
    now: () => 0,
  });
  const first = await (await handler(post(JSON.stringify(review())))).json();
  config = parseConfig("defaultProfile: fluent-bit");
  const second = await (await handler(post(JSON.stringify(review())))).json();
  assert.match(atob(first.response.patch), /"name":"fluentd"/);
  assert.match(atob(second.response.patch), /"name":"fluent-bit"/);
});

Deno.test("handler answers 503 beyond maxInFlight and logs it once per second", async () => {
  const log = memoryLogger();
  const metrics = new Metrics();
  const handler = createHandler({
    config: defaultConfig,
    log,
    metrics,
    now: () => performance.now(),
    maxInFlight: 1,
  });
  let release = () => {};
  const held = new ReadableStream<Uint8Array>({
    start(c) {
      release = () => {
        c.enqueue(new TextEncoder().encode(JSON.stringify(review())));
        c.close();
      };
    },
  });
  const first = handler(post(held));
  const second = await handler(post(JSON.stringify(review())));
  const third = await handler(post(JSON.stringify(review())));
  assert.equal(second.status, 503);
  assert.equal(second.headers.get("retry-after"), "1");
  assert.equal(third.status, 503);
  assert.equal(
    log.lines.filter((l) => l.msg === "in-flight limit reached; answering 503").length,
    1,
  );
  assert.match(metrics.render(), /sidecar_injector_errors_total\{reason="in_flight_limit"\} 2/);
  release();
  assert.equal((await first).status, 200);
  assert.equal((await handler(post(JSON.stringify(review())))).status, 200, "capacity is released");
});

Deno.test("handler keeps a burst of large reviews within the memory budget: waits, then 503", async () => {
  let t = 0;
  const log = memoryLogger();
  const metrics = new Metrics();
  const budget = new ByteBudget(1024 * 1024);
  const handler = createHandler({ config: defaultConfig, log, metrics, now: () => t, budget });
  const big = {
    ...nginx,
    metadata: { name: "big", annotations: { template: "x".repeat(380_000) } },
  };
  const text = new TextEncoder().encode(JSON.stringify(review(undefined, {}, big)));
  // Each body arrives only when released, so whoever holds budget keeps it.
  const releases: Array<() => void> = [];
  const held = (timeout: string) =>
    post(
      new ReadableStream<Uint8Array>({
        start(c) {
          releases.push(() => {
            c.enqueue(text);
            c.close();
          });
        },
      }),
      { headers: { "content-length": String(text.byteLength) } },
      `/mutate?timeout=${timeout}`,
    );
  // The first three may wait 30 s, the others 1 s.
  const burst = Array.from({ length: 10 }, (_, i) => handler(held(i < 3 ? "30s" : "1s")));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(budget.used, 2 * text.byteLength, "two ~390 KB reviews fit in 1 MiB");
  assert.equal(budget.waiting, 8, "the others wait, unread");

  // Room frees before the deadline: the next in line gets in, the rest keep waiting.
  releases[0]!();
  assert.equal((await burst[0]!).status, 200);
  assert.equal(budget.waiting, 7);

  // The deadline (1 s less the margin) passes: those still waiting get a 503.
  t = 1000;
  const late = await Promise.all(burst.slice(3));
  for (const res of late) {
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.match((await res.json()).error, /memory budget/);
  }
  for (const release of releases.slice(1, 3)) release();
  assert.deepEqual(
    await Promise.all(burst.slice(1, 3).map(async (r) => (await r).status)),
    [200, 200],
  );
  assert.ok(budget.peak <= budget.capacity, `peak ${budget.peak} > ${budget.capacity}`);
  assert.equal(budget.used, 0, "every reservation is released");
  assert.match(metrics.render(), /sidecar_injector_errors_total\{reason="memory_budget"\} 7/);
  assert.equal(log.lines.filter((l) => /memory budget exhausted/.test(l.msg)).length, 1);
});

Deno.test("handler lets a review larger than the whole budget through when it is alone", async () => {
  const budget = new ByteBudget(100);
  const handler = createHandler({
    config: defaultConfig,
    log: memoryLogger(),
    metrics: new Metrics(),
    now: () => performance.now(),
    budget,
  });
  const body = JSON.stringify(review());
  assert.ok(body.length > 100);
  const res = await handler(post(body, { headers: { "content-length": String(body.length) } }));
  assert.equal(res.status, 200);
  assert.equal(budget.peak, 100);
});
