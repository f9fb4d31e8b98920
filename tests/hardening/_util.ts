/**
 * Shared helpers for the hardening tests: valid reviews to start from, an
 * in-process handler, and the checks every answer must pass.
 * @module
 */
import jsonpatch from "fast-json-patch";
import { createHandler, defaultConfig, Metrics } from "../../lib/mod.ts";
import { memoryLogger } from "../../testing/memory_logger.ts";
import { podCreateReview } from "../../testing/reviews.ts";

/** A fresh in-process handler and the logger it writes to. */
export function makeHandler(): {
  handler: (req: Request) => Promise<Response>;
  log: ReturnType<typeof memoryLogger>;
  metrics: Metrics;
} {
  const log = memoryLogger();
  const metrics = new Metrics();
  const handler = createHandler({
    config: defaultConfig,
    log,
    metrics,
    now: () => performance.now(),
  });
  return { handler, log, metrics };
}

/** The nginx Pod CREATE review (as kube-apiserver sends it). */
export function nginxReview(uid = "705ab4f5-6393-11e8-b7cc-42010a800002"): Record<string, unknown> {
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "nginx", namespace: "default" },
    spec: { containers: [{ name: "nginx", image: "nginx" }] },
  };
  return podCreateReview(pod, { uid, namespace: "default", name: "nginx" });
}

/** A v1beta1 review of a pod that already has volumes, mounts, annotations, labels and init containers. */
export function richReview(uid = "0c9a4e52-1111-4d2b-9a77-5b0f6b3c2d10"): Record<string, unknown> {
  const pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: "web-7d9f-",
      labels: { app: "web", "app.kubernetes.io/name": "web" },
      annotations: {
        "example.com/owner": "team-a",
        "a~b/c": "tilde and slash",
        "sidecar-injector.io/profile": "fluent-bit",
        "sidecar-injector.io/containers": "web, missing",
      },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-7d9f" }],
    },
    spec: {
      initContainers: [{ name: "init", image: "busybox", volumeMounts: [] }],
      containers: [
        {
          name: "web",
          image: "nginx:1.27",
          volumeMounts: [
            { name: "app-logs", mountPath: "/var/log/app" },
            { name: "data", mountPath: "/data" },
          ],
          volumeDevices: [{ name: "blk", devicePath: "/var/log/app-1" }],
        },
        { name: "fluent-bit", image: "busybox" },
      ],
      volumes: [
        { name: "app-logs", emptyDir: {} },
        { name: "data", emptyDir: {} },
        { name: "blk", persistentVolumeClaim: { claimName: "blk" } },
      ],
    },
  };
  return podCreateReview(pod, { uid, namespace: "team-a", apiVersion: "admission.k8s.io/v1beta1" });
}

/** A Job-owned pod: the sidecar goes into initContainers (native mode). */
export function jobReview(uid = "5b1c7a34-job0-4c7e-8e1f-0a2b3c4d5e6f"): Record<string, unknown> {
  const pod = {
    metadata: {
      name: "job-x",
      ownerReferences: [{ kind: "Job", name: "j", apiVersion: "batch/v1" }],
      annotations: {},
    },
    spec: { containers: [{ name: "main", image: "busybox" }], restartPolicy: "Never" },
  };
  return podCreateReview(pod, { uid, namespace: "batch" });
}

/** POSTs `body` to `/mutate` of the in-process handler. */
export function mutateRequest(
  body: BodyInit | null,
  opts: { headers?: Record<string, string>; query?: string; method?: string } = {},
): Request {
  const method = opts.method ?? "POST";
  return new Request(`https://x/mutate${opts.query ?? ""}`, {
    method,
    headers: opts.headers ?? { "content-type": "application/json" },
    ...(body === null || method === "GET" || method === "HEAD" ? {} : { body }),
  });
}

/** A short, printable description of a (possibly huge) input. */
export function describe(body: string | Uint8Array): string {
  const text = typeof body === "string" ? body : new TextDecoder().decode(body);
  const shown = text.length > 300
    ? `${text.slice(0, 200)}...(${text.length} chars)...${text.slice(-60)}`
    : text;
  return JSON.stringify(shown);
}

