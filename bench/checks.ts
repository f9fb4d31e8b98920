/**
 * One request per fixture against each server before any load: status, uid,
 * framing, and for the webhook that its patch applies and adds the agent as a
 * native sidecar (an init container with `restartPolicy: Always`).
 * @module
 */
import jsonpatch from "fast-json-patch";
import { buildRequest } from "../testing/http1.ts";
import { connect, exchange, type Target } from "./load.ts";

/** The outcome of one check. */
export interface Check {
  target: string;
  what: string;
  ok: boolean;
  detail: string;
}

const decoder = new TextDecoder();

interface Container {
  name: string;
  restartPolicy?: string;
}

/** Where the patched pod has the agent, e.g. `initContainers[0] (restartPolicy Always)`. */
function agentPlace(pod: { spec: { containers: Container[]; initContainers?: Container[] } }) {
  const init = pod.spec.initContainers ?? [];
  const i = init.findIndex((c) => c.name === "fluentd");
  if (i >= 0) return { native: init[i]!.restartPolicy === "Always", where: `initContainers[${i}]` };
  const j = pod.spec.containers.findIndex((c) => c.name === "fluentd");
  return { native: false, where: j >= 0 ? `containers[${j}]` : "nowhere" };
}

/**
 * Checks `bodies` against the server `name`; `patched` says whether to apply
 * and inspect the patch. Each answer's patch (base64) goes into `patches` by body name.
 */
export async function checks(
  name: string,
  t: Target,
  bodies: Record<string, Uint8Array>,
  patched: boolean,
  patches: Map<string, string> = new Map(),
): Promise<Check[]> {
  const results: Check[] = [];
  const conn = await connect(t);
  try {
    for (const [which, body] of Object.entries(bodies)) {
      const sent = JSON.parse(decoder.decode(body));
      const res = await exchange(
        conn,
        buildRequest("POST", "/mutate", `127.0.0.1:${t.port}`, body, {
          "content-type": "application/json",
        }),
      );
      const problems: string[] = [];
      if (res.status !== 200) problems.push(`status ${res.status}`);
      // Framing is reported, not judged: the sequential measurement is what shows a stall.
      const framing = res.headers.has("content-length")
        ? `content-length ${res.headers.get("content-length")}`
        : `transfer-encoding ${res.headers.get("transfer-encoding")}`;
      let agent = "";
      try {
        const review = JSON.parse(res.body);
        const r = review.response ?? {};
        if (review.apiVersion !== "admission.k8s.io/v1") problems.push("apiVersion");
        if (r.uid !== sent.request.uid) problems.push(`uid ${r.uid} != ${sent.request.uid}`);
        if (r.allowed !== true) problems.push("not allowed");
        if (r.patchType !== "JSONPatch" || typeof r.patch !== "string") problems.push("no patch");
        else patches.set(which, r.patch);
        if (patched && typeof r.patch === "string") {
          const ops = JSON.parse(atob(r.patch));
          const pod = jsonpatch.applyPatch(structuredClone(sent.request.object), ops, true, false)
            .newDocument;
          const place = agentPlace(pod);
          agent = place.where;
          if (!place.native) problems.push(`agent in ${place.where}, not a native sidecar`);
        }
      } catch (e) {
        problems.push(`bad answer: ${e}: ${res.body.slice(0, 200)}`);
      }
      results.push({
        target: name,
        what: `POST /mutate ${which}`,
        ok: problems.length === 0,
        detail: `${res.status}, ${framing}, ${res.bytes.byteLength} B` +
          (agent ? `, agent ${agent}` : "") + (problems.length ? `; ${problems.join("; ")}` : ""),
      });
    }
  } finally {
    conn.close();
  }
  return results;
}

/** The Go webhook must answer the server's patch byte for byte: the same work per review. */
export function samePatches(server: Map<string, string>, go: Map<string, string>): Check[] {
  return [...server].map(([which, patch]) => {
    const other = go.get(which);
    const ok = other === patch;
    return {
      target: "Go",
      what: `patch for ${which} is the server's byte for byte`,
      ok,
      detail: ok
        ? `${atob(patch).length} B`
        : `server ${atob(patch).length} B, Go ${
          other === undefined ? "none" : atob(other).length
        } B`,
    };
  });
}
