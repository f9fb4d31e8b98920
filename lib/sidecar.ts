/**
 * Renders the log agent container for a profile. The agent's config is given
 * inline (args), so no ConfigMap has to exist in the pod's namespace unless the
 * operator asks for one.
 * @module
 */
import type { Container, EnvVar } from "kubernetes-types/core/v1.d.ts";
import type { Output, Profile } from "./config.ts";
import { AGENT_CONFIG_DIR } from "./_config_profile.ts";

/** Names chosen for this pod, free of collisions. */
export interface SidecarNames {
  container: string;
  volume: string;
  /** Volume holding the operator's agent ConfigMap, when the profile names one. */
  configVolume?: string;
}

/** The fluentd config that tails `logDir` and ships to `output`. */
export function fluentdConfig(logDir: string, output: Output): string {
  const match = output.type === "stdout"
    ? "<match app.**>\n  @type stdout\n</match>"
    : output.type === "forward"
    ? `<match app.**>\n  @type forward\n  <server>\n    host ${output.host}\n    port ${output.port}\n  </server>\n</match>`
    : output.config;
  return [
    "<source>",
    "  @type tail",
    `  path ${logDir}/*.log,${logDir}/**/*.log`,
    `  pos_file ${logDir}/.fluentd-tail.pos`,
    "  tag app.*",
    "  read_from_head true",
    "  follow_inodes true",
    "  <parse>",
    "    @type none",
    "  </parse>",
    "</source>",
    "<filter app.**>",
    "  @type record_transformer",
    "  <record>",
    `    pod "#{ENV['POD_NAME']}"`,
    `    namespace "#{ENV['POD_NAMESPACE']}"`,
    "  </record>",
    "</filter>",
    match,
  ].join("\n");
}

/** Fluent Bit command-line pipeline (it has no inline config-string flag). */
export function fluentBitArgs(logDir: string, output: Output): string[] {
  const input = [
    "-i",
    "tail",
    "-p",
    `path=${logDir}/*.log,${logDir}/*/*.log`,
    "-p",
    `db=${logDir}/.fluent-bit-tail.db`,
    "-p",
    "tag=app.*",
    "-p",
    "read_from_head=true",
  ];
  // parseConfig rejects raw output for fluent-bit, so only stdout and forward reach here.
  const out = output.type === "forward"
    ? ["-o", "forward", "-p", "match=*", "-p", `host=${output.host}`, "-p", `port=${output.port}`]
    : ["-o", "stdout", "-p", "match=*", "-p", "format=json_lines"];
  return [...input, ...out, "-f", "1"];
}

function commandFor(profile: Profile): Pick<Container, "command" | "args"> {
  if (profile.configMap) return {}; // the image's own entrypoint reads the mounted config
  if (profile.agent === "fluentd") {
    return {
      command: ["fluentd"],
      args: ["-c", "/dev/null", "-i", fluentdConfig(profile.logDir, profile.output)],
    };
  }
  return {
    command: ["/fluent-bit/bin/fluent-bit"],
    args: fluentBitArgs(profile.logDir, profile.output),
  };
}

const fieldEnv = (name: string, fieldPath: string): EnvVar => ({
  name,
  valueFrom: { fieldRef: { fieldPath } },
});

/** Builds the sidecar container; `native` makes it a restartable init container. */
export function renderSidecar(profile: Profile, names: SidecarNames, native: boolean): Container {
  const own = new Set(profile.env.map((e) => e.name));
  const env = [
    fieldEnv("POD_NAME", "metadata.name"),
    fieldEnv("POD_NAMESPACE", "metadata.namespace"),
    fieldEnv("NODE_NAME", "spec.nodeName"),
  ].filter((e) => !own.has(e.name));
  const volumeMounts = [{ name: names.volume, mountPath: profile.logDir }];
  if (names.configVolume) {
    volumeMounts.push({ name: names.configVolume, mountPath: AGENT_CONFIG_DIR[profile.agent] });
  }
  return {
    name: names.container,
    image: profile.image,
    imagePullPolicy: profile.imagePullPolicy,
    ...commandFor(profile),
    // The config is deeply frozen, so sharing its objects with the patch is safe and saves a copy per pod.
    env: [...env, ...profile.env],
    resources: profile.resources,
    securityContext: profile.securityContext,
    volumeMounts,
    ...(native ? { restartPolicy: "Always" } : {}),
  };
}
