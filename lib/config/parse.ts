/**
 * Injector configuration: YAML parsing and validation over the defaults.
 *
 * A config file only states what differs from the defaults. Unknown keys and
 * wrong types are rejected with the file, the path and the reason.
 * @module
 */
import { load } from "js-yaml";
import { checkDnsLabel } from "./fields.ts";
import { buildDefaults, deepFreeze, SYSTEM_NAMESPACES } from "./defaults.ts";
import { readProfile } from "./profile.ts";
import type { Config } from "./types.ts";
import { ConfigSyntaxError, Validator } from "./validator.ts";

/** Accepted for `mode` in a config file; `auto` is the former default, now the same as `native`. */
const MODES = ["native", "classic", "auto"] as const;

/**
 * Parses a YAML config over the defaults.
 *
 * @throws {ConfigSyntaxError} when the text is not YAML.
 * @throws {InvalidConfigError} naming the source, the path and the reason when a value is wrong.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./parse.ts";
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
 * import { loadConfig } from "./parse.ts";
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
