import assert from "node:assert/strict";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import { assertInjected } from "../../testing/assert_injected.ts";
import { type Config, defaultConfig, parseConfig } from "../config/mod.ts";
import { inject } from "../inject/mod.ts";

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

const CONFIG = "sidecar-injector.io/agent-config";

Deno.test("fluent-bit profile runs fluent-bit on the config its annotation carries", () => {
  const { sidecar, result, out } = injected(pod({ "sidecar-injector.io/profile": "fluent-bit" }));
  assert.equal(result.profile, "fluent-bit");
  assert.equal(sidecar.name, "fluent-bit");
  assert.equal(sidecar.image, "fluent/fluent-bit:5.1.1");
  assert.deepEqual(sidecar.command, ["/fluent-bit/bin/fluent-bit"]);
  assert.deepEqual(sidecar.args, ["-c", "/fluent-bit/etc/fluent-bit.conf"]);
  const config = out.metadata?.annotations?.[CONFIG] ?? "";
  assert.match(config, /Path +\/var\/log\/app\/\*\.log,\/var\/log\/app\/\*\/\*\.log,/);
  assert.match(config, /Name +stdout\n {4}Match +app\n {4}Format +json_lines/);
  assert.equal(sidecar.securityContext?.readOnlyRootFilesystem, true);
  assert.deepEqual(out.spec?.volumes?.find((v) => v.name === "app-logs-config")?.downwardAPI, {
    items: [{
      path: "fluent-bit.conf",
      fieldRef: { fieldPath: `metadata.annotations['${CONFIG}']` },
    }],
  });
});

Deno.test("fluentd runs from sh with a private temp dir, its own log on stderr, read-only root", () => {
  const { sidecar } = injected(pod());
  assert.deepEqual(sidecar.command, ["sh", "-c"]);
  assert.deepEqual(sidecar.args, [
    'mkdir -p -m 0700 "$TMPDIR" && exec fluentd -c /fluentd/etc/fluent.conf -p /fluentd/etc/plugin -o /dev/stderr',
  ]);
  const env = Object.fromEntries(sidecar.env?.map((e) => [e.name, e.value]) ?? []);
  assert.equal(env.TMPDIR, "/var/lib/sidecar-injector/tmp");
  assert.equal(env.SERVERENGINE_SOCKETMANAGER_SOCK_DIR, "/var/lib/sidecar-injector/tmp");
  assert.equal(sidecar.securityContext?.readOnlyRootFilesystem, true);
});

Deno.test("the agent's positions and buffers live on its own size-limited emptyDir", () => {
  const { sidecar, out } = injected(pod());
  const volumes = Object.fromEntries(out.spec?.volumes?.map((v) => [v.name, v]) ?? []);
  assert.deepEqual(volumes["app-logs"]?.emptyDir, { sizeLimit: "1Gi" });
  assert.deepEqual(volumes["app-logs-state"]?.emptyDir, { sizeLimit: "288Mi" });
  assert.deepEqual(sidecar.volumeMounts, [
    { name: "app-logs", mountPath: "/var/log/app", readOnly: true },
    { name: "app-logs-state", mountPath: "/var/lib/sidecar-injector" },
    { name: "app-logs-config", mountPath: "/fluentd/etc", readOnly: true },
  ]);
  assert.equal(sidecar.resources?.requests?.["ephemeral-storage"], "288Mi");
  const config = out.metadata?.annotations?.[CONFIG] ?? "";
  assert.match(config, /pos_file \/var\/lib\/sidecar-injector\/tail\.pos/);
  assert.match(config, /@type file\n {4}path \/var\/lib\/sidecar-injector\/buffer/);
  assert.match(config, /total_limit_size 256m/);
});

Deno.test("the agent runs as the app's user and group, else as nobody", () => {
  const base = pod();
  assert.equal(injected(base).sidecar.securityContext?.runAsUser, 65534);
  const podLevel: Pod = {
    ...base,
    spec: { ...base.spec!, securityContext: { runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000 } },
  };
  const { sidecar } = injected(podLevel);
  assert.equal(sidecar.securityContext?.runAsUser, 1000);
  assert.equal(sidecar.securityContext?.runAsGroup, 3000);
  const two: Pod = {
    metadata: { name: "p" },
    spec: {
      containers: [
        { name: "a", securityContext: { runAsUser: 1001 } },
        { name: "b", securityContext: { runAsUser: 1002, runAsGroup: 7 } },
      ],
    },
  };
  const r = injected(two);
  assert.equal(r.sidecar.securityContext?.runAsUser, 1001);
  assert.equal(r.sidecar.securityContext?.runAsGroup, 65534);
  assert.match(r.result.warnings.join("\n"), /different users \(1001, 1002\)/);
  const root: Pod = {
    metadata: { name: "p" },
    spec: { containers: [{ name: "a", securityContext: { runAsUser: 0 } }] },
  };
  assert.equal(injected(root).sidecar.securityContext?.runAsUser, 65534);
});

