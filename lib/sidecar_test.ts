import assert from "node:assert/strict";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import { assertInjected } from "../testing/assert_injected.ts";
import { type Config, defaultConfig, parseConfig } from "./config.ts";
import { inject } from "./inject.ts";
import { fluentBitArgs, fluentdConfig } from "./sidecar.ts";

function pod(annotations: Record<string, string> = {}, containers = ["app"]): Pod {
  return {
    metadata: { name: "p", annotations },
    spec: { containers: containers.map((name) => ({ name, image: "busybox" })) },
  };
}

function injected(p: Pod, config: Config = defaultConfig()) {
  const result = inject(p, config, { namespace: "default" });
  const names = new Set(p.spec?.containers.map((c) => c.name));
  const targets = p.metadata?.annotations?.["sidecar-injector.io/containers"]
    ?.split(",").map((s) => s.trim()).filter((n) => names.has(n));
  const out = assertInjected(p, result.patch, config, targets?.length ? { targets } : {});
  const sidecar = [...(out.spec?.containers ?? []), ...(out.spec?.initContainers ?? [])].find((c) =>
    c.name === JSON.parse(out.metadata?.annotations?.["sidecar-injector.io/status"] ?? "{}").sidecar
  );
  assert.ok(sidecar);
  return { result, out, sidecar };
}

Deno.test("fluent-bit profile runs fluent-bit with a tail input on the log dir", () => {
  const { sidecar, result } = injected(pod({ "sidecar-injector.io/profile": "fluent-bit" }));
  assert.equal(result.profile, "fluent-bit");
  assert.equal(sidecar.name, "fluent-bit");
  assert.equal(sidecar.image, "fluent/fluent-bit:3.2");
  assert.deepEqual(sidecar.command, ["/fluent-bit/bin/fluent-bit"]);
  assert.deepEqual(sidecar.args?.slice(0, 4), [
    "-i",
    "tail",
    "-p",
    "path=/var/log/app/*.log,/var/log/app/*/*.log",
  ]);
  assert.ok(sidecar.args?.includes("stdout"));
  assert.equal(sidecar.securityContext?.readOnlyRootFilesystem, true);
});

Deno.test("fluentdConfig() renders stdout, forward and raw outputs", () => {
  assert.match(
    fluentdConfig("/logs", { type: "stdout" }),
    /<match app\.\*\*>\n {2}@type stdout\n<\/match>$/,
  );
  const fwd = fluentdConfig("/logs", { type: "forward", host: "agg.logging", port: 24224 });
  assert.match(fwd, /@type forward\n {2}<server>\n {4}host agg\.logging\n {4}port 24224/);
  assert.match(fwd, /path \/logs\/\*\.log,\/logs\/\*\*\/\*\.log/);
  const raw = fluentdConfig("/logs", {
    type: "raw",
    config: "<match app.**>\n  @type null\n</match>",
  });
  assert.match(raw, /@type null\n<\/match>$/);
});

Deno.test("fluentBitArgs() renders a forward output", () => {
  const args = fluentBitArgs("/logs", { type: "forward", host: "agg", port: 24240 });
  assert.deepEqual(args.slice(-10), [
    "-o",
    "forward",
    "-p",
    "match=*",
    "-p",
    "host=agg",
    "-p",
    "port=24240",
    "-f",
    "1",
  ]);
});

Deno.test("a profile with configMap mounts it and keeps the image's own entrypoint", () => {
  const config = parseConfig("profiles: { fluentd: { configMap: fluentd-config } }");
  const { out, sidecar } = injected(pod(), config);
  assert.equal(sidecar.command, undefined);
  assert.equal(sidecar.args, undefined);
  assert.deepEqual(out.spec?.volumes?.[1], {
    name: "app-logs-config",
    configMap: { name: "fluentd-config" },
  });
  assert.deepEqual(sidecar.volumeMounts?.[1], {
    name: "app-logs-config",
    mountPath: "/fluentd/etc",
  });
});

Deno.test("profile env is added after the downward-API variables and may override them", () => {
  const config = parseConfig(
    "profiles: { fluentd: { env: [{ name: POD_NAME, value: fixed }, { name: X, value: y }] } }",
  );
  const { sidecar } = injected(pod(), config);
  assert.deepEqual(sidecar.env?.map((e) => e.name), [
    "POD_NAMESPACE",
    "NODE_NAME",
    "POD_NAME",
    "X",
  ]);
});

