import assert from "node:assert/strict";
import {
  ConfigSyntaxError,
  defaultConfig,
  InvalidConfigError,
  loadConfig,
  parseConfig,
  SYSTEM_NAMESPACES,
} from "./mod.ts";

Deno.test("parseConfig() of an empty or comments-only file gives the defaults", () => {
  assert.deepEqual(parseConfig(""), defaultConfig());
  assert.deepEqual(parseConfig("# nothing\n\n  # here\n"), defaultConfig());
});

Deno.test("parseConfig() merges a profile over the built-in one of the same name", () => {
  const c = parseConfig(`
profiles:
  fluentd:
    image: registry.example.com/fluentd:v1.17-2
    output: { type: forward, host: aggregator.logging.svc, port: 24224 }
`);
  const p = c.profiles.fluentd;
  assert.equal(p?.image, "registry.example.com/fluentd:v1.17-2");
  assert.deepEqual(p?.output, {
    type: "forward",
    host: "aggregator.logging.svc",
    port: 24224,
    tls: false,
  });
  assert.equal(p?.logDir, "/var/log/app", "unstated keys keep their defaults");
  assert.equal(p?.securityContext.runAsNonRoot, true);
  assert.ok(c.profiles["fluent-bit"], "other built-in profiles stay");
});

Deno.test("parseConfig() accepts a new named profile starting from its agent's defaults", () => {
  const c = parseConfig(`
defaultProfile: tiny
profiles:
  tiny:
    agent: fluent-bit
    containerName: log-agent
    resources: { requests: { cpu: 5m, memory: 8Mi }, limits: { memory: 32Mi } }
    env: [{ name: LOG_LEVEL, value: debug }]
`);
  assert.equal(c.defaultProfile, "tiny");
  const p = c.profiles.tiny;
  assert.equal(p?.agent, "fluent-bit");
  assert.equal(p?.image, "fluent/fluent-bit:5.1.1");
  assert.equal(p?.containerName, "log-agent");
  assert.deepEqual(p?.resources, {
    requests: { cpu: "5m", memory: "8Mi" },
    limits: { memory: "32Mi" },
  });
  assert.deepEqual(p?.env, [{ name: "LOG_LEVEL", value: "debug" }]);
});

Deno.test("parseConfig() always keeps the system namespaces excluded", () => {
  const c = parseConfig("excludeNamespaces: [monitoring]");
  assert.deepEqual(c.excludeNamespaces, [...SYSTEM_NAMESPACES, "monitoring"]);
});

