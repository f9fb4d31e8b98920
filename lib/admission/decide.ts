/**
 * The decision for one decoded review: skip what is not a Pod CREATE, inject,
 * or, when injection throws, fail open or closed as the config says. Pure: the
 * caller logs and counts.
 * @module
 */
import type { Config } from "../config/mod.ts";
import { inject, type InjectDecision, type InjectResult } from "../inject/mod.ts";
import { type AdmissionRequest, type Answer, isPodCreate } from "./review.ts";

/** Every outcome of a review; also the values of the admissions metric's `decision` label. */
export type Decision = InjectDecision | "failed_open" | "denied";

/** What to answer for one review, and why. */
export interface Outcome {
  decision: Decision;
  result: InjectResult;
  answer: Answer;
  /** What `inject` threw, for `failed_open` and `denied`. */
  error?: unknown;
}

const FAILED: InjectResult = {
  decision: "skipped",
  reason: "injection failed",
  skip: "injection_failed",
  patch: [],
  warnings: [],
};

/**
 * Decides the answer for `request` under `config`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConfig } from "../config/mod.ts";
 * import { decide } from "./decide.ts";
 * const outcome = decide({
 *   uid: "u1", operation: "DELETE", kind: { group: "", version: "v1", kind: "Pod" },
 * }, defaultConfig());
 * assert.equal(outcome.decision, "skipped");
 * assert.equal(outcome.result.reason, "operation DELETE");
 * ```
 */
export function decide(request: AdmissionRequest, config: Config): Outcome {
  if (!isPodCreate(request) || !request.pod) {
    const reason = request.operation !== "CREATE"
      ? `operation ${request.operation}`
      : `kind ${request.kind.kind}${request.subResource ? "/" + request.subResource : ""}`;
    return {
      decision: "skipped",
      result: { decision: "skipped", reason, skip: "not_pod_create", patch: [], warnings: [] },
      answer: { allowed: true },
    };
  }
  try {
    const result = inject(request.pod, config, { namespace: request.namespace });
    return {
      decision: result.decision,
      result,
      answer: {
        allowed: true,
        patch: result.patch,
        warnings: result.warnings,
        ...(result.encoded ? { encoded: result.encoded } : {}),
      },
    };
  } catch (error) {
    // One pod must never break admission for all: fail open unless told otherwise.
    return config.onError === "deny"
      ? {
        decision: "denied",
        result: FAILED,
        error,
        answer: {
          allowed: false,
          message: "sidecar-injector: injection failed; see the injector's log",
        },
      }
      : {
        decision: "failed_open",
        result: FAILED,
        error,
        answer: {
          allowed: true,
          warnings: ["sidecar-injector: injection failed; pod admitted without the log sidecar"],
        },
      };
  }
}
