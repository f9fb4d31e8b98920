/**
 * Injector configuration: built-in defaults, YAML parsing and validation.
 *
 * A config file only states what differs from the defaults. Unknown keys and
 * wrong types are rejected with the file, the path and the reason.
 * @module
 */
import { load } from "js-yaml";
import type { EnvVar, ResourceRequirements, SecurityContext } from "kubernetes-types/core/v1.d.ts";
import { checkDnsLabel } from "./_fields.ts";
import { readProfile } from "./_config_profile.ts";
import { ConfigSyntaxError, Validator } from "./_validator.ts";

export { ConfigSyntaxError, InvalidConfigError } from "./_validator.ts";

/** Which log agent a profile runs; decides how its config is rendered. */
export type Agent = "fluentd" | "fluent-bit";

/** Where a forward output's CA bundle comes from: a key of a Secret or ConfigMap in the pod's namespace. */
export type CaSource = { secret: string; key: string } | { configMap: string; key: string };

/** Where the agent sends what it tails. */
export type Output =
  | { type: "stdout" }
  | { type: "forward"; host: string; port: number; tls: boolean; ca?: CaSource }
  | { type: "raw"; config: string };

/**
 * How the sidecar is added: `native`, an init container with `restartPolicy:
 * Always` (Kubernetes >= 1.29: started before the app containers, stopped
 * after them, never keeps a pod from completing), or `classic`, a regular
 * container, for older clusters.
 */
export type Mode = "native" | "classic";

/** Accepted for `mode` in a config file; `auto` is the former default, now the same as `native`. */
const MODES = ["native", "classic", "auto"] as const;

/** One named sidecar template. */
export interface Profile {
  agent: Agent;
  containerName: string;
  image: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  logDir: string;
  volumeName: string;
  resources: ResourceRequirements;
  securityContext: SecurityContext;
  env: EnvVar[];
  output: Output;
  /** `sizeLimit` of the log volume the apps write to. */
  logVolumeSizeLimit: string;
  /**
   * Bound of the records the agent buffers on its state volume (an aggregator
   * outage fills it); the state volume's `sizeLimit` is this plus a margin.
   */
  bufferLimit: string;
  /** Name of a ConfigMap (in the pod's namespace) holding the agent's whole config; replaces the inline one. */
  configMap?: string;
}

/** The whole injector configuration. */
export interface Config {
  defaultProfile: string;
  mode: Mode;
  /** What to answer when injection throws for a pod: admit it unchanged (`allow`) or reject it (`deny`). */
  onError: "allow" | "deny";
  excludeNamespaces: string[];
  profiles: Record<string, Profile>;
}

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

/** What differs between the agents' default profiles; memory is measured RSS plus headroom (README "Log path"). */
const AGENT_SPECIFICS: Record<Agent, Pick<Profile, "containerName" | "image" | "resources">> = {
  "fluentd": {
    containerName: "fluentd",
    image: "fluent/fluentd:v1.17-1",
    resources: resources(["20m", "500m"], ["96Mi", "256Mi"]),
  },
  "fluent-bit": {
    containerName: "fluent-bit",
    image: "fluent/fluent-bit:3.2",
    resources: resources(["10m", "200m"], ["24Mi", "96Mi"]),
  },
};

function agentDefaults(agent: Agent): Profile {
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
function deepFreeze<T>(value: T): T {
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

function buildDefaults(): Config {
  return {
    defaultProfile: "fluentd",
    mode: "native",
    onError: "allow",
    excludeNamespaces: [...SYSTEM_NAMESPACES],
    profiles: { "fluentd": agentDefaults("fluentd"), "fluent-bit": agentDefaults("fluent-bit") },
  };
}

/**
 * Parses a YAML config over the defaults.
 *
 * @throws {ConfigSyntaxError} when the text is not YAML.
 * @throws {InvalidConfigError} naming the source, the path and the reason when a value is wrong.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * const config = parseConfig("defaultProfile: fluent-bit\n", "config.yaml");
 * assert.equal(config.profiles[config.defaultProfile]?.agent, "fluent-bit");
 * assert.throws(() => parseConfig("mode: sometimes\n", "config.yaml"), TypeError);
 * ```
 */
export function parseConfig(text: string, source = "config"): Config {
  let doc: unknown;
  // An empty or comments-only file means "all defaults"; js-yaml 5 rejects it as having no document.
  const empty = text.split("\n").every((line) => line.trim() === "" || line.trim().startsWith("#"));
  try {
    doc = empty ? {} : load(text, { filename: source });
  } catch (err) {
    throw new ConfigSyntaxError(
      `${source}: not valid YAML: ${err instanceof Error ? err.message : err}`,
      { cause: err },
    );
  }
  const r = new Validator(source);
  const obj = r.object(doc ?? {}, "", [
    "defaultProfile",
    "mode",
    "nativeSidecars",
    "onError",
    "excludeNamespaces",
    "profiles",
  ]);
  const config = buildDefaults();
  const mode = obj.mode === undefined ? "auto" : r.oneOf(obj.mode, "mode", MODES);
  // Older config files said `nativeSidecars: false` for clusters without native sidecars;
  // with `mode` unset or `auto` that still means classic, so an upgrade never breaks them.
  const native = obj.nativeSidecars === undefined ||
    r.boolean(obj.nativeSidecars, "nativeSidecars");
  config.mode = mode === "auto" ? (native ? "native" : "classic") : mode;
  if (obj.onError !== undefined) {
    config.onError = r.oneOf(obj.onError, "onError", ["allow", "deny"]);
  }
  if (obj.excludeNamespaces !== undefined) {
    const extra = r.stringList(obj.excludeNamespaces, "excludeNamespaces");
    config.excludeNamespaces = [...new Set([...SYSTEM_NAMESPACES, ...extra])];
  }
  if (obj.profiles !== undefined) {
    const profiles = r.object(obj.profiles, "profiles");
    for (const [name, value] of Object.entries(profiles)) {
      r.string(name, `profiles.${name}`, checkDnsLabel);
      config.profiles[name] = readProfile(
        r,
        name,
        value,
        `profiles.${name}`,
        config.profiles[name],
        agentDefaults,
      );
    }
  }
  if (obj.defaultProfile !== undefined) {
    config.defaultProfile = r.string(obj.defaultProfile, "defaultProfile");
  }
  if (!Object.hasOwn(config.profiles, config.defaultProfile)) {
    r.fail("defaultProfile", `names no profile (have: ${Object.keys(config.profiles).join(", ")})`);
  }
  return deepFreeze(config);
}

/**
 * Reads and parses a config file; `read` is a seam for tests.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadConfig } from "./config.ts";
 * const config = await loadConfig("/cfg.yaml", () => Promise.resolve("mode: classic\n"));
 * assert.equal(config.mode, "classic");
 * ```
 */
export async function loadConfig(
  path: string,
  read: (path: string) => Promise<string> = Deno.readTextFile,
): Promise<Config> {
  return parseConfig(await read(path), path);
}

/** Returns a copy of `config` that also excludes `namespace` (the injector's own). */
export function withExcludedNamespace(config: Config, namespace: string | undefined): Config {
  if (!namespace || config.excludeNamespaces.includes(namespace)) return config;
  return deepFreeze({ ...config, excludeNamespaces: [...config.excludeNamespaces, namespace] });
}
