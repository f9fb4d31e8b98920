/**
 * Parsing of a profile's keys for the agent's endpoint, probes and stop
 * (`metrics`, `metricsPort`, `probes`, `preStopSeconds`).
 * @module
 */
import { METRICS_PORT_ENV } from "../agent/mod.ts";
import type { Profile } from "./types.ts";
import { join, type Validator } from "./validator.ts";

/** The profile keys read here. */
export const HEALTH_KEYS = ["metrics", "metricsPort", "probes", "preStopSeconds"] as const;

/**
 * Longest preStop pause: the default grace period is 30 s and the agent needs
 * what is left to flush after SIGTERM.
 */
export const MAX_PRE_STOP_SECONDS = 20;

/**
 * Reads the keys into `p`. An operator's ConfigMap has no endpoint unless
 * they wrote one, so with `configMap` metrics and probes are off unless
 * asked for; probes need the endpoint.
 */
export function readHealth(
  r: Validator,
  obj: Record<string, unknown>,
  path: string,
  p: Profile,
): void {
  if (obj.metrics !== undefined) p.metrics = r.boolean(obj.metrics, join(path, "metrics"));
  else if (obj.configMap !== undefined) p.metrics = false;
  if (obj.probes !== undefined) p.probes = r.boolean(obj.probes, join(path, "probes"));
  else if (!p.metrics) p.probes = false;
  if (p.probes && !p.metrics) {
    r.fail(join(path, "probes"), "needs metrics: true (the probes ask the metrics endpoint)");
  }
  if (obj.metricsPort !== undefined) {
    p.metricsPort = r.port(obj.metricsPort, join(path, "metricsPort"));
  }
  if (obj.preStopSeconds !== undefined) {
    p.preStopSeconds = r.integer(
      obj.preStopSeconds,
      join(path, "preStopSeconds"),
      0,
      MAX_PRE_STOP_SECONDS,
      `an integer from 0 to ${MAX_PRE_STOP_SECONDS}`,
    );
  }
  const i = p.env.findIndex((e) => e.name === METRICS_PORT_ENV);
  if (i >= 0) r.fail(join(join(path, "env"), i), `${METRICS_PORT_ENV} is set from metricsPort`);
}
