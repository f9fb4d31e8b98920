/**
 * Where the agent container's files live inside it: its config, its state
 * (positions, buffers, temp files) and the forward output's CA bundle. The
 * sidecar mounts them there and the rendered configs refer to them.
 * @module
 */
import type { Agent } from "./pipeline.ts";

/** Where each agent's image reads its config (the rendered config or the operator's ConfigMap is mounted there). */
export const AGENT_CONFIG_DIR: Record<Agent, string> = {
  "fluentd": "/fluentd/etc",
  "fluent-bit": "/fluent-bit/etc",
};

/** Where the agent keeps what must outlive its own restarts: positions, buffers, temp files. */
export const AGENT_STATE_DIR = "/var/lib/sidecar-injector";
/** Where a forward output's CA bundle is mounted. */
export const FORWARD_CA_DIR = "/etc/sidecar-injector/forward-ca";
/** The file, in the agent's config dir, that holds the rendered config. */
export const AGENT_CONFIG_FILE: Record<Agent, string> = {
  "fluentd": "fluent.conf",
  "fluent-bit": "fluent-bit.conf",
};
/**
 * Returns why `logDir` cannot be the log dir of `agent`: the agent mounts its
 * config, state and CA there, and one mount may not sit on or inside another's path.
 */
export function checkAgentPaths(logDir: string, agent: Agent): string | undefined {
  for (const dir of [AGENT_CONFIG_DIR[agent], AGENT_STATE_DIR, FORWARD_CA_DIR]) {
    if (logDir === dir || logDir.startsWith(`${dir}/`) || dir.startsWith(`${logDir}/`)) {
      return `must not be, contain or lie in ${dir}, where the agent mounts its own files`;
    }
  }
  return undefined;
}
