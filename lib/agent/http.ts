/**
 * The agent's HTTP endpoint and its lifecycle in the pod: Fluent Bit's HTTP
 * server or Fluentd's `monitor_agent` on a named container port, the probes
 * the kubelet runs against it, and the pause before SIGTERM.
 *
 * - The startupProbe succeeds once the agent has read its config and started
 *   tailing; with a native sidecar the kubelet starts the app containers only
 *   then, so a file the app creates at once is never missed at start.
 * - The livenessProbe asks an endpoint that stays green while the aggregator
 *   is down (an outage is the file buffer's job; a restart would not help) and
 *   turns red when the agent stops answering.
 * - The preStop pause runs before SIGTERM: the agent scans for new files once
 *   a second, and a short pod's file may be younger than that when the pod
 *   stops.
 * @module
 */
import type { Container, ContainerPort, Lifecycle, Probe } from "kubernetes-types/core/v1.d.ts";
import { FLUSH_SECONDS, type Pipeline } from "./pipeline.ts";
import type { Agent } from "./pipeline.ts";

/** What a profile says about the agent's endpoint, probes and stop. */
export interface AgentHealth {
  /** Serve metrics on a named container port (Fluent Bit's HTTP server, Fluentd's monitor_agent). */
  metrics: boolean;
  /** The port asked for; moved when an app container declares it. */
  metricsPort: number;
  /** Startup and liveness probes on the endpoint (needs `metrics`). */
  probes: boolean;
  /** Pause before SIGTERM so the agent finds files created in its last second; 0 turns it off. */
  preStopSeconds: number;
}

/** The named container port the endpoint listens on, for PodMonitors and probes. */
export const METRICS_PORT_NAME = "agent-metrics";
/** The variable that hands the agent its port; both configs read it. */
export const METRICS_PORT_ENV = "AGENT_METRICS_PORT";

/** Each agent's usual port: Fluent Bit's HTTP server and Fluentd's monitor_agent. */
export const DEFAULT_METRICS_PORT: Record<Agent, number> = {
  "fluentd": 24220,
  "fluent-bit": 2020,
};

/** Two scans for new files at one a second: the last file an app wrote is found and read. */
export const DEFAULT_PRE_STOP_SECONDS = 2 * FLUSH_SECONDS;

/** The defaults of a profile running `agent`. */
export function healthDefaults(agent: Agent): AgentHealth {
  return {
    metrics: true,
    metricsPort: DEFAULT_METRICS_PORT[agent],
    probes: true,
    preStopSeconds: DEFAULT_PRE_STOP_SECONDS,
  };
}

/** Where the metrics are, per agent. */
export const METRICS_PATH: Record<Agent, string> = {
  "fluentd": "/api/plugins.json",
  "fluent-bit": "/api/v2/metrics/prometheus",
};

/**
 * What the probes ask. Fluent Bit's `/api/v1/health` turns red on output
 * errors and retries, which is what an aggregator outage produces; its uptime
 * answers whenever the process does. Fluentd's monitor_agent answers as long
 * as its event loop runs.
 */
export const PROBE_PATH: Record<Agent, string> = {
  "fluentd": "/api/plugins.json",
  "fluent-bit": "/api/v1/uptime",
};

/**
 * Liveness: one probe every 10 s that may take 5 s, red after 3 failures in
 * a row, so a wedged agent is restarted 25-35 s after it stops answering,
 * and a slow answer under CPU pressure is not a failure.
 */
const LIVENESS = { periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 } as const;
/**
 * Startup: asked every second for up to 2 minutes (Fluentd needs 2-4 s, more
 * on a busy node); past that the kubelet restarts the agent and the pod shows it.
 */
const STARTUP = { periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 120 } as const;

/** The lines of Fluent Bit's `[SERVICE]` section that start its HTTP server. */
export function fluentBitHttpServer(p: Pipeline): Array<[string, string]> {
  if (!p.metrics) return [];
  return [
    ["HTTP_Server", "On"],
    ["HTTP_Listen", "0.0.0.0"],
    ["HTTP_Port", `\${${METRICS_PORT_ENV}}`],
    // Chunks up and down, per input and in total, in the metrics: the lines waiting.
    ["storage.metrics", "On"],
  ];
}

/**
 * Fluentd's `monitor_agent` source. It goes after the tail source: Fluentd
 * starts inputs in order, so an answer means the tail has started.
 */
export function fluentdMonitorAgent(p: Pipeline): string[] {
  if (!p.metrics) return [];
  return [
    "<source>",
    "  @type monitor_agent",
    "  @id monitor",
    "  bind 0.0.0.0",
    // Plugin parameters stay out of the answer: a raw output's may hold credentials.
    "  include_config false",
    `  port "#{ENV['${METRICS_PORT_ENV}']}"`,
    "</source>",
  ];
}

/**
 * The port the endpoint gets in a pod whose containers declare `taken`:
 * `wanted`, or the next free one above it, with a warning.
 */
export function choosePort(wanted: number, taken: ReadonlySet<number>, warnings: string[]): number {
  let port = wanted;
  while (taken.has(port) && port < 65535) port++;
  if (taken.has(port)) port = 1024;
  while (taken.has(port)) port++;
  if (port !== wanted) {
    warnings.push(
      `sidecar-injector: port ${wanted} is already declared by a container; ` +
        `the agent's metrics listen on ${port} (port name ${METRICS_PORT_NAME})`,
    );
  }
  return port;
}

/** Every port the pod's containers declare. */
export function declaredPorts(containers: readonly Container[]): Set<number> {
  return new Set(
    containers.flatMap((c) => (c.ports ?? []).map((p: ContainerPort) => p.containerPort)),
  );
}

/**
 * The container fields for the endpoint on `port` (none when `port` is
 * undefined) and for the stop: env, ports, probes, lifecycle.
 */
export function agentHttpFields(
  agent: Agent,
  health: Pick<AgentHealth, "probes" | "preStopSeconds">,
  port: number | undefined,
): Pick<Container, "ports" | "startupProbe" | "livenessProbe" | "lifecycle"> {
  const out: Pick<Container, "ports" | "startupProbe" | "livenessProbe" | "lifecycle"> = {};
  if (port !== undefined) {
    out.ports = [{ name: METRICS_PORT_NAME, containerPort: port, protocol: "TCP" }];
    if (health.probes) {
      const httpGet = { path: PROBE_PATH[agent], port: METRICS_PORT_NAME };
      out.startupProbe = { httpGet, ...STARTUP } satisfies Probe;
      out.livenessProbe = { httpGet, ...LIVENESS } satisfies Probe;
    }
  }
  if (health.preStopSeconds > 0) out.lifecycle = preStop(agent, health.preStopSeconds);
  return out;
}

/**
 * The pause before SIGTERM. Fluent Bit's image has no shell and no `sleep`:
 * the kubelet's own sleep action (Kubernetes >= 1.30). Fluentd's image has
 * both, and `exec` works on every version.
 */
function preStop(agent: Agent, seconds: number): Lifecycle {
  return agent === "fluent-bit"
    ? { preStop: { sleep: { seconds } } }
    : { preStop: { exec: { command: ["sleep", String(seconds)] } } };
}
