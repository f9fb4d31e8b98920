/**
 * The injector's configuration: its types and defaults, parsing and
 * validation of the config file (one profile per agent template), the field
 * checks the per-pod annotations share, and the live source that reloads the
 * file when it changes.
 * @module
 */
export type { Agent, CaSource, Config, Mode, Output, Parser, Profile } from "./types.ts";
export { deepFreeze, defaultConfig, NOBODY, SYSTEM_NAMESPACES } from "./defaults.ts";
export { loadConfig, parseConfig, withExcludedNamespace } from "./parse.ts";
export { ConfigSyntaxError, InvalidConfigError } from "./validator.ts";
export { checkImage, checkLogDir, checkQuantity, DNS_LABEL_MAX, quantity } from "./fields.ts";
export { ConfigSource, type ConfigSourceOptions, type ReloadResult } from "./source.ts";
