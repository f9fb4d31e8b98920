/**
 * The pure injection decision: pod and config in, JSON Patch and warnings out.
 * No I/O, no clock, no logging. Patch paths come only from `pointer.ts`.
 * @module
 */
import type { Operation } from "fast-json-patch";
import type { Container, Pod, Volume, VolumeMount } from "kubernetes-types/core/v1.d.ts";
import type { Config, Mode, Profile } from "../config/mod.ts";
import { checkImage, checkLogDir, checkQuantity, DNS_LABEL_MAX, quantity } from "../config/mod.ts";
import {
  isWindowsPod,
  MIRROR_ANNOTATION,
  runsToCompletion,
  type SkipReason,
} from "./eligibility.ts";
import { pointer } from "./pointer.ts";
import { agentIdentity } from "./identity.ts";
import {
  AGENT_CONFIG_FILE,
  checkAgentPaths,
  checkParser,
  type Parser,
  PARSERS,
  type SidecarNames,
} from "../agent/mod.ts";
import { renderFor, type RenderInput } from "./render_cache.ts";
import { chooseMetricsPort } from "./metrics_port.ts";

export type { Operation, SkipReason };

/** Prefix of every annotation the injector reads or writes. */
export const ANNOTATION_PREFIX = "sidecar-injector.io/";
/** Written on injected pods; its presence means "already injected". */
export const STATUS_ANNOTATION = "sidecar-injector.io/status";
/** `"false"` opts a pod out, as an annotation or as a label. */
export const INJECT_ANNOTATION = "sidecar-injector.io/inject";
/** Every `sidecar-injector.io/<name>` pod annotation the injector reads or writes. */
export const POD_ANNOTATIONS: readonly string[] = [
  "inject",
  "profile",
  "image",
  "log-dir",
  "cpu-request",
  "memory-limit",
  "containers",
  "mode",
  "status",
  "agent-config",
  "agent-files",
  "parser",
];
/** Marker of the original (Flask) injector; also means "already injected". */
export const LEGACY_ANNOTATION = "sidecar-injected";

/** What the caller knows besides the pod itself. */
export interface InjectContext {
  /** The request's namespace; pods from controllers often carry none in metadata. */
  namespace?: string | undefined;
}

/** Whether `inject` changed the pod. */
export type InjectDecision = "injected" | "skipped";

/** The outcome for one pod. `patch` is empty when nothing changes. */
export interface InjectResult {
  decision: InjectDecision;
  /** Why the pod was skipped, for people; empty when injected. */
  reason: string;
  /** Why the pod was skipped, as a metric label; absent when injected. */
  skip?: SkipReason;
  patch: Operation[];
  /** The JSON of some of the patch's values, by value, so the encoder need not redo it. */
  encoded?: ReadonlyMap<unknown, string>;
  warnings: string[];
  profile?: string;
  mode?: Mode;
}

/** The status annotation's JSON value. */
export interface InjectionStatus {
  version: 1;
  profile: string;
  sidecar: string;
  image: string;
  volume: string;
  mode: Mode;
}

/** Written on injected pods: the agent's rendered config, which a downward API volume hands it. */
export const CONFIG_ANNOTATION = "sidecar-injector.io/agent-config";
/**
 * Written on injected pods whose agent needs a second config file (Fluentd's
 * filter plugin, Fluent Bit's parsers): that file, handed over like the config.
 */
export const FILES_ANNOTATION = "sidecar-injector.io/agent-files";
/** Appended to the profile's volume name for the agent's own volumes. */
const CONFIG_VOLUME_SUFFIX = "-config";
const STATE_VOLUME_SUFFIX = "-state";
const CA_VOLUME_SUFFIX = "-ca";
const MI = 2 ** 20;
/** Room on the state volume besides the buffer: tail positions, temp files, chunk slack. */
const STATE_MARGIN_MI = 32;

const skip = (skip: SkipReason, reason: string, warnings: string[] = []): InjectResult => ({
  decision: "skipped",
  reason,
  skip,
  patch: [],
  warnings: warnings.map(capWarning),
});

