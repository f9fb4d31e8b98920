/**
 * Finding pods that escaped the injector or carry an outdated agent: the
 * per-pod check by the same `inject()`, the webhook registration's
 * selectors, the cluster-wide walk, and the periodic run inside the server.
 * @module
 */
export {
  auditPod,
  type Finding,
  type PodContext,
  type Problem,
  STATUS_VERSION,
  statusOf,
} from "./audit.ts";
export { parseWebhook, sentToWebhook, type WebhookRegistration } from "./webhook.ts";
export {
  auditCluster,
  type CertReport,
  checkServingCert,
  type ClusterAudit,
  type ClusterAuditOptions,
  INJECTOR_DEFAULTS,
  readRegistration,
} from "./cluster.ts";
export { type PeriodicAudit, type PeriodicAuditOptions, startPeriodicAudit } from "./periodic.ts";
