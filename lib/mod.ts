/**
 * A Kubernetes mutating admission webhook that injects a log-shipping sidecar
 * (Fluentd, or Fluent Bit) into new Pods.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig, inject } from "./mod.ts";
 * const result = inject({ spec: { containers: [{ name: "app" }] } }, defaultConfig());
 * assert.equal(result.decision, "injected");
 * ```
 * @module
 */
export {
  type Agent,
  type Config,
  ConfigSource,
  type ConfigSourceOptions,
  ConfigSyntaxError,
  defaultConfig,
  InvalidConfigError,
  loadConfig,
  type Mode,
  type Output,
  parseConfig,
  type Parser,
  type Profile,
  type ReloadResult,
  SYSTEM_NAMESPACES,
  withExcludedNamespace,
} from "./config/mod.ts";
export * from "./inject/mod.ts";
export { renderSidecar, type SidecarNames } from "./agent/mod.ts";
export * from "./admission/mod.ts";
export * from "./http/mod.ts";
export * from "./observe/mod.ts";
export { watchFiles, type WatchOptions } from "./watch/mod.ts";
export * from "./tls/mod.ts";
export * from "./kube/mod.ts";
export * from "./audit/mod.ts";