/**
 * Decides whether and how to inject the log sidecar into `pod`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import jsonpatch from "fast-json-patch";
 * import { defaultConfig } from "../config/mod.ts";
 * import type { Pod } from "kubernetes-types/core/v1.d.ts";
 * import { inject } from "./inject.ts";
 * const pod: Pod = { metadata: { name: "web" }, spec: { containers: [{ name: "nginx", image: "nginx" }] } };
 * const result = inject(pod, defaultConfig(), { namespace: "default" });
 * const out: Pod = jsonpatch.applyPatch(structuredClone(pod), result.patch).newDocument;
 * assert.deepEqual(out.spec?.containers.map((c) => c.name), ["nginx"]);
 * assert.deepEqual(out.spec?.initContainers?.map((c) => [c.name, c.restartPolicy]), [["fluentd", "Always"]]);
 * assert.equal(out.spec?.containers[0]?.volumeMounts?.[0]?.mountPath, "/var/log/app");
 * ```
 */
export function inject(pod: Pod, config: Config, context: InjectContext = {}): InjectResult {
  const annotations = pod.metadata?.annotations ?? {};
  const namespace = context.namespace || pod.metadata?.namespace || "";
  if (namespace && config.excludeNamespaces.includes(namespace)) {
    return skip("excluded_namespace", `namespace ${namespace} is excluded`);
  }
  if (
    Object.hasOwn(annotations, STATUS_ANNOTATION) || Object.hasOwn(annotations, LEGACY_ANNOTATION)
  ) {
    return skip("already_injected", "already injected");
  }
  if (Object.hasOwn(annotations, MIRROR_ANNOTATION)) {
    return skip("mirror_pod", "mirror pod of a static pod (the kubelet owns it)");
  }
  const warnings: string[] = [];
  const optIn = readAnnotation(annotations, "inject");
  if (optIn !== undefined) {
    const v = optIn.trim().toLowerCase();
    if (v === "false") return skip("opted_out", "opted out by annotation");
    if (v !== "true") {
      warnings.push(invalid("inject", optIn, 'must be "true" or "false"; injecting'));
    }
  }
  if (pod.metadata?.labels?.[INJECT_ANNOTATION] === "false") {
    return skip("opted_out", "opted out by label");
  }
  const spec = pod.spec;
  if (!spec || spec.containers.length === 0) return skip("no_containers", "pod has no containers");
  if (isWindowsPod(spec)) {
    return skip("windows", "Windows pod: the log agent is a Linux container", [
      ...warnings,
      "sidecar-injector: Windows pod: no log agent injected (the agent is a Linux container)",
    ]);
  }

  const mode = chooseMode(annotations, config, warnings);
  if (mode === "classic" && runsToCompletion(spec)) {
    const why = `restartPolicy ${spec.restartPolicy} in classic mode: a classic sidecar never ` +
      "exits, so the pod could never complete";
    return skip("run_to_completion", why, [
      ...warnings,
      `sidecar-injector: no log agent injected: ${why}; use mode native (Kubernetes >= 1.29)`,
    ]);
  }
  const native = mode === "native";
  const { name: profileName, profile } = chooseProfile(annotations, config, warnings);

  const containerNames = new Set(
    [...spec.containers, ...(spec.initContainers ?? []), ...(spec.ephemeralContainers ?? [])].map((
      c,
    ) => c.name),
  );
  const volumeNames = new Set((spec.volumes ?? []).map((v) => v.name));
  const derived = (suffix: string) =>
    uniqueName(
      `${profile.volumeName.slice(0, DNS_LABEL_MAX - suffix.length)}${suffix}`,
      volumeNames,
      "volume",
      warnings,
    );
  const names: SidecarNames = {
    container: uniqueName(profile.containerName, containerNames, "container", warnings),
    volume: uniqueName(profile.volumeName, volumeNames, "volume", warnings),
    stateVolume: derived(STATE_VOLUME_SUFFIX),
    configVolume: derived(CONFIG_VOLUME_SUFFIX),
  };
  const ca = profile.output.type === "forward" ? profile.output.ca : undefined;
  if (ca) names.caVolume = derived(CA_VOLUME_SUFFIX);

  const targets = chooseContainers(annotations, spec.containers, warnings);
  const apps = spec.containers.filter((c) => targets.has(c.name));
  const bufferBytes = quantity(profile.bufferLimit);
  const stateSizeLimit = `${Math.ceil(bufferBytes / MI) + STATE_MARGIN_MI}Mi`;
  const containerParsers = chooseContainerParsers(annotations, apps, profile, warnings);
  const metricsPort = chooseMetricsPort(profile, spec, warnings);
  // Computed before the agent's identity, so the warnings come in the pod's order.
  const mountPaths = spec.containers.map((c) =>
    targets.has(c.name) ? uniqueMountPath(c, profile.logDir, warnings) : undefined
  );
  const identity = agentIdentity(spec, apps, warnings);
  // The one place the renderers' input is built: the cache key is its JSON.
  const input: RenderInput = {
    profile,
    names,
    sidecar: { native, identity, stateSizeLimit, metricsPort },
  };
  if (!profile.configMap) {
    input.pipeline = {
      logDir: profile.logDir,
      output: profile.output,
      containers: apps.map((c) => c.name),
      bufferBytes,
      parser: profile.parser,
      containerParsers,
      metrics: metricsPort !== undefined,
    };
  }
  const rendered = renderFor(config, input);
  const files = rendered.files;
  const fromAnnotation = (path: string, annotation: string) => ({
    path,
    fieldRef: { fieldPath: `metadata.annotations['${annotation}']` },
  });
  const volumes: Volume[] = [
    { name: names.volume, emptyDir: { sizeLimit: profile.logVolumeSizeLimit } },
    { name: names.stateVolume, emptyDir: { sizeLimit: stateSizeLimit } },
    profile.configMap ? { name: names.configVolume, configMap: { name: profile.configMap } } : {
      name: names.configVolume,
      downwardAPI: {
        items: [
          fromAnnotation(AGENT_CONFIG_FILE[profile.agent], CONFIG_ANNOTATION),
          ...(files?.extra ? [fromAnnotation(files.extra.path, FILES_ANNOTATION)] : []),
        ],
      },
    },
  ];
  if (ca && names.caVolume) {
    const items = [{ key: ca.key, path: ca.key }];
    volumes.push(
      "secret" in ca
        ? { name: names.caVolume, secret: { secretName: ca.secret, items } }
        : { name: names.caVolume, configMap: { name: ca.configMap, items } },
    );
  }

  const status: InjectionStatus = {
    version: 1,
    profile: profileName,
    sidecar: names.container,
    image: profile.image,
    volume: names.volume,
    mode,
  };
  const added: Record<string, string> = { [STATUS_ANNOTATION]: JSON.stringify(status) };
  if (files) {
    added[CONFIG_ANNOTATION] = files.config;
    if (files.extra) added[FILES_ANNOTATION] = files.extra.text;
  }
  const patch: Operation[] = [];
  if (!pod.metadata) {
    patch.push({ op: "add", path: pointer("metadata"), value: { annotations: added } });
  } else if (!pod.metadata.annotations) {
    patch.push({ op: "add", path: pointer("metadata", "annotations"), value: added });
  } else {
    for (const [key, value] of Object.entries(added)) {
      patch.push({ op: "add", path: annotationPath(key), value });
    }
  }
  append(patch, ["spec", "volumes"], spec.volumes, volumes);

  spec.containers.forEach((c, i) => {
    const mountPath = mountPaths[i];
    if (mountPath === undefined) return;
    const mount: VolumeMount = { name: names.volume, mountPath };
    append(patch, ["spec", "containers", i, "volumeMounts"], c.volumeMounts, [mount]);
  });

  const sidecar = rendered.sidecar;
  if (native) append(patch, ["spec", "initContainers"], spec.initContainers, [sidecar]);
  else patch.push({ op: "add", path: pointer("spec", "containers", "-"), value: sidecar });

  return {
    decision: "injected",
    reason: "",
    patch,
    encoded: rendered.encoded,
    warnings: warnings.map(capWarning),
    profile: profileName,
    mode,
  };
}

