/**
 * Renders the log agent container for a profile. Its config comes from a
 * pod annotation through a downward API volume (or from the operator's
 * ConfigMap), so nothing has to exist in the pod's namespace beforehand.
 * @module
 */
import type { VolumeMount } from "kubernetes-types/core/v1.d.ts";
import type {
  Container,
  EnvVar,
  ResourceRequirements,
  SecurityContext,
} from "kubernetes-types/core/v1.d.ts";
import { AGENT_CONFIG_DIR, AGENT_CONFIG_FILE, AGENT_STATE_DIR, FORWARD_CA_DIR } from "./paths.ts";
import type { Agent } from "./pipeline.ts";
import { FLUENTD_PLUGIN_DIR } from "./fluentd_plugin.ts";
import { type AgentHealth, agentHttpFields, METRICS_PORT_ENV } from "./http.ts";

/** What a profile says about the agent container itself. */
export interface AgentSpec extends AgentHealth {
  agent: Agent;
  containerName: string;
  image: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  logDir: string;
  resources: ResourceRequirements;
  securityContext: SecurityContext;
  env: EnvVar[];
}

/** The user (and group, when declared) the agent takes over from the apps. */
export interface Identity {
  runAsUser: number;
  runAsGroup?: number;
}

/** Names chosen for this pod, free of collisions. */
export interface SidecarNames {
  container: string;
  /** The log volume the apps write to. */
  volume: string;
  /** The agent's own emptyDir: positions, buffers, temp files. */
  stateVolume: string;
  /** The agent's config: the rendered one (downward API) or the operator's ConfigMap. */
  configVolume: string;
  /** The forward output's CA bundle, when the profile names one. */
  caVolume?: string;
}

/** Everything besides the profile that shapes the container. */
export interface SidecarOptions {
  /** A restartable init container (`restartPolicy: Always`) instead of a regular one. */
  native: boolean;
  /** Who the agent runs as instead of the profile's user, so that it reads what the apps write. */
  identity?: Identity | undefined;
  /** Added as an `ephemeral-storage` request unless the profile sets one. */
  stateSizeLimit?: string | undefined;
  /** The port of the agent's metrics endpoint; no endpoint, and no probes, when undefined. */
  metricsPort?: number | undefined;
}

/** Fluentd's temp dir: Ruby refuses a world-writable one such as an emptyDir's root. */
const FLUENTD_TMPDIR = `${AGENT_STATE_DIR}/tmp`;

function commandFor(profile: AgentSpec): Pick<Container, "command" | "args"> {
  const config = `${AGENT_CONFIG_DIR[profile.agent]}/${AGENT_CONFIG_FILE[profile.agent]}`;
  if (profile.agent === "fluentd") {
    // The root filesystem is read-only and Fluentd needs a private temp dir for its lock files;
    // its own log goes to stderr so that stdout carries only records.
    return {
      command: ["sh", "-c"],
      args: [
        `mkdir -p -m 0700 "$TMPDIR" && exec fluentd -c ${config} -p ${
          AGENT_CONFIG_DIR[profile.agent]
        }/${FLUENTD_PLUGIN_DIR} -o /dev/stderr`,
      ],
    };
  }
  return { command: ["/fluent-bit/bin/fluent-bit"], args: ["-c", config] };
}

const fieldEnv = (name: string, fieldPath: string): EnvVar => ({
  name,
  valueFrom: { fieldRef: { fieldPath } },
});

/** Builds the sidecar container. */
export function renderSidecar(
  profile: AgentSpec,
  names: SidecarNames,
  options: SidecarOptions,
): Container {
  const own = new Set(profile.env.map((e) => e.name));
  const env = [
    fieldEnv("POD_NAME", "metadata.name"),
    fieldEnv("POD_NAMESPACE", "metadata.namespace"),
    fieldEnv("NODE_NAME", "spec.nodeName"),
    // Fluentd's supervisor puts its socket in SERVERENGINE_SOCKETMANAGER_SOCK_DIR, else /tmp.
    ...(profile.agent === "fluentd"
      ? [
        { name: "TMPDIR", value: FLUENTD_TMPDIR },
        { name: "SERVERENGINE_SOCKETMANAGER_SOCK_DIR", value: FLUENTD_TMPDIR },
      ]
      : []),
    ...(options.metricsPort === undefined
      ? []
      : [{ name: METRICS_PORT_ENV, value: String(options.metricsPort) }]),
  ].filter((e) => !own.has(e.name));
  const volumeMounts: VolumeMount[] = [
    { name: names.volume, mountPath: profile.logDir, readOnly: true },
    { name: names.stateVolume, mountPath: AGENT_STATE_DIR },
    { name: names.configVolume, mountPath: AGENT_CONFIG_DIR[profile.agent], readOnly: true },
  ];
  if (names.caVolume) {
    volumeMounts.push({ name: names.caVolume, mountPath: FORWARD_CA_DIR, readOnly: true });
  }
  let resources = profile.resources;
  if (options.stateSizeLimit && resources.requests?.["ephemeral-storage"] === undefined) {
    resources = {
      ...resources,
      requests: { ...resources.requests, "ephemeral-storage": options.stateSizeLimit },
    };
  }
  return {
    name: names.container,
    image: profile.image,
    imagePullPolicy: profile.imagePullPolicy,
    ...commandFor(profile),
    // The config is deeply frozen, so sharing its objects with the patch is safe and saves a copy per pod.
    env: [...env, ...profile.env],
    resources,
    securityContext: options.identity
      ? { ...profile.securityContext, ...options.identity }
      : profile.securityContext,
    volumeMounts,
    ...agentHttpFields(profile.agent, profile, options.metricsPort),
    ...(options.native ? { restartPolicy: "Always" } : {}),
  };
}
