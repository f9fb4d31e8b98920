/**
 * AdmissionReview decoding and encoding, for `admission.k8s.io/v1` and `v1beta1`.
 * @module
 */
import { isRecord } from "../json/mod.ts";
import type { Pod } from "kubernetes-types/core/v1.d.ts";
import type { Operation } from "fast-json-patch";
import { assertPod, encodePatch, InvalidPodError } from "../inject/mod.ts";

/** The review API versions this webhook speaks; the answer uses the request's. */
export const REVIEW_VERSIONS = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] as const;
/** One of `REVIEW_VERSIONS`. */
export type ReviewVersion = typeof REVIEW_VERSIONS[number];

/** Group/version/kind as the apiserver sends it. */
export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

/** The parts of `request` the webhook uses. */
export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  operation: string;
  subResource?: string;
  namespace?: string;
  name?: string;
  dryRun?: boolean;
  /** Set, and validated, only for a CREATE of a v1 Pod. */
  pod?: Pod;
}

/** A decoded review. */
export interface Review {
  apiVersion: ReviewVersion;
  request: AdmissionRequest;
}

/** The body is not a usable AdmissionReview; the message says what is wrong and is safe to return. */
export class InvalidReviewError extends Error {
  override name = "InvalidReviewError";
}

function bad(message: string, cause?: unknown): never {
  throw new InvalidReviewError(message, cause === undefined ? undefined : { cause });
}

function optionalString(obj: Record<string, unknown>, key: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") bad(`request.${key} must be a string`);
  return v;
}

/** True when the request creates a core v1 Pod (not a subresource such as `pods/binding`). */
export function isPodCreate(req: AdmissionRequest): boolean {
  return req.operation === "CREATE" && req.kind.group === "" && req.kind.version === "v1" &&
    req.kind.kind === "Pod" && !req.subResource;
}

/**
 * Parses and validates an AdmissionReview body. Everything the webhook reads
 * is checked here; a Pod CREATE also gets its pod validated.
 *
 * @throws {InvalidReviewError} naming what is wrong.
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeReview } from "./review.ts";
 * const review = decodeReview(JSON.stringify({
 *   apiVersion: "admission.k8s.io/v1",
 *   kind: "AdmissionReview",
 *   request: { uid: "u1", kind: { group: "", version: "v1", kind: "Pod" }, operation: "CREATE",
 *     object: { spec: { containers: [{ name: "app" }] } } },
 * }));
 * assert.equal(review.request.pod?.spec?.containers[0]?.name, "app");
 * assert.throws(() => decodeReview("{"), { name: "InvalidReviewError" });
 * ```
 */
export function decodeReview(text: string): Review {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    bad("request body is not valid JSON", err);
  }
  if (!isRecord(doc)) bad("request body is not a JSON object");
  if (doc.kind !== "AdmissionReview") bad('kind must be "AdmissionReview"');
  const apiVersion = REVIEW_VERSIONS.find((v) => v === doc.apiVersion);
  if (!apiVersion) bad(`apiVersion must be one of ${REVIEW_VERSIONS.join(", ")}`);
  const r = doc.request;
  if (!isRecord(r)) bad("request is missing");
  if (typeof r.uid !== "string" || r.uid === "") bad("request.uid must be a non-empty string");
  const k = r.kind;
  if (
    !isRecord(k) || typeof k.group !== "string" || typeof k.version !== "string" ||
    typeof k.kind !== "string"
  ) {
    bad("request.kind must be {group, version, kind} strings");
  }
  if (typeof r.operation !== "string") bad("request.operation must be a string");
  if (r.dryRun !== undefined && r.dryRun !== null && typeof r.dryRun !== "boolean") {
    bad("request.dryRun must be a boolean");
  }
  const request: AdmissionRequest = {
    uid: r.uid,
    kind: { group: k.group, version: k.version, kind: k.kind },
    operation: r.operation,
  };
  const subResource = optionalString(r, "subResource");
  if (subResource) request.subResource = subResource;
  const namespace = optionalString(r, "namespace");
  if (namespace) request.namespace = namespace;
  const name = optionalString(r, "name");
  if (name) request.name = name;
  if (r.dryRun === true) request.dryRun = true;
  if (isPodCreate(request)) {
    const object = r.object;
    try {
      assertPod(object, "request.object");
    } catch (err) {
      if (err instanceof InvalidPodError) bad(err.message, err);
      throw err;
    }
    request.pod = object;
  }
  return { apiVersion, request };
}

/** What the webhook decided for one review. */
export interface Answer {
  allowed: boolean;
  patch?: readonly Operation[];
  /** The JSON of some of the patch's values, keyed by value (see `encodePatch`). */
  encoded?: ReadonlyMap<unknown, string>;
  warnings?: readonly string[];
  /** Shown to the user when `allowed` is false. */
  message?: string;
}

const utf8 = new TextEncoder();

/**
 * Base64 of a string's UTF-8 bytes. Native encoding, no per-character work:
 * `btoa(String.fromCharCode(...bytes))` is slow and throws RangeError on big patches.
 */
export function base64(text: string): string {
  return utf8.encode(text).toBase64();
}

/**
 * Serialises the AdmissionReview answer in the request's API version.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeResponse } from "./review.ts";
 * const out = JSON.parse(encodeResponse("admission.k8s.io/v1beta1", "u1", { allowed: true }));
 * assert.deepEqual(out, { apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview", response: { uid: "u1", allowed: true } });
 * ```
 */
export function encodeResponse(apiVersion: ReviewVersion, uid: string, answer: Answer): string {
  // Built by hand around JSON.stringify of each value: the ~1.5 KB base64 patch is
  // neither copied into an object nor scanned again for escapes.
  let out = `{"apiVersion":"${apiVersion}","kind":"AdmissionReview","response":{"uid":${
    JSON.stringify(uid)
  },"allowed":${answer.allowed}`;
  if (answer.patch && answer.patch.length > 0) {
    out += `,"patchType":"JSONPatch","patch":"${
      base64(encodePatch(answer.patch, answer.encoded))
    }"`;
  }
  if (answer.warnings && answer.warnings.length > 0) {
    out += `,"warnings":${JSON.stringify(answer.warnings)}`;
  }
  if (!answer.allowed) {
    out += `,"status":${JSON.stringify({ code: 403, message: answer.message ?? "denied" })}`;
  }
  return out + "}}";
}
