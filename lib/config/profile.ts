/**
 * Parsing of one `profiles.<name>` entry of the config file.
 * @module
 */
import type { EnvVar, ResourceRequirements, SecurityContext } from "kubernetes-types/core/v1.d.ts";
import { checkAgentPaths, checkFluentdMatch, checkParser, PARSERS } from "../agent/mod.ts";
import { agentDefaults } from "./defaults.ts";
import type { Agent, CaSource, Output, Profile } from "./types.ts";
import {
  checkConfigKey,
  checkDnsLabel,
  checkDnsSubdomain,
  checkEnvName,
  checkHost,
  checkImage,
  checkLogDir,
  checkQuantity,
} from "./fields.ts";
import { describe, join, type Validator } from "./validator.ts";
import { HEALTH_KEYS, readHealth } from "./health.ts";

/** The Fluentd forward protocol's registered port, the default for `output.port`. */
export const FORWARD_PORT = 24224;

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
  "logVolumeSizeLimit",
  "bufferLimit",
  "parser",
  ...HEALTH_KEYS,
] as const;

function readResources(r: Validator, value: unknown, path: string): ResourceRequirements {
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

function readEnv(r: Validator, value: unknown, path: string): EnvVar[] {
  if (!Array.isArray(value)) r.fail(path, `must be a list, got ${describe(value)}`);
  return value.map((item, i) => {
    const p = join(path, i);
    const obj = r.object(item, p, ["name", "value"]);
    const name = r.string(obj.name, join(p, "name"), checkEnvName);
    if (typeof obj.value !== "string") {
      r.fail(join(p, "value"), `must be a string, got ${describe(obj.value)}`);
    }
    return { name, value: obj.value };
  });
}

const SECURITY_FLAGS = [
  "runAsNonRoot",
  "allowPrivilegeEscalation",
  "readOnlyRootFilesystem",
  "privileged",
] as const;

function readSecurityContext(r: Validator, value: unknown, path: string): SecurityContext {
  const obj = r.object(value, path, [
    ...SECURITY_FLAGS,
    "runAsUser",
    "runAsGroup",
    "capabilities",
    "seccompProfile",
  ]);
  const out: SecurityContext = {};
  for (const key of SECURITY_FLAGS) {
    if (obj[key] !== undefined) out[key] = r.boolean(obj[key], join(path, key));
  }
  for (const key of ["runAsUser", "runAsGroup"] as const) {
    if (obj[key] === undefined) continue;
    out[key] = r.integer(
      obj[key],
      join(path, key),
      0,
      Number.MAX_SAFE_INTEGER,
      "a non-negative integer",
    );
  }
  if (obj.capabilities !== undefined) {
    const c = r.object(obj.capabilities, join(path, "capabilities"), ["add", "drop"]);
    out.capabilities = {};
    for (const key of ["add", "drop"] as const) {
      if (c[key] !== undefined) {
        out.capabilities[key] = r.stringList(c[key], join(path, `capabilities.${key}`));
      }
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

const OUTPUT_KEYS = {
  stdout: ["type"],
  forward: ["type", "host", "port", "tls", "caSecret", "caConfigMap", "caKey"],
  raw: ["type", "config"],
} as const;

/** The key of the CA bundle in its Secret or ConfigMap unless `caKey` says otherwise. */
const DEFAULT_CA_KEY = "ca.crt";

function readCa(r: Validator, obj: Record<string, unknown>, path: string): CaSource | undefined {
  if (obj.caSecret !== undefined && obj.caConfigMap !== undefined) {
    r.fail(join(path, "caConfigMap"), "give caSecret or caConfigMap, not both");
  }
  const key = obj.caKey === undefined
    ? DEFAULT_CA_KEY
    : r.string(obj.caKey, join(path, "caKey"), checkConfigKey);
  if (obj.caSecret !== undefined) {
    return { secret: r.string(obj.caSecret, join(path, "caSecret"), checkDnsSubdomain), key };
  }
  if (obj.caConfigMap !== undefined) {
    const configMap = r.string(obj.caConfigMap, join(path, "caConfigMap"), checkDnsSubdomain);
    return { configMap, key };
  }
  if (obj.caKey !== undefined) r.fail(join(path, "caKey"), "needs caSecret or caConfigMap");
  return undefined;
}

function readOutput(r: Validator, value: unknown, path: string, agent: Agent): Output {
  const obj = r.object(value, path, [
    "type",
    "host",
    "port",
    "config",
    "tls",
    "caSecret",
    "caConfigMap",
    "caKey",
  ]);
  const type = r.oneOf(obj.type, join(path, "type"), ["stdout", "forward", "raw"]);
  const allowed: readonly string[] = OUTPUT_KEYS[type];
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) r.fail(join(path, k), `not allowed with output type ${type}`);
  }
  if (type === "forward") {
    const tls = obj.tls !== undefined && r.boolean(obj.tls, join(path, "tls"));
    const ca = readCa(r, obj, path);
    if (ca && !tls) r.fail(join(path, "tls"), "must be true when a CA is given");
    return {
      type,
      host: r.string(obj.host, join(path, "host"), checkHost),
      port: r.port(obj.port ?? FORWARD_PORT, join(path, "port")),
      tls,
      ...(ca ? { ca } : {}),
    };
  }
  if (type === "raw") {
    if (agent !== "fluentd") {
      r.fail(
        join(path, "type"),
        "raw output is supported for agent fluentd only; use configMap for fluent-bit",
      );
    }
    return { type, config: r.string(obj.config, join(path, "config"), checkFluentdMatch) };
  }
  return { type };
}

/**
 * Reads one profile. It starts from `base` (the built-in or earlier profile
 * of the same name) when that runs the same agent, else from the agent's defaults.
 */
export function readProfile(
  r: Validator,
  name: string,
  value: unknown,
  path: string,
  base: Profile | undefined,
): Profile {
  const obj = r.object(value ?? {}, path, PROFILE_KEYS);
  const agent: Agent = obj.agent !== undefined
    ? r.oneOf(obj.agent, join(path, "agent"), ["fluentd", "fluent-bit"])
    : base?.agent ?? (name === "fluent-bit" ? "fluent-bit" : "fluentd");
  const p: Profile = base && base.agent === agent ? structuredClone(base) : agentDefaults(agent);
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
  for (const key of ["logVolumeSizeLimit", "bufferLimit"] as const) {
    if (obj[key] === undefined) continue;
    const v = typeof obj[key] === "number" ? String(obj[key]) : obj[key];
    p[key] = r.string(v, join(path, key), checkQuantity);
  }
  if (obj.configMap !== undefined) {
    p.configMap = r.string(obj.configMap, join(path, "configMap"), checkDnsSubdomain);
  }
  if (obj.parser !== undefined) p.parser = r.oneOf(obj.parser, join(path, "parser"), PARSERS);
  const unsupported = checkParser(agent, p.parser);
  if (unsupported) r.fail(join(path, "parser"), unsupported);
  readHealth(r, obj, path, p);
  const clash = checkAgentPaths(p.logDir, agent);
  if (clash) r.fail(join(path, "logDir"), clash);
  return p;
}
