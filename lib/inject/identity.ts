/**
 * Who the agent runs as. An app that runs as a non-root user often writes
 * files only that user can read (0600, or in a 0700 directory); the agent
 * reads them only when it runs as the same user. The pod-level `fsGroup` and
 * `supplementalGroups` apply to every container, the agent included.
 * @module
 */
import type { Container, PodSpec } from "kubernetes-types/core/v1.d.ts";
import type { Identity } from "../agent/mod.ts";

/**
 * The user and group the app containers writing to the log volume run as
 * (a container's own `runAsUser` over the pod's), the first one's when they
 * differ, with a warning; `undefined` when none is declared or it is root
 * (the agent stays non-root).
 */
export function agentIdentity(
  spec: PodSpec,
  apps: readonly Container[],
  warnings: string[],
): Identity | undefined {
  const pod = spec.securityContext;
  const effective = apps.map((c) => ({
    user: c.securityContext?.runAsUser ?? pod?.runAsUser,
    group: c.securityContext?.runAsGroup ?? pod?.runAsGroup,
  }));
  const users = [...new Set(effective.flatMap((e) => e.user ?? []))];
  const first = effective.find((e) => e.user !== undefined);
  if (!first?.user) return undefined;
  if (users.length > 1) {
    warnings.push(
      `sidecar-injector: app containers run as different users (${users.join(", ")}); ` +
        `the log agent runs as ${first.user}, so the others' log files must be group- or world-readable`,
    );
  }
  return first.group === undefined
    ? { runAsUser: first.user }
    : { runAsUser: first.user, runAsGroup: first.group };
}
