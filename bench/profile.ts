/**
 * `--cpu-prof`: the webhook under wrk with V8's sampling profiler, summarised
 * as self time per function and per area (our code, npm packages, Deno's JS).
 * @module
 */
import { REPO_ROOT, terminate } from "../testing/process.ts";
import { start, TMP } from "./servers.ts";
import { wrk, type WrkResult } from "./wrk.ts";

const PROF_DIR = `${TMP}/prof`;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** One row of a profile summary. */
export interface ProfileRow {
  fn: string;
  selfMs: number;
  pct: number;
}

/** A summarised profile. */
export interface ProfileSummary {
  file: string;
  wrk: WrkResult;
  rows: ProfileRow[];
  byArea: ProfileRow[];
  totalMs: number;
}

function area(url: string, fn: string): string {
  if (!url) return fn || "(native)";
  if (url.startsWith("lib/") || url === "main.ts") return "webhook code (lib/, main.ts)";
  if (url.includes("node_modules") || url.startsWith("npm:")) return "npm packages";
  if (url.startsWith("ext:") || url.startsWith("node:")) return "Deno runtime JS (ext:, node:)";
  return "other JS";
}

/** Self time per function and per area from a .cpuprofile (sample i is charged timeDeltas[i + 1]). */
export function summarize(profile: {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}): Pick<ProfileSummary, "rows" | "byArea" | "totalMs"> {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const cf = nodes.get(id)?.callFrame;
    const url = (cf?.url ?? "").replace(`file://${REPO_ROOT}/`, "");
    const fn = cf?.functionName || "(anonymous)";
    const key = url ? `${fn} ${url}:${(cf?.lineNumber ?? 0) + 1}` : fn;
    self.set(key, (self.get(key) ?? 0) + dt);
    const a = area(url, cf?.functionName ?? "");
    areas.set(a, (areas.get(a) ?? 0) + dt);
    total += dt;
  });
  const rows = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).map(([fn, us]) => ({
      fn,
      selfMs: us / 1000,
      pct: (100 * us) / (total || 1),
    }));
  return { rows: rows(self).slice(0, 25), byArea: rows(areas), totalMs: total / 1000 };
}

/** Runs the webhook with `--cpu-prof` under `wrk` on `bodyFile` and summarises the profile. */
export async function cpuProfile(
  caCert: string,
  bodyFile: string,
  seconds: number,
): Promise<ProfileSummary> {
  await Deno.remove(PROF_DIR, { recursive: true }).catch(() => {});
  await Deno.mkdir(PROF_DIR, { recursive: true });
  const srv = await start("server", caCert, {
    extra: ["--cpu-prof", "--cpu-prof-dir", PROF_DIR],
    log: `${TMP}/bench-server-prof.log`,
  });
  let w: WrkResult;
  try {
    w = await wrk(srv.target, bodyFile, { seconds });
  } finally {
    await terminate(srv.proc);
  }
  const files: string[] = [];
  for await (const e of Deno.readDir(PROF_DIR)) {
    if (e.name.endsWith(".cpuprofile")) files.push(`${PROF_DIR}/${e.name}`);
  }
  const file = files.sort().at(-1);
  if (!file) throw new Error(`no .cpuprofile written in ${PROF_DIR}`);
  return { file, wrk: w, ...summarize(JSON.parse(await Deno.readTextFile(file))) };
}
