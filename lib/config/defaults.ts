/**
 * The injector's built-in defaults: one profile per agent, the namespaces
 * never injected, the restricted security context.
 * @module
 */
import type { ResourceRequirements, SecurityContext } from "kubernetes-types/core/v1.d.ts";
import { healthDefaults } from "../agent/mod.ts";
import type { Agent, Config, Profile } from "./types.ts";

/** `nobody`: the agent's user and group when nothing else is known. */
export const NOBODY = 65534;

const restrictedSecurityContext = (): SecurityContext => ({
  runAsNonRoot: true,
  runAsUser: NOBODY,
  runAsGroup: NOBODY,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
});

/** Requests and limits: cpu and memory, each as [request, limit]. */
const resources = (cpu: [string, string], memory: [string, string]): ResourceRequirements => ({
  requests: { cpu: cpu[0], memory: memory[0] },
  limits: { cpu: cpu[1], memory: memory[1] },
});

/** What differs between the agents' default profiles; memory is measured RSS plus headroom (docs/log-path.md). */
const AGENT_SPECIFICS: Record<Agent, Pick<Profile, "containerName" | "image" | "resources">> = {
  "fluentd": {
    containerName: "fluentd",
    image: "fluent/fluentd:v1.17-1",
    resources: resources(["20m", "500m"], ["96Mi", "256Mi"]),
  },
  "fluent-bit": {
    containerName: "fluent-bit",
    // Pinned: Fluent Bit before 5.0.9 loses the line being read when killed (its tail database
    // records bytes read, a partial line included); 5.1.1 is the release the suites ran.
    image: "fluent/fluent-bit:5.1.1",
    resources: resources(["10m", "200m"], ["24Mi", "96Mi"]),
  },
};

/** A profile for `agent` with every default. */
export function agentDefaults(agent: Agent): Profile {
  const { containerName, image, resources } = AGENT_SPECIFICS[agent];
  return {
    agent,
    containerName,
    image,
    imagePullPolicy: "IfNotPresent",
    logDir: "/var/log/app",
    volumeName: "app-logs",
    resources: structuredClone(resources),
    securityContext: restrictedSecurityContext(),
    env: [],
    output: { type: "stdout" },
    logVolumeSizeLimit: "1Gi",
    bufferLimit: "256Mi",
    parser: "none",
    ...healthDefaults(agent),
  };
}

/** Namespaces never injected, whatever the config says. */
export const SYSTEM_NAMESPACES: readonly string[] = [
  "kube-system",
  "kube-public",
  "kube-node-lease",
];

/**
 * Freezes `value` and everything reachable from it. Injected sidecars share
 * the config's objects (no copy per request), so nothing may change them.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** The configuration used when no file is given (deeply frozen). */
export function defaultConfig(): Config {
  return deepFreeze(buildDefaults());
}

/** The defaults, not frozen, for the parser to build on. */
export function buildDefaults(): Config {
  return {
    defaultProfile: "fluentd",
    mode: "native",
    onError: "allow",
    excludeNamespaces: [...SYSTEM_NAMESPACES],
    profiles: { "fluentd": agentDefaults("fluentd"), "fluent-bit": agentDefaults("fluent-bit") },
  };
}
