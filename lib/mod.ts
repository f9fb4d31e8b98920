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
  checkDnsLabel,
  checkImage,
  checkLogDir,
  checkQuantity,
  type Config,
  type ConfigReloadEvents,
  ConfigSource,
  defaultConfig,
  loadConfig,
  type Mode,
  type Output,
  parseConfig,
  type Profile,
  SYSTEM_NAMESPACES,
  withExcludedNamespace,
} from "./config.ts";
export {
  ANNOTATION_PREFIX,
  inject,
  INJECT_ANNOTATION,
  type InjectContext,
  type InjectionStatus,
  type InjectResult,
  LEGACY_ANNOTATION,
  type Operation,
  POD_ANNOTATIONS,
  quantity,
  STATUS_ANNOTATION,
} from "./inject.ts";
export { assertPod, InvalidPodError } from "./pod.ts";
export { fluentBitArgs, fluentdConfig, renderSidecar, type SidecarNames } from "./sidecar.ts";
export { injectWorkload, WORKLOAD_KINDS } from "./workload.ts";
export {
  type AdmissionRequest,
  type Answer,
  base64,
  decodeReview,
  encodeResponse,
  isPodCreate,
  type Review,
  REVIEW_VERSIONS,
  type ReviewVersion,
} from "./admission/review.ts";
export { type ClientErrorStatus, HttpError, jsonResponse, toResponse } from "./http/errors.ts";
export { readCapped } from "./http/read_body.ts";
export {
  createHandler,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_READ_TIMEOUT_MS,
  type HandlerDeps,
  MAX_BODY_BYTES,
  timeoutFromQuery,
} from "./http/handler.ts";
export { SERVER_DEFAULTS, TlsServer, type TlsServerOptions } from "./http/server.ts";
export {
  createLogger,
  type Fields,
  type Level,
  type Logger,
  memoryLogger,
  writeAllSync,
} from "./log.ts";
export { DURATION_BUCKETS, Metrics } from "./metrics.ts";
export { watchFiles } from "./watch.ts";