/** The pointers of the injector's own annotations (a fixed few), escaped once. */
const annotationPaths = new Map<string, string>();
function annotationPath(key: string): string {
  let path = annotationPaths.get(key);
  if (path === undefined) annotationPaths.set(key, path = pointer("metadata", "annotations", key));
  return path;
}

/** kubectl shows warnings verbatim; the apiserver truncates long ones. Keep each short. */
const MAX_WARNING = 256;
function capWarning(w: string): string {
  return w.length <= MAX_WARNING ? w : `${w.slice(0, MAX_WARNING - 3)}...`;
}

/** Adds `items` to the array at `path`, creating the array when the pod has none. */
function append(
  patch: Operation[],
  path: Array<string | number>,
  existing: unknown[] | undefined,
  items: unknown[],
) {
  if (existing === undefined) {
    patch.push({ op: "add", path: pointer(...path), value: items });
    return;
  }
  for (const value of items) patch.push({ op: "add", path: pointer(...path, "-"), value });
}

function readAnnotation(annotations: Record<string, string>, name: string): string | undefined {
  const key = ANNOTATION_PREFIX + name;
  return Object.hasOwn(annotations, key) ? annotations[key] : undefined;
}

/** Reads annotation `name`: `apply` gets a value `check` accepts, anything else becomes a warning. */
function withAnnotation(
  annotations: Record<string, string>,
  name: string,
  warnings: string[],
  check: (value: string) => string | undefined,
  apply: (value: string) => void,
): void {
  const value = readAnnotation(annotations, name);
  if (value === undefined) return;
  const why = check(value);
  if (why) warnings.push(invalid(name, value, why));
  else apply(value);
}

