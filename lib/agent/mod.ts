/**
 * Everything about the agent container: the pipeline both agents' configs
 * are rendered from, one renderer per agent, the check of an operator's raw
 * Fluentd output, the paths inside the container, and the container itself.
 * Imports nothing else from `lib/`.
 * @module
 */
export {
  type Agent,
  APP_FIELDS_KEY,
  type CaSource,
  checkParser,
  MAX_LINE_BYTES,
  type Output,
  type Parser,
  PARSERS,
  type Pipeline,
  RESERVED_KEYS,
} from "./pipeline.ts";
export {
  AGENT_CONFIG_DIR,
  AGENT_CONFIG_FILE,
  AGENT_STATE_DIR,
  checkAgentPaths,
  FORWARD_CA_DIR,
} from "./paths.ts";
export { fluentdConfig } from "./fluentd.ts";
export { FLUENT_BIT_DEPTH, FLUENT_BIT_TAG, fluentBitConfig } from "./fluent_bit.ts";
export { type AgentFiles, renderAgentFiles } from "./render.ts";
export { checkFluentdMatch } from "./raw_output.ts";
export {
  type AgentHealth,
  choosePort,
  declaredPorts,
  DEFAULT_METRICS_PORT,
  healthDefaults,
  METRICS_PATH,
  METRICS_PORT_ENV,
  METRICS_PORT_NAME,
  PROBE_PATH,
} from "./http.ts";
export {
  type AgentSpec,
  type Identity,
  renderSidecar,
  type SidecarNames,
  type SidecarOptions,
} from "./sidecar.ts";
