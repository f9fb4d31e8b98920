/**
 * Injector configuration: built-in defaults, YAML parsing and validation.
 *
 * A config file only states what differs from the defaults. Unknown keys and
 * wrong types are rejected with the file, the path and the reason.
 * @module
 */
import { load } from "js-yaml";
import type { EnvVar, ResourceRequirements, SecurityContext } from "kubernetes-types/core/v1.d.ts";

/** Which log agent a profile runs; decides how its config is rendered. */
export type Agent = "fluentd" | "fluent-bit";

/** Where the agent sends what it tails. */
export type Output =
  | { type: "stdout" }
  | { type: "forward"; host: string; port: number }
  | { type: "raw"; config: string };

/** How the sidecar is added: a regular container, or a native sidecar (init container with `restartPolicy: Always`). */
export type Mode = "auto" | "native" | "classic";

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
  /** Name of a ConfigMap (in the pod's namespace) holding the agent's whole config; replaces the inline one. */
  configMap?: string;
}

/** The whole injector configuration. */
export interface Config {
  defaultProfile: string;
  mode: Mode;
  /** The cluster runs native sidecars (Kubernetes >= 1.29): `auto` then uses them for every pod. */
  nativeSidecars: boolean;
  /** What to answer when injection throws for a pod: admit it unchanged (`allow`) or reject it (`deny`). */
  onError: "allow" | "deny";
  excludeNamespaces: string[];
  profiles: Record<string, Profile>;
}

/** Where each agent's image reads its config (a `configMap` profile mounts it there). */
export const AGENT_CONFIG_DIR: Record<Agent, string> = {
  "fluentd": "/fluentd/etc",
  "fluent-bit": "/fluent-bit/etc",
};

const restrictedSecurityContext = (): SecurityContext => ({
  runAsNonRoot: true,
  runAsUser: 65534,
  runAsGroup: 65534,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
});

const AGENT_DEFAULTS: Record<Agent, () => Profile> = {
  "fluentd": () => ({
    agent: "fluentd",
    containerName: "fluentd",
    image: "fluent/fluentd:v1.17-1",
    imagePullPolicy: "IfNotPresent",
    logDir: "/var/log/app",
    volumeName: "app-logs",
    resources: {
      requests: { cpu: "20m", memory: "64Mi" },
      limits: { cpu: "200m", memory: "256Mi" },
    },
    securityContext: restrictedSecurityContext(),
    env: [],
    output: { type: "stdout" },
  }),
  "fluent-bit": () => ({
    agent: "fluent-bit",
    containerName: "fluent-bit",
    image: "fluent/fluent-bit:3.2",
    imagePullPolicy: "IfNotPresent",
    logDir: "/var/log/app",
    volumeName: "app-logs",
    resources: {
      requests: { cpu: "10m", memory: "16Mi" },
      limits: { cpu: "100m", memory: "64Mi" },
    },
    securityContext: { ...restrictedSecurityContext(), readOnlyRootFilesystem: true },
    env: [],
    output: { type: "stdout" },
  }),
};

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
    mode: "auto",
    nativeSidecars: false,
    onError: "allow",
    excludeNamespaces: [...SYSTEM_NAMESPACES],
    profiles: { "fluentd": AGENT_DEFAULTS.fluentd(), "fluent-bit": AGENT_DEFAULTS["fluent-bit"]() },
  };
}

type Obj = Record<string, unknown>;

class Reader {
  constructor(readonly source: string) {}

  fail(path: string, reason: string): never {
    throw new TypeError(`${this.source}: ${path || "<root>"}: ${reason}`);
  }