Deno.test("records name the container: the only one, or the one a file or directory is named after", () => {
  const one = injected(pod()).out.metadata?.annotations?.[CONFIG] ?? "";
  assert.match(
    one,
    /<filter app\.\*\*>\n {2}@type record_transformer\n {2}<record>\n {4}container app\n/,
  );
  const two = injected(pod({}, ["web", "worker"])).out.metadata?.annotations?.[CONFIG] ?? "";
  assert.match(two, /enable_ruby true/);
  assert.ok(
    two.includes(
      'container ${record["file"].to_s.match?(/^\\/var\\/log\\/app\\/web(\\.log$|\\/)/) ? "web" : ' +
        'record["file"].to_s.match?(/^\\/var\\/log\\/app\\/worker(\\.log$|\\/)/) ? "worker" : record["file"]}',
    ),
    two,
  );
  const bit = injected(pod({ "sidecar-injector.io/profile": "fluent-bit" }, ["web", "worker"]));
  const text = bit.out.metadata?.annotations?.[CONFIG] ?? "";
  assert.match(
    text,
    /Condition +Key_value_matches file \^\/var\/log\/app\/web\(\\\.log\$\|\/\)\n {4}Set +container web/,
  );
  assert.match(text, /Copy +file container/);
  const alone = injected(pod({ "sidecar-injector.io/profile": "fluent-bit" }));
  const single = alone.out.metadata?.annotations?.[CONFIG] ?? "";
  assert.match(single, /Record +container app/);
  assert.doesNotMatch(single, /Copy +file container/);
});

Deno.test("forward output: acks, retries forever, starts while the aggregator is away, optional TLS", () => {
  const config = parseConfig(
    "profiles:\n  fluentd: { output: { type: forward, host: agg.logging, tls: true, caSecret: agg-ca } }\n" +
      "  fluent-bit: { output: { type: forward, host: agg.logging, port: 24240 } }\n",
  );
  const fd = injected(pod(), config);
  const text = fd.out.metadata?.annotations?.[CONFIG] ?? "";
  for (
    const want of [
      /require_ack_response true/,
      /ignore_network_errors_at_startup true/,
      /retry_forever true/,
      /flush_interval 1s/,
      /transport tls/,
      /tls_cert_path \/etc\/sidecar-injector\/forward-ca\/ca\.crt/,
      /host agg\.logging\n {4}port 24224/,
      /<buffer tag>/,
    ]
  ) assert.match(text, want);
  assert.deepEqual(fd.out.spec?.volumes?.find((v) => v.name === "app-logs-ca")?.secret, {
    secretName: "agg-ca",
    items: [{ key: "ca.crt", path: "ca.crt" }],
  });
  const fb = injected(pod({ "sidecar-injector.io/profile": "fluent-bit" }), config);
  const bit = fb.out.metadata?.annotations?.[CONFIG] ?? "";
  for (const want of [/Retry_Limit +no_limits/, /Port +24240/, /storage\.type +filesystem/]) {
    assert.match(bit, want);
  }
  assert.doesNotMatch(bit, /tls/);
});

Deno.test("raw output replaces the match block after the injector's input and filters", () => {
  const config = parseConfig(
    'profiles: { fluentd: { output: { type: raw, config: "<match app.**>\\n  @type null\\n</match>" } } }',
  );
  const text = injected(pod(), config).out.metadata?.annotations?.[CONFIG] ?? "";
  assert.match(text, /^<source>\n {2}@type tail/);
  assert.match(text, /@type null\n<\/match>$/);
});

