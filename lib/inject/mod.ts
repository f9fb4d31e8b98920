/**
 * The pure injection decision: which pods get the agent, as whom, and the
 * JSON Patch that adds it (paths escaped only by `pointer.ts`); the checks of
 * the pod fields it reads; finding the pod inside a workload. Data in, data out: no I/O, no clock.
 * @module
 */
export {
  ANNOTATION_PREFIX,
  CONFIG_ANNOTATION,
  FILES_ANNOTATION,
  inject,
  INJECT_ANNOTATION,
  type InjectContext,
  type InjectDecision,
  type InjectionStatus,
  type InjectResult,
  LEGACY_ANNOTATION,
  type Operation,
  POD_ANNOTATIONS,
  type SkipReason,
  STATUS_ANNOTATION,
} from "./inject.ts";
export { encodePatch } from "./patch_json.ts";
export {
  renderAgent,
  RenderCache,
  type Rendered,
  renderFor,
  type RenderInput,
} from "./render_cache.ts";
export { assertPod, InvalidPodError } from "./pod.ts";
export { escapeToken, pointer, prefixPaths } from "./pointer.ts";
export { injectWorkload, WORKLOAD_KINDS } from "./workload.ts";
