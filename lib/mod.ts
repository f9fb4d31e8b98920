/**
 * A Kubernetes mutating admission webhook that injects a log-shipping sidecar
 * (Fluentd, or Fluent Bit) into new Pods.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig, inject } from "./mod.ts";
 * const result = inject({ spec: { containers: [{ name: "app" }] } }, defaultConfig());
 * assert.equal(result.decision, "injected");
 * ```
 * @module
 */
export {
  type Agent,
  type Config,
  ConfigSyntaxError,
  defaultConfig,
  InvalidConfigError,
  loadConfig,
  type Mode,
  type Output,
  parseConfig,
  type Profile,
  SYSTEM_NAMESPACES,
  withExcludedNamespace,
} from "./config.ts";
export { ConfigSource, type ConfigSourceOptions, type ReloadResult } from "./config_source.ts";
export {
  ANNOTATION_PREFIX,
  CONFIG_ANNOTATION,
  inject,
  INJECT_ANNOTATION,
  type InjectContext,
  type InjectDecision,
  type InjectionStatus,
  type InjectResult,
  LEGACY_ANNOTATION,
  type Operation,
  POD_ANNOTATIONS,
  STATUS_ANNOTATION,
} from "./inject.ts";
export { assertPod, InvalidPodError } from "./pod.ts";
export { renderSidecar, type SidecarNames } from "./sidecar.ts";
export { injectWorkload, WORKLOAD_KINDS } from "./workload.ts";
export {
  type AdmissionRequest,
  type Answer,
  decodeReview,
  encodeResponse,
  InvalidReviewError,
  type Review,
  REVIEW_VERSIONS,
  type ReviewVersion,
} from "./admission/review.ts";
export { decide, type Decision, type Outcome } from "./admission/decide.ts";
export {
  createHandler,
  createRoutes,
  DEFAULT_MAX_IN_FLIGHT,
  type HandlerDeps,
  MAX_BODY_BYTES,
  metricsOnly,
  type Routes,
} from "./http/handler.ts";
export { ByteBudget, DEFAULT_MEMORY_BUDGET_BYTES } from "./http/budget.ts";
export type { BodySource, Incoming, Reply } from "./http/exchange.ts";
export { webHandler } from "./http/web.ts";
export { SERVER_DEFAULTS, TlsServer, type TlsServerOptions } from "./http/server.ts";
export {
  createLogger,
  type Fields,
  type Level,
  type Logger,
  type LoggerOptions,
  writeAllSync,
} from "./log.ts";
export { Metrics } from "./metrics.ts";
export { watchFiles, type WatchOptions } from "./watch.ts";
export {
  CERT_WARN_DAYS,
  CertificateError,
  daysUntil,
  notAfter,
  parseCertificates,
  type ServingCertCheck,
  verifyServingCert,
} from "./cert.ts";
export {
  type CertExpiryMonitor,
  certExpiryMonitor,
  type CertExpiryOptions,
} from "./cert_expiry.ts";
export {
  type Credentials,
  defaultKubeconfigPaths,
  type ExecConfig,
  findCredentials,
  IN_CLUSTER_SERVER,
  inClusterCredentials,
  KubeconfigError,
  loadKubeconfig,
  type ReadText,
  SERVICE_ACCOUNT_DIR,
} from "./kube/credentials.ts";
export { type ExecResult, parseExecCredential, runExecPlugin } from "./kube/exec_credential.ts";
export { KubeClient, type KubeClientOptions, KubeError } from "./kube/client.ts";
export { type LabelSelector, matches, parseSelector } from "./kube/selector.ts";
export {
  auditPod,
  type Finding,
  type PodContext,
  type Problem,
  STATUS_VERSION,
  statusOf,
} from "./audit/audit.ts";
export { parseWebhook, sentToWebhook, type WebhookRegistration } from "./audit/webhook.ts";
export {
  auditCluster,
  type CertReport,
  checkServingCert,
  type ClusterAudit,
  type ClusterAuditOptions,
  INJECTOR_DEFAULTS,
  readRegistration,
} from "./audit/cluster.ts";
export {
  type PeriodicAudit,
  type PeriodicAuditOptions,
  startPeriodicAudit,
} from "./audit/periodic.ts";