// Per-pod annotations: valid values take effect, invalid ones warn and fall back.
const valid: Array<[string, string, (s: ReturnType<typeof injected>) => void]> = [
  ["image", "registry.example.com/fluentd:custom", ({ sidecar }) => {
    assert.equal(sidecar.image, "registry.example.com/fluentd:custom");
  }],
  ["log-dir", "/srv/logs", ({ out, sidecar }) => {
    assert.equal(out.spec?.containers[0]?.volumeMounts?.[0]?.mountPath, "/srv/logs");
    assert.equal(sidecar.volumeMounts?.[0]?.mountPath, "/srv/logs");
    assert.match(sidecar.args?.[3] ?? "", /path \/srv\/logs\/\*\.log/);
  }],
  ["cpu-request", "50m", ({ sidecar, result }) => {
    assert.equal(sidecar.resources?.requests?.cpu, "50m");
    assert.deepEqual(result.warnings, []);
  }],
  ["cpu-request", "500m", ({ sidecar, result }) => {
    assert.equal(sidecar.resources?.requests?.cpu, "500m");
    assert.equal(sidecar.resources?.limits?.cpu, "500m", "limit raised to stay >= request");
    assert.match(result.warnings[0] ?? "", /cpu limit raised to 500m/);
  }],
  ["memory-limit", "512Mi", ({ sidecar }) => {
    assert.equal(sidecar.resources?.limits?.memory, "512Mi");
    assert.equal(sidecar.resources?.requests?.memory, "64Mi");
  }],
  ["memory-limit", "32Mi", ({ sidecar, result }) => {
    assert.equal(sidecar.resources?.limits?.memory, "32Mi");
    assert.equal(sidecar.resources?.requests?.memory, "32Mi", "request lowered to stay <= limit");
    assert.match(result.warnings[0] ?? "", /memory request lowered to 32Mi/);
  }],
  ["inject", "true", ({ result }) => assert.equal(result.decision, "injected")],
  ["profile", "fluentd", ({ result }) => assert.equal(result.profile, "fluentd")],
];

for (const [name, value, check] of valid) {
  Deno.test(`annotation sidecar-injector.io/${name}=${value} takes effect`, () => {
    check(injected(pod({ [`sidecar-injector.io/${name}`]: value })));
  });
}

Deno.test("annotation sidecar-injector.io/containers limits which containers get the mount", () => {
  const { out, result } = injected(
    pod({ "sidecar-injector.io/containers": "web, worker" }, ["web", "worker", "proxy"]),
  );
  const mounted = out.spec?.containers.filter((c) => c.volumeMounts?.length).map((c) => c.name);
  assert.deepEqual(mounted, ["web", "worker"]);
  assert.ok(out.spec?.initContainers?.[0]?.volumeMounts?.length, "the agent mounts it too");
  assert.deepEqual(result.warnings, []);
});

const invalid: Array<[string, string, RegExp, (s: ReturnType<typeof injected>) => void]> = [
  [
    "profile",
    "logstash",
    /profile="logstash" ignored: no such profile \(have: fluentd, fluent-bit\)/,
    ({ result }) => {
      assert.equal(result.profile, "fluentd");
    },
  ],
  [
    "image",
    "not an image",
    /image="not an image" ignored: must be an image reference/,
    ({ sidecar }) => {
      assert.equal(sidecar.image, "fluent/fluentd:v1.17-1");
    },
  ],
  ["log-dir", "relative", /log-dir="relative" ignored: must be an absolute path/, ({ sidecar }) => {
    assert.equal(sidecar.volumeMounts?.[0]?.mountPath, "/var/log/app");
  }],
  ["log-dir", "/var/../etc", /ignored: must not contain \. or \.\. segments/, () => {}],
  [
    "cpu-request",
    "fast",
    /cpu-request="fast" ignored: must be a Kubernetes quantity/,
    ({ sidecar }) => {
      assert.equal(sidecar.resources?.requests?.cpu, "20m");
    },
  ],
  [
    "memory-limit",
    "-1Gi",
    /memory-limit="-1Gi" ignored: must be a Kubernetes quantity/,
    ({ sidecar }) => {
      assert.equal(sidecar.resources?.limits?.memory, "256Mi");
    },
  ],
  [
    "inject",
    "maybe",
    /inject="maybe" ignored: must be "true" or "false"; injecting/,
    ({ result }) => {
      assert.equal(result.decision, "injected");
    },
  ],
  ["containers", "ghost", /containers="ghost" ignored: no container named ghost/, ({ out }) => {
    assert.equal(out.spec?.containers[0]?.volumeMounts?.length, 1, "falls back to all containers");
  }],
];

for (const [name, value, message, check] of invalid) {
  Deno.test(`annotation sidecar-injector.io/${name}=${JSON.stringify(value)} warns and uses the default`, () => {
    const s = injected(pod({ [`sidecar-injector.io/${name}`]: value }));
    assert.equal(s.result.decision, "injected", "the pod is still admitted with the sidecar");
    assert.match(s.result.warnings.join("\n"), message);
    check(s);
  });
}