  /** A mapping; with `keys`, any other key is rejected. */
  object(value: unknown, path: string, keys?: readonly string[]): Obj {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.fail(path, `must be a mapping, got ${describe(value)}`);
    }
    const obj = value as Obj;
    if (keys) {
      for (const k of Object.keys(obj)) {
        if (!keys.includes(k)) {
          this.fail(join(path, k), `unknown key (expected one of: ${keys.join(", ")})`);
        }
      }
    }
    return obj;
  }

  string(value: unknown, path: string, check?: (s: string) => string | undefined): string {
    if (typeof value !== "string" || value === "") {
      this.fail(path, `must be a non-empty string, got ${describe(value)}`);
    }
    const problem = check?.(value);
    if (problem) this.fail(path, problem);
    return value;
  }

  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
    const found = allowed.find((a) => a === value);
    if (found === undefined) {
      this.fail(path, `must be one of ${allowed.join(", ")}, got ${describe(value)}`);
    }
    return found;
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value !== "boolean") {
      this.fail(path, `must be true or false, got ${describe(value)}`);
    }
    return value;
  }

  port(value: unknown, path: string): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
      this.fail(path, `must be a port number 1-65535, got ${describe(value)}`);
    }
    return value;
  }

  stringList(value: unknown, path: string): string[] {
    if (!Array.isArray(value)) this.fail(path, `must be a list, got ${describe(value)}`);
    return value.map((v, i) => this.string(v, `${path}[${i}]`));
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return `"${value}"`;
  return `${typeof value} ${String(value)}`;
}

function join(path: string, key: string | number): string {
  return typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/** Returns why `s` is not a DNS-1123 label, or undefined when it is one. */
export function checkDnsLabel(s: string): string | undefined {
  return DNS_LABEL.test(s)
    ? undefined
    : "must be a DNS-1123 label (lower case, digits, '-', at most 63)";
}

/** Returns why `s` is not a usable log directory, or undefined when it is one. */
export function checkLogDir(s: string): string | undefined {
  if (!s.startsWith("/")) return "must be an absolute path";
  if (s.length > 256) return "must be at most 256 characters";
  if (s === "/") return "must not be /";
  if (s.split("/").some((part) => part === ".." || part === ".")) {
    return "must not contain . or .. segments";
  }
  // deno-lint-ignore no-control-regex
  if (/[:\s\\]|\/\/|\/$/.test(s) || /[\x00-\x1f\x7f]/.test(s)) {
    return "must be a clean path without ':', whitespace, '//' or a trailing '/'";
  }
  return undefined;
}

/** Returns why `s` is not a Kubernetes resource quantity, or undefined when it is one. */
export function checkQuantity(s: string): string | undefined {
  return QUANTITY.test(s) ? undefined : "must be a Kubernetes quantity such as 100m, 64Mi or 1";
}

/** Returns why `s` is not a plausible image reference, or undefined when it is one. */
export function checkImage(s: string): string | undefined {
  if (s.length > 512) return "must be at most 512 characters";
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/.test(s)) {
    return "must be an image reference like registry/name:tag";
  }
  return undefined;
}

const PROFILE_KEYS = [
  "agent",
  "containerName",
  "image",
  "imagePullPolicy",
  "logDir",
  "volumeName",
  "resources",
  "securityContext",
  "env",
  "output",
  "configMap",
] as const;

function readResources(r: Reader, value: unknown, path: string): ResourceRequirements {
  const obj = r.object(value, path, ["requests", "limits"]);
  const out: ResourceRequirements = {};
  for (const key of ["requests", "limits"] as const) {
    if (obj[key] === undefined) continue;
    const m = r.object(obj[key], join(path, key), ["cpu", "memory", "ephemeral-storage"]);
    const q: Record<string, string> = {};
    for (const [name, v] of Object.entries(m)) {
      const s = typeof v === "number" ? String(v) : v;
      q[name] = r.string(s, join(join(path, key), name), checkQuantity);
    }
    out[key] = q;
  }
  return out;
}

function readEnv(r: Reader, value: unknown, path: string): EnvVar[] {
  if (!Array.isArray(value)) r.fail(path, `must be a list, got ${describe(value)}`);
  return value.map((item, i) => {
    const p = join(path, i);
    const obj = r.object(item, p, ["name", "value"]);
    const name = r.string(
      obj.name,
      join(p, "name"),
      (s) => ENV_NAME.test(s) ? undefined : "must be a valid environment variable name",
    );
    if (typeof obj.value !== "string") {
      r.fail(join(p, "value"), `must be a string, got ${describe(obj.value)}`);
    }
    return { name, value: obj.value };
  });
}