/** Decodes a base64 string holding UTF-8 text. */
export function fromBase64(b64: string): string {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
}

/**
 * Checks one answer. Returns a problem description, or undefined when the
 * answer is acceptable: 4xx, or 200 with a valid AdmissionReview that echoes
 * the uid and whose patch (if any) applies to the request's pod.
 */
export async function checkAnswer(
  res: Response,
  bodyText: string | undefined,
): Promise<string | undefined> {
  const text = await res.text();
  if (res.status >= 400 && res.status < 500) {
    try {
      const err = JSON.parse(text);
      if (typeof err?.error !== "string") return `status ${res.status} without {error}: ${text}`;
    } catch {
      return `status ${res.status} with a non-JSON body: ${text.slice(0, 200)}`;
    }
    return undefined;
  }
  if (res.status !== 200) return `status ${res.status}: ${text.slice(0, 200)}`;
  if (bodyText === undefined) return "200 for a body the test cannot read back";
  let sent: { apiVersion?: unknown; request?: { uid?: unknown; object?: unknown } };
  try {
    sent = JSON.parse(bodyText);
  } catch {
    return "200 for a body that is not valid JSON";
  }
  let out: {
    apiVersion?: unknown;
    kind?: unknown;
    response?: { uid?: unknown; allowed?: unknown; patch?: unknown; patchType?: unknown };
  };
  try {
    out = JSON.parse(text);
  } catch {
    return `200 with a non-JSON body: ${text.slice(0, 200)}`;
  }
  if (out.kind !== "AdmissionReview") return `200 but kind=${String(out.kind)}`;
  if (out.apiVersion !== sent.apiVersion) {
    return `200 but apiVersion ${String(out.apiVersion)} != ${String(sent.apiVersion)}`;
  }
  const r = out.response;
  if (!r || typeof r !== "object") return "200 without response";
  if (r.uid !== sent.request?.uid) {
    return `200 but uid ${JSON.stringify(r.uid)} != ${JSON.stringify(sent.request?.uid)}`;
  }
  if (typeof r.allowed !== "boolean") return "200 but allowed is not a boolean";
  if (r.patch === undefined) return undefined;
  if (r.patchType !== "JSONPatch" || typeof r.patch !== "string") {
    return `bad patchType/patch: ${String(r.patchType)}`;
  }
  let patch: jsonpatch.Operation[];
  try {
    patch = JSON.parse(fromBase64(r.patch));
  } catch (err) {
    return `patch is not base64 JSON: ${String(err)}`;
  }
  let pod: unknown;
  try {
    pod = structuredClone(sent.request?.object);
  } catch {
    // structuredClone recurses; a fresh parse is the same clone without the recursion limit.
    pod = JSON.parse(bodyText).request.object;
  }
  try {
    jsonpatch.applyPatch(pod, patch, true, false);
  } catch (err) {
    return `patch does not apply: ${String(err)}; patch=${JSON.stringify(patch).slice(0, 400)}`;
  }
  return undefined;
}

/** Own property names of the built-in prototypes, to detect pollution. */
export function prototypeSnapshot(): string {
  return JSON.stringify({
    object: Object.getOwnPropertyNames(Object.prototype).sort(),
    array: Object.getOwnPropertyNames(Array.prototype).sort(),
    function: Object.getOwnPropertyNames(Function.prototype).sort(),
    string: Object.getOwnPropertyNames(String.prototype).sort(),
  });
}

/** Throws when any prototype was polluted. */
export function assertNoPollution(before: string): void {
  const probe = {} as Record<string, unknown>;
  const problems: string[] = [];
  if (Object.keys(Object.prototype).length !== 0) {
    problems.push(`Object.prototype has keys ${Object.keys(Object.prototype).join(",")}`);
  }
  for (const k of ["polluted", "isAdmin", "allowed", "x"]) {
    if (probe[k] !== undefined) problems.push(`({}).${k} === ${String(probe[k])}`);
  }
  if (prototypeSnapshot() !== before) problems.push("a built-in prototype gained properties");
  if (problems.length) throw new Error(`prototype pollution: ${problems.join("; ")}`);
}

/** A small seeded PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Hex SHA-256 of a string. */
export async function sha256(text: string | Uint8Array): Promise<string> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