const errors: Array<[string, RegExp]> = [
  ["mode: sometimes", /^cfg\.yaml: mode: must be one of native, classic, auto, got "sometimes"$/],
  ["colour: blue", /^cfg\.yaml: colour: unknown key \(expected one of: defaultProfile, mode,/],
  [
    "defaultProfile: nope",
    /^cfg\.yaml: defaultProfile: names no profile \(have: fluentd, fluent-bit\)$/,
  ],
  [
    "nativeSidecars: yes please",
    /^cfg\.yaml: nativeSidecars: must be true or false, got "yes please"$/,
  ],
  ["onError: explode", /^cfg\.yaml: onError: must be one of allow, deny/],
  [
    "excludeNamespaces: kube-system",
    /^cfg\.yaml: excludeNamespaces: must be a list, got "kube-system"$/,
  ],
  ["profiles: [a]", /^cfg\.yaml: profiles: must be a mapping, got a list$/],
  ["profiles: { Big_Name: {} }", /^cfg\.yaml: profiles\.Big_Name: must be a DNS-1123 label/],
  [
    "profiles: { fluentd: { image: 42 } }",
    /^cfg\.yaml: profiles\.fluentd\.image: must be a non-empty string, got number 42$/,
  ],
  [
    "profiles: { fluentd: { image: 'has space' } }",
    /profiles\.fluentd\.image: must be an image reference/,
  ],
  [
    "profiles: { fluentd: { logDir: relative/dir } }",
    /profiles\.fluentd\.logDir: must be an absolute path$/,
  ],
  [
    "profiles: { fluentd: { logDir: /a/../b } }",
    /profiles\.fluentd\.logDir: must not contain \. or \.\. segments$/,
  ],
  [
    "profiles: { fluentd: { volumeName: Logs } }",
    /profiles\.fluentd\.volumeName: must be a DNS-1123 label/,
  ],
  [
    "profiles: { fluentd: { agent: logstash } }",
    /profiles\.fluentd\.agent: must be one of fluentd, fluent-bit/,
  ],
  [
    "profiles: { fluentd: { resources: { requests: { cpu: lots } } } }",
    /profiles\.fluentd\.resources\.requests\.cpu: must be a Kubernetes quantity/,
  ],
  [
    "profiles: { fluentd: { resources: { requests: { gpu: 1 } } } }",
    /profiles\.fluentd\.resources\.requests\.gpu: unknown key/,
  ],
  [
    "profiles: { fluentd: { env: [{ name: 1, value: x }] } }",
    /profiles\.fluentd\.env\[0\]\.name: must be a non-empty string, got number 1$/,
  ],
  [
    "profiles: { fluentd: { env: [{ name: A, value: 3 }] } }",
    /profiles\.fluentd\.env\[0\]\.value: must be a string, got number 3$/,
  ],
  [
    "profiles: { fluentd: { output: { type: kafka } } }",
    /profiles\.fluentd\.output\.type: must be one of stdout, forward, raw/,
  ],
  [
    "profiles: { fluentd: { output: { type: forward } } }",
    /profiles\.fluentd\.output\.host: must be a non-empty string, got undefined/,
  ],
  [
    "profiles: { fluentd: { output: { type: forward, host: h, port: 70000 } } }",
    /output\.port: must be a port number 1-65535, got number 70000$/,
  ],
  [
    "profiles: { fluentd: { output: { type: stdout, host: h } } }",
    /output\.host: not allowed with output type stdout$/,
  ],
  [
    "profiles: { fluent-bit: { output: { type: raw, config: x } } }",
    /profiles\.fluent-bit\.output\.type: raw output is supported for agent fluentd only/,
  ],
  [
    "profiles: { fluentd: { securityContext: { runAsUser: -1 } } }",
    /securityContext\.runAsUser: must be a non-negative integer, got number -1$/,
  ],
  [
    "profiles: { fluentd: { securityContext: { seccompProfile: { type: Off } } } }",
    /seccompProfile\.type: must be one of RuntimeDefault, Localhost, Unconfined/,
  ],
  [
    "profiles: { fluentd: { configMap: Not_A_Name } }",
    /profiles\.fluentd\.configMap: must be a DNS-1123 subdomain/,
  ],
  [
    'profiles: { fluentd: { output: { type: raw, config: "<match app.**>\\n  @type null\\n</match" } } }',
    /output\.config: line 3: "<\/match" is not a complete <section> or <\/section> tag/,
  ],
  [
    'profiles: { fluentd: { output: { type: raw, config: "<match a>\\n<buffer>\\n</match>" } } }',
    /output\.config: line 3: <\/match> closes <buffer> of line 2/,
  ],
  [
    'profiles: { fluentd: { output: { type: raw, config: "<filter a>\\n</filter>" } } }',
    /output\.config: must contain a <match> section/,
  ],
  [
    'profiles: { fluentd: { output: { type: raw, config: "<source>\\n</source>\\n<match a>\\n</match>" } } }',
    /output\.config: line 1: <source> is not allowed/,
  ],
  [
    "profiles: { fluentd: { logDir: '/var/log/a,b' } }",
    /logDir: must be a clean path of letters, digits/,
  ],
  [
    "profiles: { fluentd: { logDir: /var/lib/sidecar-injector/logs } }",
    /logDir: must not be, contain or lie in \/var\/lib\/sidecar-injector/,
  ],
  [
    "profiles: { fluentd: { output: { type: forward, host: h, caSecret: ca } } }",
    /output\.tls: must be true when a CA is given/,
  ],
  [
    "profiles: { fluentd: { output: { type: forward, host: h, tls: true, caSecret: a, caConfigMap: b } } }",
    /output\.caConfigMap: give caSecret or caConfigMap, not both/,
  ],
  [
    "profiles: { fluentd: { bufferLimit: lots } }",
    /profiles\.fluentd\.bufferLimit: must be a Kubernetes quantity/,
  ],
  ["profiles: { fluentd: { metrics: yes } }", /profiles\.fluentd\.metrics: must be true or false/],
  [
    "profiles: { fluentd: { metricsPort: 0 } }",
    /profiles\.fluentd\.metricsPort: must be a port number 1-65535, got number 0$/,
  ],
  [
    "profiles: { fluentd: { metrics: false, probes: true } }",
    /profiles\.fluentd\.probes: needs metrics: true/,
  ],
  [
    "profiles: { fluent-bit: { preStopSeconds: 45 } }",
    /profiles\.fluent-bit\.preStopSeconds: must be an integer from 0 to 20, got number 45$/,
  ],
  [
    "profiles: { fluentd: { env: [{ name: AGENT_METRICS_PORT, value: '1' }] } }",
    /profiles\.fluentd\.env\[0\]: AGENT_METRICS_PORT is set from metricsPort/,
  ],
];

Deno.test("parseConfig() reads forward TLS with a CA from a ConfigMap, and the volume sizes", () => {
  const c = parseConfig(
    "profiles: { fluentd: { logVolumeSizeLimit: 2Gi, bufferLimit: 512Mi, output: " +
      "{ type: forward, host: agg, tls: true, caConfigMap: agg-ca, caKey: bundle.pem } } }",
  );
  const p = c.profiles.fluentd;
  assert.deepEqual(p?.output, {
    type: "forward",
    host: "agg",
    port: 24224,
    tls: true,
    ca: { configMap: "agg-ca", key: "bundle.pem" },
  });
  assert.equal(p?.logVolumeSizeLimit, "2Gi");
  assert.equal(p?.bufferLimit, "512Mi");
});

for (const [yaml, message] of errors) {
  Deno.test(`parseConfig() rejects ${JSON.stringify(yaml)} with file, path and reason`, () => {
    assert.throws(() => parseConfig(yaml, "cfg.yaml"), (err: unknown) => {
      assert.ok(err instanceof InvalidConfigError, `InvalidConfigError, got ${err}`);
      assert.ok(err instanceof TypeError, "still a TypeError, as std's parsers throw");
      assert.match(err.message, message);
      return true;
    });
  });
}

Deno.test("parseConfig() reports YAML syntax errors as ConfigSyntaxError naming the file", () => {
  assert.throws(() => parseConfig("mode: [unclosed", "cfg.yaml"), (err: unknown) => {
    assert.ok(err instanceof ConfigSyntaxError);
    assert.ok(err instanceof SyntaxError);
    assert.match(err.message, /^cfg\.yaml: not valid YAML/);
    return true;
  });
});

Deno.test("loadConfig() reads through the given reader", async () => {
  const seen: string[] = [];
  const c = await loadConfig("/etc/x.yaml", (p) => {
    seen.push(p);
    return Promise.resolve("onError: deny\n");
  });
  assert.equal(c.onError, "deny");
  assert.deepEqual(seen, ["/etc/x.yaml"]);
});