function readSecurityContext(r: Reader, value: unknown, path: string): SecurityContext {
  const obj = r.object(value, path, [
    "runAsNonRoot",
    "runAsUser",
    "runAsGroup",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "privileged",
    "capabilities",
    "seccompProfile",
  ]);
  const out: SecurityContext = {};
  for (
    const key of [
      "runAsNonRoot",
      "allowPrivilegeEscalation",
      "readOnlyRootFilesystem",
      "privileged",
    ] as const
  ) {
    if (obj[key] !== undefined) out[key] = r.boolean(obj[key], join(path, key));
  }
  for (const key of ["runAsUser", "runAsGroup"] as const) {
    const v = obj[key];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      r.fail(join(path, key), `must be a non-negative integer, got ${describe(v)}`);
    }
    out[key] = v;
  }
  if (obj.capabilities !== undefined) {
    const c = r.object(obj.capabilities, join(path, "capabilities"), ["add", "drop"]);
    out.capabilities = {};
    if (c.add !== undefined) {
      out.capabilities.add = r.stringList(c.add, join(path, "capabilities.add"));
    }
    if (c.drop !== undefined) {
      out.capabilities.drop = r.stringList(c.drop, join(path, "capabilities.drop"));
    }
  }
  if (obj.seccompProfile !== undefined) {
    const p = join(path, "seccompProfile");
    const s = r.object(obj.seccompProfile, p, ["type", "localhostProfile"]);
    out.seccompProfile = {
      type: r.oneOf(s.type, join(p, "type"), ["RuntimeDefault", "Localhost", "Unconfined"]),
    };
    if (s.localhostProfile !== undefined) {
      out.seccompProfile.localhostProfile = r.string(
        s.localhostProfile,
        join(p, "localhostProfile"),
      );
    }
  }
  return out;
}

function readOutput(r: Reader, value: unknown, path: string, agent: Agent): Output {
  const obj = r.object(value, path, ["type", "host", "port", "config"]);
  const type = r.oneOf(obj.type, join(path, "type"), ["stdout", "forward", "raw"]);
  const allowed =
    { stdout: ["type"], forward: ["type", "host", "port"], raw: ["type", "config"] }[type];
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) r.fail(join(path, k), `not allowed with output type ${type}`);
  }
  if (type === "forward") {
    return {
      type,
      host: r.string(
        obj.host,
        join(path, "host"),
        (s) => /^[a-zA-Z0-9.\-:]+$/.test(s) ? undefined : "must be a host name or IP address",
      ),
      port: r.port(obj.port ?? 24224, join(path, "port")),
    };
  }
  if (type === "raw") {
    if (agent !== "fluentd") {
      r.fail(
        join(path, "type"),
        "raw output is supported for agent fluentd only; use configMap for fluent-bit",
      );
    }
    return { type, config: r.string(obj.config, join(path, "config")) };
  }
  return { type };
}

function readProfile(
  r: Reader,
  name: string,
  value: unknown,
  path: string,
  base?: Profile,
): Profile {
  const obj = r.object(value ?? {}, path, PROFILE_KEYS);
  const agent: Agent = obj.agent !== undefined
    ? r.oneOf(obj.agent, join(path, "agent"), ["fluentd", "fluent-bit"])
    : base?.agent ?? (name === "fluent-bit" ? "fluent-bit" : "fluentd");
  // A profile starts from the built-in one of the same name, else from its agent's defaults.
  const p: Profile = base && base.agent === agent ? structuredClone(base) : AGENT_DEFAULTS[agent]();
  if (obj.containerName !== undefined) {
    p.containerName = r.string(obj.containerName, join(path, "containerName"), checkDnsLabel);
  }
  if (obj.image !== undefined) p.image = r.string(obj.image, join(path, "image"), checkImage);
  if (obj.imagePullPolicy !== undefined) {
    p.imagePullPolicy = r.oneOf(obj.imagePullPolicy, join(path, "imagePullPolicy"), [
      "Always",
      "IfNotPresent",
      "Never",
    ]);
  }
  if (obj.logDir !== undefined) p.logDir = r.string(obj.logDir, join(path, "logDir"), checkLogDir);
  if (obj.volumeName !== undefined) {
    p.volumeName = r.string(obj.volumeName, join(path, "volumeName"), checkDnsLabel);
  }
  if (obj.resources !== undefined) {
    p.resources = readResources(r, obj.resources, join(path, "resources"));
  }
  if (obj.securityContext !== undefined) {
    p.securityContext = readSecurityContext(r, obj.securityContext, join(path, "securityContext"));
  }
  if (obj.env !== undefined) p.env = readEnv(r, obj.env, join(path, "env"));
  if (obj.output !== undefined) p.output = readOutput(r, obj.output, join(path, "output"), agent);
  if (obj.configMap !== undefined) {
    p.configMap = r.string(obj.configMap, join(path, "configMap"), checkDnsSubdomain);
  }
  if (p.configMap && p.logDir === AGENT_CONFIG_DIR[agent]) {
    r.fail(
      join(path, "logDir"),
      `must differ from ${AGENT_CONFIG_DIR[agent]}, where the configMap is mounted`,
    );
  }
  return p;
}

