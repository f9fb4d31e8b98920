/**
 * Where the agent's metrics endpoint listens in a pod, if anywhere.
 * @module
 */
import type { PodSpec } from "kubernetes-types/core/v1.d.ts";
import { choosePort, declaredPorts } from "../agent/mod.ts";
import type { Profile } from "../config/mod.ts";

/**
 * The profile's port, moved past the ports the pod's containers declare;
 * `undefined` when metrics are off, or for a `hostNetwork` pod, whose port
 * would be the node's (two such pods, or a node agent on the same port, would
 * keep the agent and then the app from starting).
 */
export function chooseMetricsPort(
  profile: Profile,
  spec: PodSpec,
  warnings: string[],
): number | undefined {
  if (!profile.metrics) return undefined;
  if (spec.hostNetwork) {
    warnings.push(
      "sidecar-injector: hostNetwork pod: the agent serves no metrics and has no probes " +
        "(its port would be the node's)",
    );
    return undefined;
  }
  const containers = [...spec.containers, ...(spec.initContainers ?? [])];
  return choosePort(profile.metricsPort, declaredPorts(containers), warnings);
}