function invalid(name: string, value: string, why: string): string {
  const shown = value.length > 64 ? `${value.slice(0, 64)}...` : value;
  return `sidecar-injector: annotation ${ANNOTATION_PREFIX}${name}=${
    JSON.stringify(shown)
  } ignored: ${why}`;
}

/** Picks `base`, or `base-N` for the smallest free N, staying a valid DNS label. */
function uniqueName(base: string, taken: Set<string>, what: string, warnings: string[]): string {
  let name = base;
  for (let i = 1; taken.has(name); i++) {
    const suffix = `-${i}`;
    name = base.slice(0, DNS_LABEL_MAX - suffix.length) + suffix;
  }
  if (name !== base) {
    warnings.push(
      `sidecar-injector: ${what} name "${base}" is already used in the pod; using "${name}"`,
    );
  }
  taken.add(name);
  return name;
}

function uniqueMountPath(c: Container, logDir: string, warnings: string[]): string {
  const used = new Set([
    ...(c.volumeMounts ?? []).map((m) => m.mountPath),
    ...(c.volumeDevices ?? []).map((d) => d.devicePath),
  ]);
  let path = logDir;
  for (let i = 1; used.has(path); i++) path = `${logDir}-${i}`;
  if (path !== logDir) {
    warnings.push(
      `sidecar-injector: container "${c.name}" already uses ${logDir}; the shared log volume is mounted at ${path}`,
    );
  }
  return path;
}

/** The pod's `mode` annotation when valid, else the config's. */
function chooseMode(annotations: Record<string, string>, config: Config, warnings: string[]): Mode {
  let mode = config.mode;
  withAnnotation(
    annotations,
    "mode",
    warnings,
    (v) => v === "native" || v === "classic" ? undefined : 'must be "native" or "classic"',
    (v) => mode = v === "native" ? "native" : "classic",
  );
  return mode;
}