function checkDnsSubdomain(s: string): string | undefined {
  return s.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s)
    ? undefined
    : "must be a DNS-1123 subdomain (a ConfigMap name)";
}

/**
 * Parses a YAML config over the defaults.
 *
 * @throws {SyntaxError} when the text is not YAML.
 * @throws {TypeError} naming the source, the path and the reason when a value is wrong.
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
    throw new SyntaxError(
      `${source}: not valid YAML: ${err instanceof Error ? err.message : err}`,
      {
        cause: err,
      },
    );
  }
  const r = new Reader(source);
  const obj = r.object(doc ?? {}, "", [
    "defaultProfile",
    "mode",
    "nativeSidecars",
    "onError",
    "excludeNamespaces",
    "profiles",
  ]);
  const config = buildDefaults();
  if (obj.mode !== undefined) {
    config.mode = r.oneOf(obj.mode, "mode", ["auto", "native", "classic"]);
  }
  if (obj.nativeSidecars !== undefined) {
    config.nativeSidecars = r.boolean(obj.nativeSidecars, "nativeSidecars");
  }
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

/** Reports from a {@link ConfigSource} reload. */
export interface ConfigReloadEvents {
  onReload?: (result: "ok" | "unchanged" | "rejected", error?: string) => void;
}

/**
 * The live config: the last good one, replaced on `reload()` only when the
 * file parses. An invalid file leaves the current config serving.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigSource } from "./config.ts";
 * let text = "mode: classic\n";
 * const source = await ConfigSource.open("/cfg.yaml", { read: () => Promise.resolve(text) });
 * text = "mode: sometimes\n";
 * assert.equal(await source.reload(), "rejected");
 * assert.equal(source.current.mode, "classic");
 * ```
 */
export class ConfigSource {
  #current: Config;
  #serialized: string;

  private constructor(
    readonly path: string | undefined,
    private readonly options: {
      read: (path: string) => Promise<string>;
      ownNamespace?: string | undefined;
    } & ConfigReloadEvents,
    first: Config,
  ) {
    this.#current = first;
    this.#serialized = JSON.stringify(first);
  }

  /** Loads `path` (or the defaults when undefined); throws when it is invalid. */
  static async open(
    path: string | undefined,
    options:
      & { read?: (path: string) => Promise<string>; ownNamespace?: string | undefined }
      & ConfigReloadEvents = {},
  ): Promise<ConfigSource> {
    const opts = { ...options, read: options.read ?? Deno.readTextFile };
    const first = await ConfigSource.#load(path, opts.read, opts.ownNamespace);
    return new ConfigSource(path, opts, first);
  }

  static async #load(
    path: string | undefined,
    read: (path: string) => Promise<string>,
    ownNamespace: string | undefined,
  ): Promise<Config> {
    const config = path ? await loadConfig(path, read) : defaultConfig();
    return withExcludedNamespace(config, ownNamespace);
  }

  /** The config to use now. */
  get current(): Config {
    return this.#current;
  }

  /** Re-reads the file; keeps the current config when the new one is invalid. */
  async reload(): Promise<"ok" | "unchanged" | "rejected"> {
    try {
      const next = await ConfigSource.#load(
        this.path,
        this.options.read,
        this.options.ownNamespace,
      );
      const serialized = JSON.stringify(next);
      if (serialized === this.#serialized) {
        this.options.onReload?.("unchanged");
        return "unchanged";
      }
      this.#current = next;
      this.#serialized = serialized;
      this.options.onReload?.("ok");
      return "ok";
    } catch (err) {
      this.options.onReload?.("rejected", err instanceof Error ? err.message : String(err));
      return "rejected";
    }
  }
}