Deno.test("a profile with configMap mounts it where the agent reads its config", () => {
  const config = parseConfig("profiles: { fluentd: { configMap: fluentd-config } }");
  const { out, sidecar } = injected(pod(), config);
  assert.equal(out.metadata?.annotations?.[CONFIG], undefined);
  assert.deepEqual(
    out.spec?.volumes?.find((v) => v.name === "app-logs-config")?.configMap,
    { name: "fluentd-config" },
  );
  assert.deepEqual(sidecar.volumeMounts?.[2], {
    name: "app-logs-config",
    mountPath: "/fluentd/etc",
    readOnly: true,
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
    "TMPDIR",
    "SERVERENGINE_SOCKETMANAGER_SOCK_DIR",
    "AGENT_METRICS_PORT",
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
    assert.match(out.metadata?.annotations?.[CONFIG] ?? "", /path \/srv\/logs\/\*\*\/\*\.log/);
  }],
  ["cpu-request", "50m", ({ sidecar, result }) => {
    assert.equal(sidecar.resources?.requests?.cpu, "50m");
    assert.deepEqual(result.warnings, []);
  }],
  ["cpu-request", "800m", ({ sidecar, result }) => {
    assert.equal(sidecar.resources?.requests?.cpu, "800m");
    assert.equal(sidecar.resources?.limits?.cpu, "800m", "limit raised to stay >= request");
    assert.match(result.warnings[0] ?? "", /cpu limit raised to 800m/);
  }],
  ["memory-limit", "512Mi", ({ sidecar }) => {
    assert.equal(sidecar.resources?.limits?.memory, "512Mi");
    assert.equal(sidecar.resources?.requests?.memory, "96Mi");
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

Deno.test("the parser annotation picks a parser; a bad or unsupported one is warned about and ignored", () => {
  const json = injected(pod({ "sidecar-injector.io/parser": "json" }));
  assert.match(json.out.metadata?.annotations?.[CONFIG] ?? "", / {2}parser json\n/);
  assert.deepEqual(json.result.warnings, []);
  const java = injected(pod({ "sidecar-injector.io/parser": "java" }));
  assert.match(java.out.metadata?.annotations?.[CONFIG] ?? "", /@type multiline/);
  const bad = injected(pod({ "sidecar-injector.io/parser": "xml" }));
  assert.match(bad.result.warnings.join("\n"), /parser="xml" ignored: must be one of none, json/);
  assert.match(bad.out.metadata?.annotations?.[CONFIG] ?? "", /@type none/);
  const bit = injected(
    pod({ "sidecar-injector.io/profile": "fluent-bit", "sidecar-injector.io/parser": "go" }),
  );
  assert.match(bit.result.warnings.join("\n"), /agent fluent-bit cannot run parser go/);
  assert.doesNotMatch(bit.out.metadata?.annotations?.[CONFIG] ?? "", /Parsers_File/);
  const bitJson = injected(
    pod({ "sidecar-injector.io/profile": "fluent-bit", "sidecar-injector.io/parser": "json" }),
  );
  assert.equal(
    bitJson.out.metadata?.annotations?.["sidecar-injector.io/agent-files"],
    "[PARSER]\n    Name   sidecar_json\n    Format json\n",
  );
  assert.deepEqual(
    bitJson.out.spec?.volumes?.find((v) => v.name === "app-logs-config")?.downwardAPI?.items?.[1],
    {
      path: "parsers.conf",
      fieldRef: { fieldPath: "metadata.annotations['sidecar-injector.io/agent-files']" },
    },
  );
});

Deno.test("a profile's parser is the default; fluent-bit refuses java, python and go at load", () => {
  const config = parseConfig("profiles:\n  fluentd: { parser: python }\n");
  const { out } = injected(pod(), config);
  assert.match(out.metadata?.annotations?.[CONFIG] ?? "", /Traceback/);
  for (const parser of ["java", "python", "go"]) {
    assert.throws(
      () => parseConfig(`profiles:\n  fluent-bit: { parser: ${parser} }\n`),
      new RegExp(`profiles\\.fluent-bit\\.parser.*agent fluent-bit cannot run parser ${parser}`),
    );
  }
  assert.throws(() => parseConfig("profiles:\n  fluentd: { parser: yaml }\n"), /must be one of/);
  assert.equal(defaultConfig().profiles.fluentd?.parser, "none");
});

Deno.test("parser.<container> annotations: for an app container and a parser its agent runs, else a warning", () => {
  const r = injected(
    pod({
      "sidecar-injector.io/parser.web": "json",
      "sidecar-injector.io/parser.nope": "json",
      "sidecar-injector.io/parser.worker": "yaml",
    }, ["web", "worker"]),
  );
  const config = r.out.metadata?.annotations?.[CONFIG] ?? "";
  assert.match(config, /<filter app\.web>\n {2}@type sidecar_record\n {2}parser json/);
  assert.doesNotMatch(config, /app\.worker/);
  const warnings = r.result.warnings.join("\n");
  assert.match(warnings, /parser\.nope="json" ignored: no app container named "nope"/);
  assert.match(warnings, /parser\.worker="yaml" ignored: must be one of/);
  const bit = injected(
    pod({
      "sidecar-injector.io/profile": "fluent-bit",
      "sidecar-injector.io/parser.web": "java",
    }, ["web", "worker"]),
  );
  assert.match(bit.result.warnings.join("\n"), /agent fluent-bit cannot run parser java/);
});

Deno.test("the agent serves metrics on a named port, probed by startup and liveness probes", () => {
  for (
    const [profile, port, path, metrics] of [
      ["fluentd", 24220, "/api/plugins.json", /@type monitor_agent\n.*\n {2}bind 0\.0\.0\.0\n/],
      ["fluent-bit", 2020, "/api/v1/uptime", /HTTP_Server +On\n {4}HTTP_Listen +0\.0\.0\.0\n/],
    ] as const
  ) {
    const { sidecar, out } = injected(pod({ "sidecar-injector.io/profile": profile }));
    assert.deepEqual(sidecar.ports, [{
      name: "agent-metrics",
      containerPort: port,
      protocol: "TCP",
    }]);
    const env = Object.fromEntries(sidecar.env?.map((e) => [e.name, e.value]) ?? []);
    assert.equal(env.AGENT_METRICS_PORT, String(port));
    const httpGet = { path, port: "agent-metrics" };
    assert.deepEqual(sidecar.startupProbe, {
      httpGet,
      periodSeconds: 1,
      timeoutSeconds: 1,
      failureThreshold: 120,
    });
    assert.deepEqual(sidecar.livenessProbe, {
      httpGet,
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 3,
    });
    const config = out.metadata?.annotations?.[CONFIG] ?? "";
    assert.match(config, metrics);
    assert.match(config, /AGENT_METRICS_PORT/);
  }
});

Deno.test("the agent pauses 2 s before SIGTERM: exec sleep for fluentd, the kubelet's sleep for fluent-bit", () => {
  assert.deepEqual(injected(pod()).sidecar.lifecycle, {
    preStop: { exec: { command: ["sleep", "2"] } },
  });
  const bit = injected(pod({ "sidecar-injector.io/profile": "fluent-bit" }));
  assert.deepEqual(bit.sidecar.lifecycle, { preStop: { sleep: { seconds: 2 } } });
});

Deno.test("the metrics port moves past ports the pod's containers declare, with a warning", () => {
  const p: Pod = {
    metadata: { name: "p" },
    spec: {
      containers: [{ name: "a", ports: [{ containerPort: 24220 }, { containerPort: 24221 }] }],
      initContainers: [{ name: "i", ports: [{ containerPort: 24222 }] }],
    },
  };
  const { sidecar, result } = injected(p);
  assert.equal(sidecar.ports?.[0]?.containerPort, 24223);
  assert.equal(sidecar.env?.find((e) => e.name === "AGENT_METRICS_PORT")?.value, "24223");
  assert.match(result.warnings.join("\n"), /port 24220 is already declared.*listen on 24223/);
});

Deno.test("a hostNetwork pod's agent has no metrics port and no probes, but keeps its preStop", () => {
  const p: Pod = {
    metadata: { name: "p" },
    spec: { hostNetwork: true, containers: [{ name: "a" }] },
  };
  const { sidecar, out, result } = injected(p);
  assert.equal(sidecar.ports, undefined);
  assert.equal(sidecar.livenessProbe, undefined);
  assert.equal(sidecar.startupProbe, undefined);
  assert.ok(sidecar.lifecycle?.preStop);
  assert.doesNotMatch(out.metadata?.annotations?.[CONFIG] ?? "", /monitor_agent/);
  assert.match(result.warnings.join("\n"), /hostNetwork pod: the agent serves no metrics/);
});

Deno.test("profile keys turn metrics, probes and the preStop pause off or change the port", () => {
  const config = parseConfig(
    "profiles:\n  fluentd: { metrics: false, preStopSeconds: 0 }\n" +
      "  fluent-bit: { metricsPort: 9020, probes: false }\n",
  );
  const fd = injected(pod(), config);
  assert.equal(fd.sidecar.ports, undefined);
  assert.equal(fd.sidecar.livenessProbe, undefined);
  assert.equal(fd.sidecar.lifecycle, undefined);
  assert.equal(fd.sidecar.env?.find((e) => e.name === "AGENT_METRICS_PORT"), undefined);
  assert.doesNotMatch(fd.out.metadata?.annotations?.[CONFIG] ?? "", /monitor_agent/);
  const fb = injected(pod({ "sidecar-injector.io/profile": "fluent-bit" }), config);
  assert.equal(fb.sidecar.ports?.[0]?.containerPort, 9020);
  assert.equal(fb.sidecar.startupProbe, undefined);
  assert.equal(fb.sidecar.livenessProbe, undefined);
  assert.match(fb.out.metadata?.annotations?.[CONFIG] ?? "", /HTTP_Server +On/);
});

Deno.test("with the operator's configMap the endpoint and probes are off unless asked for", () => {
  const config = parseConfig("profiles: { fluentd: { configMap: fluentd-config } }");
  const { sidecar } = injected(pod(), config);
  assert.equal(sidecar.ports, undefined);
  assert.equal(sidecar.startupProbe, undefined);
  assert.ok(sidecar.lifecycle?.preStop);
  const asked = parseConfig("profiles: { fluentd: { configMap: fluentd-config, metrics: true } }");
  assert.equal(injected(pod(), asked).sidecar.livenessProbe?.httpGet?.port, "agent-metrics");
});
