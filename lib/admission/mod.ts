/**
 * AdmissionReview in and out: decoding and validating a review at the edge,
 * the per-review decision (skip, inject, fail open or closed), and the
 * encoded answer in the version asked.
 * @module
 */
export {
  type AdmissionRequest,
  type Answer,
  decodeReview,
  encodeResponse,
  InvalidReviewError,
  type Review,
  REVIEW_VERSIONS,
  type ReviewVersion,
} from "./review.ts";
export { decide, type Decision, type Outcome } from "./decide.ts";