function chooseProfile(
  annotations: Record<string, string>,
  config: Config,
  warnings: string[],
): { name: string; profile: Profile } {
  let name = config.defaultProfile;
  const wanted = readAnnotation(annotations, "profile");
  if (wanted !== undefined) {
    if (Object.hasOwn(config.profiles, wanted)) name = wanted;
    else {
      warnings.push(
        invalid(
          "profile",
          wanted,
          `no such profile (have: ${Object.keys(config.profiles).join(", ")})`,
        ),
      );
    }
  }
  const base = config.profiles[name];
  if (!base) throw new Error(`config has no profile ${name}`); // parseConfig guarantees it
  // Copied only when an annotation changes it: the config's own (frozen) profile keys the
  // render cache cheaply.
  let profile: Profile = base;
  const own = (): Profile => profile === base ? (profile = { ...base }) : profile;

  const use = (
    name: string,
    check: (v: string) => string | undefined,
    apply: (v: string) => void,
  ) => withAnnotation(annotations, name, warnings, check, apply);
  use("image", (v) => checkImage(v.trim()), (v) => own().image = v.trim());
  use(
    "parser",
    (v) =>
      PARSERS.includes(v as Parser)
        ? checkParser(profile.agent, v as Parser)
        : `must be one of ${PARSERS.join(", ")}`,
    (v) => own().parser = v as Parser,
  );
  use(
    "log-dir",
    (v) => checkLogDir(v) ?? checkAgentPaths(v, profile.agent),
    (v) => own().logDir = v,
  );
  // Resources are copied, never changed in place: the config's objects are shared.
  use("cpu-request", checkQuantity, (cpu) => {
    const { requests, limits } = profile.resources;
    const p = own();
    p.resources = { ...profile.resources, requests: { ...requests, cpu } };
    if (limits?.cpu !== undefined && quantity(cpu) > quantity(limits.cpu)) {
      p.resources.limits = { ...limits, cpu };
      warnings.push(`sidecar-injector: cpu limit raised to ${cpu} to stay >= the requested cpu`);
    }
  });
  use("memory-limit", checkQuantity, (memory) => {
    const { requests, limits } = profile.resources;
    const p = own();
    p.resources = { ...profile.resources, limits: { ...limits, memory } };
    if (requests?.memory !== undefined && quantity(requests.memory) > quantity(memory)) {
      p.resources.requests = { ...requests, memory };
      warnings.push(
        `sidecar-injector: memory request lowered to ${memory} to stay <= the memory limit`,
      );
    }
  });
  return { name, profile };
}

/** The `parser.<container>` annotations that name an app container and a parser its agent runs. */
function chooseContainerParsers(
  annotations: Record<string, string>,
  apps: Container[],
  profile: Profile,
  warnings: string[],
): Record<string, Parser> {
  const chosen: Record<string, Parser> = {};
  const prefix = `${ANNOTATION_PREFIX}parser.`;
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(prefix)) continue;
    const name = key.slice(prefix.length);
    const why = !apps.some((c) => c.name === name)
      ? `no app container named ${JSON.stringify(name)} gets the log volume`
      : !PARSERS.includes(value as Parser)
      ? `must be one of ${PARSERS.join(", ")}`
      : checkParser(profile.agent, value as Parser);
    if (why) warnings.push(invalid(`parser.${name}`, value, why));
    else chosen[name] = value as Parser;
  }
  return chosen;
}

function chooseContainers(
  annotations: Record<string, string>,
  containers: Container[],
  warnings: string[],
): Set<string> {
  const all = new Set(containers.map((c) => c.name));
  const wanted = readAnnotation(annotations, "containers");
  if (wanted === undefined) return all;
  const names = wanted.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = names.filter((n) => !all.has(n));
  const chosen = new Set(names.filter((n) => all.has(n)));
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).join(", ") +
      (unknown.length > 5 ? ` and ${unknown.length - 5} more` : "");
    warnings.push(invalid("containers", wanted, `no container named ${shown}`));
  }
  if (chosen.size === 0) {
    warnings.push(
      `sidecar-injector: no listed container exists; mounting the log volume in all containers`,
    );
    return all;
  }
  return chosen;
}
