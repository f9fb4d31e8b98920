/**
 * The agent's config files for a pipeline: the main config and, when the
 * agent needs one, a second file (Fluentd's filter plugin, Fluent Bit's
 * parsers) at a path inside the agent's config dir.
 * @module
 */
import { FLUENT_BIT_PARSERS_FILE, fluentBitConfig, fluentBitParsers } from "./fluent_bit.ts";
import { fluentdConfig } from "./fluentd.ts";
import { FLUENTD_PLUGIN, FLUENTD_PLUGIN_DIR, FLUENTD_PLUGIN_FILE } from "./fluentd_plugin.ts";
import type { Agent, Pipeline } from "./pipeline.ts";

/** A rendered config: the main file, and the second file when there is one. */
export interface AgentFiles {
  config: string;
  extra?: { path: string; text: string };
}

/**
 * Renders `agent`'s files for `p`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderAgentFiles } from "./render.ts";
 * const p = { logDir: "/var/log/app", output: { type: "stdout" as const }, containers: ["web"], bufferBytes: 2 ** 28 };
 * assert.equal(renderAgentFiles("fluentd", p).extra?.path, "plugin/filter_sidecar_record.rb");
 * assert.equal(renderAgentFiles("fluent-bit", p).extra, undefined);
 * ```
 */
export function renderAgentFiles(agent: Agent, p: Pipeline): AgentFiles {
  if (agent === "fluentd") {
    return {
      config: fluentdConfig(p),
      extra: { path: `${FLUENTD_PLUGIN_DIR}/${FLUENTD_PLUGIN_FILE}`, text: FLUENTD_PLUGIN },
    };
  }
  const parsers = fluentBitParsers(p);
  return {
    config: fluentBitConfig(p),
    ...(parsers === undefined ? {} : { extra: { path: FLUENT_BIT_PARSERS_FILE, text: parsers } }),
  };
}
