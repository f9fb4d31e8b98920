/**
 * AdmissionReview bodies for a Pod CREATE, shaped as kube-apiserver sends them.
 * Shared by the hardening tests and the benchmark fixtures.
 * @module
 */

/** What differs between reviews; everything else is as the apiserver fills it in. */
export interface PodReviewOptions {
  uid: string;
  namespace: string;
  /** The pod's name; omitted for pods made from `generateName`. */
  name?: string;
  apiVersion?: "admission.k8s.io/v1" | "admission.k8s.io/v1beta1";
  userInfo?: Record<string, unknown>;
}

/** A Pod CREATE review carrying `object`. */
export function podCreateReview(object: unknown, o: PodReviewOptions): Record<string, unknown> {
  const pod = { group: "", version: "v1", kind: "Pod" };
  const pods = { group: "", version: "v1", resource: "pods" };
  return {
    apiVersion: o.apiVersion ?? "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: o.uid,
      kind: pod,
      resource: pods,
      requestKind: pod,
      requestResource: pods,
      ...(o.name ? { name: o.name } : {}),
      namespace: o.namespace,
      operation: "CREATE",
      userInfo: o.userInfo ??
        { username: "admin", groups: ["system:masters", "system:authenticated"] },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: "meta.k8s.io/v1", kind: "CreateOptions" },
    },
  };
}
