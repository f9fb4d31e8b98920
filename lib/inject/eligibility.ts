/**
 * Which pods never get the agent, whatever the config says. The same rules
 * appear as CEL `matchConditions` in k8s/mutatingwebhookconfiguration.yaml, so
 * the apiserver does not even call the webhook for most of them; they are
 * still enforced here for the CLI and for clusters without CEL.
 * @module
 */
import type { PodSpec } from "kubernetes-types/core/v1.d.ts";

/** Why a pod was not injected; the `reason` label of the skipped-pods metric. */
export type SkipReason =
  | "excluded_namespace"
  | "already_injected"
  | "mirror_pod"
  | "opted_out"
  | "no_containers"
  | "windows"
  | "run_to_completion"
  | "not_pod_create"
  | "no_pod_template"
  | "injection_failed";

/** The kubelet's mark on the API copy of a static pod: the apiserver rejects changes to it. */
export const MIRROR_ANNOTATION = "kubernetes.io/config.mirror";
/** The well-known node label for the operating system. */
const OS_LABEL = "kubernetes.io/os";

/**
 * True when the pod can only run on Windows nodes: `spec.os.name`, a
 * `nodeSelector`, or required node affinity whose every term asks for Windows
 * only. A Linux agent could never start there.
 */
export function isWindowsPod(spec: PodSpec): boolean {
  if (spec.os?.name === "windows") return true;
  if (spec.nodeSelector?.[OS_LABEL] === "windows") return true;
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution
    ?.nodeSelectorTerms ?? [];
  return terms.length > 0 &&
    terms.every((term) =>
      (term.matchExpressions ?? []).some((e) =>
        e.key === OS_LABEL && e.operator === "In" && (e.values ?? []).length > 0 &&
        (e.values ?? []).every((v) => v === "windows")
      )
    );
}

/**
 * True when the pod is meant to run to completion (`restartPolicy` `Never` or
 * `OnFailure`): a classic sidecar never exits and would keep it running.
 */
export function runsToCompletion(spec: PodSpec): boolean {
  return spec.restartPolicy === "Never" || spec.restartPolicy === "OnFailure";
}
