/**
 * `deno task bench [-- --quick] [-- --cpu-prof]`: the webhook server against
 * a floor (the least a Deno TLS webhook can do), over TLS on loopback.
 *
 * Per target, alternating, 3 rounds (1 with --quick), medians of:
 *  - wrk -t2 -c16 closed-loop throughput, realistic and small body;
 *  - fixed 1,000 req/s latency from the scheduled send time (bench/load.ts);
 *  - 500 sequential requests on one kept-alive HTTP/1.1 TLS connection;
 * then the server's RSS, cold start-to-ready (median of 5) and `inject()` alone
 * (bench/inject_bench.ts). Prints a table, writes bench/results/<date>.json.
 * @module
 */
import jsonpatch from "fast-json-patch";
import { serveArgs } from "../testing/serve_command.ts";
import { realisticReview, smallReview } from "./fixtures.ts";
import { buildRequest, type Http1Connection, median } from "../testing/http1.ts";
import {
  connect,
  exchange,
  type LatencyStats,
  paced,
  type PacedResult,
  sequential,
  type Target,
} from "./load.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const out = (s: string) => {
  const b = encoder.encode(s + "\n");
  let o = 0;
  while (o < b.byteLength) o += Deno.stdout.writeSync(b.subarray(o));
};
const err = (s: string) => {
  const b = encoder.encode(s + "\n");
  let o = 0;
  while (o < b.byteLength) o += Deno.stderr.writeSync(b.subarray(o));
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const TMP = `${REPO}/.tmp`;
const CERTS = `${TMP}/bench-certs`;
const PROF_DIR = `${TMP}/prof`;
const FIXTURES = `${REPO}/bench/fixtures`;
const RESULTS = `${REPO}/bench/results`;

const QUICK = Deno.args.includes("--quick");
const CPU_PROF = Deno.args.includes("--cpu-prof");
const ROUNDS = QUICK ? 1 : 3;
const WRK_SECONDS = QUICK ? 2 : 5;
const PACED_MS = QUICK ? 2000 : 5000;
const PACED_RATE = 1000;
const PACED_CONNECTIONS = 8;
const SEQUENTIAL = 500;
const COLD_STARTS = 5;

// ---------------------------------------------------------------- children

const children = new Set<Deno.ChildProcess>();

function track(child: Deno.ChildProcess): Deno.ChildProcess {
  children.add(child);
  child.status.finally(() => children.delete(child));
  return child;
}

async function stop(child: Deno.ChildProcess, graceMs = 5000): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGTERM");
  } catch { /* already gone */ }
  const timeout = sleep(graceMs).then(() => null);
  const st = await Promise.race([child.status, timeout]);
  if (st) return st;
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  return await child.status;
}

async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c, 3000)));
}

Deno.addSignalListener("SIGINT", () => {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch { /* gone */ }
  }
  Deno.exit(130);
});

async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = track(
    new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", cwd: REPO, ...opts }).spawn(),
  );
  const o = await child.output();
  return { code: o.code, stdout: decoder.decode(o.stdout), stderr: decoder.decode(o.stderr) };
}

// ---------------------------------------------------------------- setup

async function ensureWrk(): Promise<void> {
  if ((await run("bash", ["-c", "command -v wrk"])).code === 0) return;
  if (Deno.uid() !== 0) {
    err("wrk is not installed. Install it: sudo apt-get install -y wrk (Debian/Ubuntu),");
    err("brew install wrk (macOS), or build https://github.com/wg/wrk.");
    Deno.exit(1);
  }
  out("installing wrk (apt-get) ...");
  const r = await run("bash", ["-c", "apt-get update -qq && apt-get install -y -qq wrk"], {
    env: { DEBIAN_FRONTEND: "noninteractive" },
  });
  if (r.code !== 0) throw new Error(`apt-get install wrk failed:\n${r.stderr}`);
}

async function makeCerts(): Promise<void> {
  const r = await run("bash", ["k8s/gen-certs.sh", "--out", CERTS, "--san", "IP:127.0.0.1"]);
  if (r.code !== 0) throw new Error(`gen-certs.sh failed:\n${r.stderr}`);
}

/** A started server: its process, port, log file. */
interface Proc {
  name: string;
  child: Deno.ChildProcess;
  port: number;
  log: string;
}

/** Starts `cmd args` with stdout to `log` (not a pipe: nothing must block it) and waits for its listening line. */
async function startLogged(name: string, cmd: string, args: string[], log: string): Promise<Proc> {
  await Deno.remove(log).catch(() => {});
  const child = track(
    new Deno.Command("bash", {
      args: ["-c", 'exec "$@" >"$BENCH_LOG" 2>"$BENCH_LOG.err"', "bash", cmd, ...args],
      cwd: REPO,
      env: { BENCH_LOG: log },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn(),
  );
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    const text = await Deno.readTextFile(log).catch(() => "");
    for (const line of text.split("\n")) {
      if (!line.includes('"listening"')) continue;
      const port = JSON.parse(line).port;
      if (typeof port === "number") return { name, child, port, log };
    }
    if (exited) {
      const e = await Deno.readTextFile(log + ".err").catch(() => "");
      throw new Error(`${name} exited before listening:\n${text}\n${e}`);
    }
    await sleep(10);
  }
  throw new Error(`${name} did not log "listening" within 60 s`);
}

function serverArgs(port: number, extra: string[] = []): string[] {
  // Exactly as `deno task serve` runs it (permission set and V8 flags from deno.json).
  return serveArgs([
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--cert",
    `${CERTS}/tls.crt`,
    "--key",
    `${CERTS}/tls.key`,
    "--drain-delay-ms",
    "0",
  ], extra);
}

function startServer(extra: string[] = [], log = `${TMP}/bench-server.log`): Promise<Proc> {
  return startLogged("server", Deno.execPath(), serverArgs(0, extra), log);
}

function startFloor(): Promise<Proc> {
  return startLogged("floor", Deno.execPath(), [
    "run",
    "--frozen",
    "--allow-net=127.0.0.1",
    `--allow-read=${CERTS}`,
    "bench/floor.ts",
    "--cert",
    `${CERTS}/tls.crt`,
    "--key",
    `${CERTS}/tls.key`,
    "--host",
    "127.0.0.1",
    "--port",
    "0",
  ], `${TMP}/bench-floor.log`);
}

function target(port: number, caCert: string): Target {
  return { hostname: "127.0.0.1", port, caCert };
}

async function readyOnce(t: Target): Promise<boolean> {
  let conn: Http1Connection | undefined;
  try {
    conn = await connect(t);
    const res = await exchange(conn, buildRequest("GET", "/readyz", `127.0.0.1:${t.port}`));
    return res.status === 200;
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

async function waitReady(t: Target, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await readyOnce(t)) return;
    await sleep(5);
  }
  throw new Error(`no 200 from /readyz on port ${t.port}`);
}

/** VmRSS and VmHWM in KiB. Deno refuses to read /proc/<pid>/ without --allow-all, so ask cat. */
async function rssKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = (await run("cat", [`/proc/${pid}/status`])).stdout;
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

// ---------------------------------------------------------------- checks

interface Check {
  target: string;
  what: string;
  ok: boolean;
  detail: string;
}

/** One request per fixture and a few edge cases; anything odd goes in the report. */
async function checks(name: string, t: Target, bodies: Record<string, Uint8Array>) {
  const results: Check[] = [];
  const host = `127.0.0.1:${t.port}`;
  const conn = await connect(t);
  try {
    for (const [which, body] of Object.entries(bodies)) {
      const sent = JSON.parse(decoder.decode(body));
      const res = await exchange(
        conn,
        buildRequest("POST", "/mutate", host, body, { "content-type": "application/json" }),
      );
      const text = res.body;
      const problems: string[] = [];
      if (res.status !== 200) problems.push(`status ${res.status}`);
      const framing = res.headers.has("content-length")
        ? `content-length ${res.headers.get("content-length")}`
        : `transfer-encoding ${res.headers.get("transfer-encoding")}`;
      // Framing is reported, not judged: whether a length-delimited answer stalls depends on
      // TCP_NODELAY (node:https sets it, Deno.serve over TLS does not). The sequential
      // measurement below is what shows a stall.
      let containers = "";
      try {
        const review = JSON.parse(text);
        const r = review.response ?? {};
        if (review.apiVersion !== "admission.k8s.io/v1") problems.push("apiVersion");
        if (r.uid !== sent.request.uid) problems.push(`uid ${r.uid} != ${sent.request.uid}`);
        if (r.allowed !== true) problems.push("not allowed");
        if (r.patchType !== "JSONPatch" || typeof r.patch !== "string") problems.push("no patch");
        else if (name === "server") {
          const ops = JSON.parse(atob(r.patch));
          const pod = jsonpatch.applyPatch(structuredClone(sent.request.object), ops, true, false)
            .newDocument;
          containers = pod.spec.containers.map((c: { name: string }) => c.name).join(",");
          if (!containers.endsWith(",fluentd")) problems.push(`containers ${containers}`);
        }
      } catch (e) {
        problems.push(`bad answer: ${e}: ${text.slice(0, 200)}`);
      }
      results.push({
        target: name,
        what: `POST /mutate ${which}`,
        ok: problems.length === 0,
        detail: `${res.status}, ${framing}, ${res.bytes.byteLength} B` +
          (containers ? `, containers ${containers}` : "") +
          (problems.length ? `; ${problems.join("; ")}` : ""),
      });
    }
  } finally {
    conn.close();
  }
  return results;
}

// ---------------------------------------------------------------- wrk

interface WrkResult {
  rps: number;
  latencyAvgMs: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  socketErrors: string;
}

function toMs(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000;
}

async function wrk(t: Target, bodyFile: string, seconds: number): Promise<WrkResult> {
  const r = await run("wrk", [
    "-t2",
    "-c16",
    `-d${seconds}s`,
    "--latency",
    "-s",
    `${REPO}/bench/post.lua`,
    `https://127.0.0.1:${t.port}/mutate`,
  ], { env: { BENCH_BODY: bodyFile } });
  if (r.code !== 0) throw new Error(`wrk failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const o = r.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(o)?.[1] ?? NaN);
  const avg = toMs(/Latency\s+(\S+)/.exec(o)?.[1] ?? "");
  const p50 = toMs(/^\s+50%\s+(\S+)/m.exec(o)?.[1] ?? "");
  const p99 = toMs(/^\s+99%\s+(\S+)/m.exec(o)?.[1] ?? "");
  const requests = Number(/(\d+) requests in/.exec(o)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(o)?.[1] ?? 0);
  const socketErrors = /Socket errors:.*$/m.exec(o)?.[0] ?? "";
  if (!Number.isFinite(rps)) throw new Error(`cannot parse wrk output:\n${o}`);
  return { rps, latencyAvgMs: avg, p50Ms: p50, p99Ms: p99, requests, non2xx, socketErrors };
}

// ---------------------------------------------------------------- cold start, inject bench, profile

async function freePort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await sleep(1);
  return port;
}

async function coldStart(
  caCert: string,
): Promise<{ ms: number; exitCode: number; stopMs: number }> {
  const port = await freePort();
  const t = target(port, caCert);
  const t0 = performance.now();
  const child = track(
    new Deno.Command(Deno.execPath(), {
      args: serverArgs(port),
      cwd: REPO,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn(),
  );
  let exited = false;
  child.status.then(() => exited = true);
  let ms = NaN;
  while (performance.now() - t0 < 30_000 && !exited) {
    if (await readyOnce(t)) {
      ms = performance.now() - t0;
      break;
    }
    await sleep(1);
  }
  const s0 = performance.now();
  const st = await stop(child);
  return { ms, exitCode: st.code, stopMs: performance.now() - s0 };
}

interface InjectBench {
  name: string;
  nsPerIter: number;
  p99Ns: number;
}

async function injectBench(): Promise<InjectBench[]> {
  const r = await run(Deno.execPath(), [
    "bench",
    "--frozen",
    "-P",
    "bench/inject_bench.ts",
    "--json",
  ]);
  if (r.code !== 0) throw new Error(`deno bench failed:\n${r.stderr}`);
  const doc = JSON.parse(r.stdout);
  return doc.benches.map((
    b: { name: string; results: { ok?: { avg: number; p99: number } }[] },
  ) => ({
    name: b.name,
    nsPerIter: b.results[0]?.ok?.avg ?? NaN,
    p99Ns: b.results[0]?.ok?.p99 ?? NaN,
  }));
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface ProfileRow {
  fn: string;
  selfMs: number;
  pct: number;
}

/** Self time per function from a .cpuprofile (sample i is charged timeDeltas[i + 1]). */
function topSelf(profile: {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}): { rows: ProfileRow[]; byArea: ProfileRow[]; totalMs: number } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const area = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const cf = nodes.get(id)?.callFrame;
    const url = (cf?.url ?? "").replace(`file://${REPO}/`, "");
    const key = `${cf?.functionName || "(anonymous)"}${
      url ? ` ${url}:${(cf?.lineNumber ?? 0) + 1}` : ""
    }`;
    self.set(key, (self.get(key) ?? 0) + dt);
    const a = !url
      ? (cf?.functionName || "(native)")
      : url.startsWith("lib/") || url === "main.ts"
      ? "webhook code (lib/, main.ts)"
      : url.includes("node_modules") || url.startsWith("npm:")
      ? "npm packages"
      : url.startsWith("ext:")
      ? "Deno runtime JS (ext:)"
      : "other JS";
    area.set(a, (area.get(a) ?? 0) + dt);
    total += dt;
  });
  const rows = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).map(([fn, us]) => ({
      fn,
      selfMs: us / 1000,
      pct: (100 * us) / (total || 1),
    }));
  return { rows: rows(self).slice(0, 20), byArea: rows(area), totalMs: total / 1000 };
}

async function cpuProfile(caCert: string, bodyFile: string) {
  await Deno.remove(PROF_DIR, { recursive: true }).catch(() => {});
  await Deno.mkdir(PROF_DIR, { recursive: true });
  const srv = await startServer(
    ["--cpu-prof", "--cpu-prof-dir", PROF_DIR],
    `${TMP}/bench-server-prof.log`,
  );
  let w: WrkResult;
  try {
    const t = target(srv.port, caCert);
    await waitReady(t);
    w = await wrk(t, bodyFile, WRK_SECONDS);
  } finally {
    await stop(srv.child);
  }
  const files: string[] = [];
  for await (const e of Deno.readDir(PROF_DIR)) {
    if (e.name.endsWith(".cpuprofile")) files.push(`${PROF_DIR}/${e.name}`);
  }
  if (files.length === 0) throw new Error(`no .cpuprofile written in ${PROF_DIR}`);
  const profile = JSON.parse(await Deno.readTextFile(files.sort().at(-1)!));
  return { file: files.sort().at(-1)!, wrk: w, ...topSelf(profile) };
}

// ---------------------------------------------------------------- report

const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : "n/a");
const ratio = (a: number, b: number) => (Number.isFinite(a / b) ? (a / b).toFixed(2) : "n/a");

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r, j) => {
    const line = r.map((c, i) => i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)).join(
      "  ",
    );
    return j === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
  }).join("\n");
}

interface TargetRuns {
  wrkRealistic: WrkResult[];
  wrkSmall: WrkResult[];
  paced: PacedResult[];
  sequential: LatencyStats[];
}

function summarize(r: TargetRuns) {
  const m = <T>(xs: T[], pick: (x: T) => number) => median(xs.map(pick));
  return {
    wrkRealistic: {
      rps: m(r.wrkRealistic, (x) => x.rps),
      p50Ms: m(r.wrkRealistic, (x) => x.p50Ms),
      p99Ms: m(r.wrkRealistic, (x) => x.p99Ms),
      non2xx: r.wrkRealistic.reduce((a, x) => a + x.non2xx, 0),
    },
    wrkSmall: {
      rps: m(r.wrkSmall, (x) => x.rps),
      p50Ms: m(r.wrkSmall, (x) => x.p50Ms),
      p99Ms: m(r.wrkSmall, (x) => x.p99Ms),
      non2xx: r.wrkSmall.reduce((a, x) => a + x.non2xx, 0),
    },
    paced: {
      p50Ms: m(r.paced, (x) => x.p50),
      p99Ms: m(r.paced, (x) => x.p99),
      p999Ms: m(r.paced, (x) => x.p999),
      serviceP50Ms: m(r.paced, (x) => x.service.p50),
      serviceP99Ms: m(r.paced, (x) => x.service.p99),
      sendLateP99Ms: m(r.paced, (x) => x.sendLateP99),
      errors: r.paced.reduce((a, x) => a + x.errors + x.non2xx, 0),
    },
    sequential: {
      p50Ms: m(r.sequential, (x) => x.p50),
      p99Ms: m(r.sequential, (x) => x.p99),
      non2xx: r.sequential.reduce((a, x) => a + x.non2xx, 0),
    },
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const started = new Date();
  out(
    `sidecar-injector bench${QUICK ? " (--quick)" : ""}: ${ROUNDS} round(s), wrk ${WRK_SECONDS} s`,
  );
  await ensureWrk();
  await Deno.mkdir(TMP, { recursive: true });
  await makeCerts();
  const caCert = await Deno.readTextFile(`${CERTS}/ca.crt`);

  await Deno.mkdir(FIXTURES, { recursive: true });
  const fixtures = { realistic: realisticReview(), small: smallReview() };
  const bodies: Record<string, Uint8Array> = {};
  const files: Record<string, string> = {};
  for (const [k, v] of Object.entries(fixtures)) {
    files[k] = `${FIXTURES}/${k}.json`;
    bodies[k] = encoder.encode(JSON.stringify(v));
    await Deno.writeTextFile(files[k]!, JSON.stringify(v, null, 2) + "\n");
  }
  out(
    `bodies: realistic ${bodies.realistic!.byteLength} B, small ${bodies.small!.byteLength} B`,
  );

  const server = await startServer();
  const floor = await startFloor();
  const procs = { server, floor };
  const targets = {
    server: target(server.port, caCert),
    floor: target(floor.port, caCert),
  };
  await waitReady(targets.server);
  await waitReady(targets.floor);
  out(
    `server pid ${server.child.pid} port ${server.port}; floor pid ${floor.child.pid} port ${floor.port}`,
  );

  const allChecks = [
    ...(await checks("server", targets.server, bodies)),
    ...(await checks("floor", targets.floor, bodies)),
  ];
  for (const c of allChecks) {
    out(`check ${c.ok ? "ok  " : "FAIL"} ${c.target} ${c.what}: ${c.detail}`);
  }

  const rssIdle = { server: await rssKiB(server.child.pid), floor: await rssKiB(floor.child.pid) };
  const runs: Record<"server" | "floor", TargetRuns> = {
    server: { wrkRealistic: [], wrkSmall: [], paced: [], sequential: [] },
    floor: { wrkRealistic: [], wrkSmall: [], paced: [], sequential: [] },
  };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ["server", "floor"] as const : ["floor", "server"] as const;
    for (const name of order) {
      const t = targets[name];
      const host = `127.0.0.1:${t.port}`;
      const req = buildRequest("POST", "/mutate", host, bodies.realistic, {
        "content-type": "application/json",
      });
      const wr = await wrk(t, files.realistic!, WRK_SECONDS);
      const ws = await wrk(t, files.small!, WRK_SECONDS);
      const p = await paced(t, req, {
        rate: PACED_RATE,
        durationMs: PACED_MS,
        connections: PACED_CONNECTIONS,
      });
      const s = await sequential(t, req, SEQUENTIAL);
      runs[name].wrkRealistic.push(wr);
      runs[name].wrkSmall.push(ws);
      runs[name].paced.push(p);
      runs[name].sequential.push(s);
      out(
        `round ${round + 1} ${name.padEnd(6)}: wrk realistic ${f(wr.rps, 0)} req/s` +
          ` (p99 ${f(wr.p99Ms)} ms, non-2xx ${wr.non2xx}), small ${f(ws.rps, 0)} req/s;` +
          ` paced p50/p99/p99.9 ${f(p.p50)}/${f(p.p99)}/${f(p.p999)} ms` +
          ` (send late p99 ${f(p.sendLateP99)} ms${
            p.sendLateP99 > 1 ? ", GENERATOR DISTURBED" : ""
          }, errors ${p.errors + p.non2xx});` +
          ` sequential p50/p99 ${f(s.p50, 3)}/${f(s.p99, 3)} ms`,
      );
      if (wr.socketErrors || ws.socketErrors) out(`  wrk ${wr.socketErrors} ${ws.socketErrors}`);
    }
  }
  const rssLoaded = {
    server: await rssKiB(server.child.pid),
    floor: await rssKiB(floor.child.pid),
  };

  // Shut both down (the server must exit 0 on SIGTERM) before the cold starts.
  const exits: Record<string, number> = {};
  for (const [name, p] of Object.entries(procs)) exits[name] = (await stop(p.child)).code;
  const serverLog = await Deno.readTextFile(server.log).catch(() => "");
  const logLines = serverLog.split("\n").filter((l) => l);
  const levels: Record<string, number> = {};
  for (const l of logLines) {
    try {
      const lvl = JSON.parse(l).level ?? "?";
      levels[lvl] = (levels[lvl] ?? 0) + 1;
    } catch {
      levels["non-JSON"] = (levels["non-JSON"] ?? 0) + 1;
    }
  }
  const notableLog = logLines.filter((l) => !/"msg":"(admission|listening)"/.test(l)).slice(0, 10);

  const starts = [];
  for (let i = 0; i < COLD_STARTS; i++) starts.push(await coldStart(caCert));
  const startMs = median(starts.map((s) => s.ms));

  const injectResults = await injectBench();
  const profile = CPU_PROF ? await cpuProfile(caCert, files.realistic!) : undefined;

  // ---------------------------------------------------------------- report
  const S = summarize(runs.server);
  const F = summarize(runs.floor);
  const mb = (kib: number) => kib / 1024;
  const rows: string[][] = [
    ["metric (median of rounds)", "server", "floor", "server/floor"],
    [
      "wrk realistic: req/s",
      f(S.wrkRealistic.rps, 0),
      f(F.wrkRealistic.rps, 0),
      ratio(S.wrkRealistic.rps, F.wrkRealistic.rps),
    ],
    [
      "wrk realistic: p50 / p99 ms",
      `${f(S.wrkRealistic.p50Ms)} / ${f(S.wrkRealistic.p99Ms)}`,
      `${f(F.wrkRealistic.p50Ms)} / ${f(F.wrkRealistic.p99Ms)}`,
      ratio(S.wrkRealistic.p99Ms, F.wrkRealistic.p99Ms),
    ],
    [
      "wrk small: req/s",
      f(S.wrkSmall.rps, 0),
      f(F.wrkSmall.rps, 0),
      ratio(S.wrkSmall.rps, F.wrkSmall.rps),
    ],
    [
      "wrk small: p50 / p99 ms",
      `${f(S.wrkSmall.p50Ms)} / ${f(S.wrkSmall.p99Ms)}`,
      `${f(F.wrkSmall.p50Ms)} / ${f(F.wrkSmall.p99Ms)}`,
      ratio(S.wrkSmall.p99Ms, F.wrkSmall.p99Ms),
    ],
    [
      "wrk non-2xx (all runs)",
      String(S.wrkRealistic.non2xx + S.wrkSmall.non2xx),
      String(F.wrkRealistic.non2xx + F.wrkSmall.non2xx),
      "",
    ],
    [
      `${PACED_RATE} req/s: p50 / p99 / p99.9 ms`,
      `${f(S.paced.p50Ms)} / ${f(S.paced.p99Ms)} / ${f(S.paced.p999Ms)}`,
      `${f(F.paced.p50Ms)} / ${f(F.paced.p99Ms)} / ${f(F.paced.p999Ms)}`,
      ratio(S.paced.p99Ms, F.paced.p99Ms),
    ],
    [
      `${PACED_RATE} req/s: service p50 / p99 ms`,
      `${f(S.paced.serviceP50Ms)} / ${f(S.paced.serviceP99Ms)}`,
      `${f(F.paced.serviceP50Ms)} / ${f(F.paced.serviceP99Ms)}`,
      ratio(S.paced.serviceP99Ms, F.paced.serviceP99Ms),
    ],
    [
      `${PACED_RATE} req/s: generator send-late p99 ms`,
      f(S.paced.sendLateP99Ms),
      f(F.paced.sendLateP99Ms),
      "",
    ],
    [
      `sequential x${SEQUENTIAL}, 1 conn: p50 / p99 ms`,
      `${f(S.sequential.p50Ms, 3)} / ${f(S.sequential.p99Ms, 3)}`,
      `${f(F.sequential.p50Ms, 3)} / ${f(F.sequential.p99Ms, 3)}`,
      ratio(S.sequential.p99Ms, F.sequential.p99Ms),
    ],
    [
      "RSS idle / after load / peak MB",
      `${f(mb(rssIdle.server.rss), 1)} / ${f(mb(rssLoaded.server.rss), 1)} / ${
        f(mb(rssLoaded.server.hwm), 1)
      }`,
      `${f(mb(rssIdle.floor.rss), 1)} / ${f(mb(rssLoaded.floor.rss), 1)} / ${
        f(mb(rssLoaded.floor.hwm), 1)
      }`,
      ratio(rssLoaded.server.rss, rssLoaded.floor.rss),
    ],
    [
      `start-to-ready ms (median of ${COLD_STARTS})`,
      f(startMs, 0),
      "",
      "",
    ],
    ...injectResults.map((b) => [`${b.name} ns/iter`, f(b.nsPerIter, 0), "", ""]),
  ];

  const targetsMet = [
    {
      target: "throughput server/floor >= 0.70 (realistic body)",
      value: S.wrkRealistic.rps / F.wrkRealistic.rps,
      met: S.wrkRealistic.rps / F.wrkRealistic.rps >= 0.7,
    },
    {
      target: "sequential HTTP/1.1 median <= 1 ms",
      value: S.sequential.p50Ms,
      met: S.sequential.p50Ms <= 1,
    },
    {
      target: `p99 <= 2 ms at ${PACED_RATE} req/s`,
      value: S.paced.p99Ms,
      met: S.paced.p99Ms <= 2,
    },
    {
      target: "RSS <= 60 MB after load",
      value: mb(rssLoaded.server.rss),
      met: mb(rssLoaded.server.rss) <= 60,
    },
    { target: "start-to-ready < 200 ms", value: startMs, met: startMs < 200 },
    {
      target: "no non-2xx / errors under load",
      value: S.wrkRealistic.non2xx + S.wrkSmall.non2xx + S.paced.errors + S.sequential.non2xx,
      met: S.wrkRealistic.non2xx + S.wrkSmall.non2xx + S.paced.errors + S.sequential.non2xx === 0,
    },
  ];

  out("");
  out(table(rows));
  out("");
  for (const t of targetsMet) {
    out(`${t.met ? "MET    " : "NOT MET"}  ${t.target}  (${f(t.value, 2)})`);
  }
  out(
    `SIGTERM exit codes: server ${exits.server}, floor ${exits.floor}; cold-start exits ${
      starts.map((s) => s.exitCode).join(",")
    }`,
  );
  out(`server log lines by level: ${JSON.stringify(levels)}`);
  for (const l of notableLog) out(`  log: ${l.slice(0, 300)}`);
  if (profile) {
    out("");
    out(
      `CPU profile (${profile.file.replace(REPO + "/", "")}), ${
        f(profile.totalMs, 0)
      } ms sampled,` +
        ` wrk ${f(profile.wrk.rps, 0)} req/s during profiling:`,
    );
    out(
      table([
        ["area", "self ms", "%"],
        ...profile.byArea.map((r) => [r.fn, f(r.selfMs, 0), f(r.pct, 1)]),
      ]),
    );
    out("");
    out(
      table([
        ["top self time", "self ms", "%"],
        ...profile.rows.map((r) => [r.fn, f(r.selfMs, 0), f(r.pct, 1)]),
      ]),
    );
  }

  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(
    (await run("cat", ["/proc/cpuinfo"])).stdout,
  )?.[1];
  const nproc = (await run("nproc", [])).stdout.trim();
  const result = {
    date: started.toISOString(),
    quick: QUICK,
    machine: {
      nproc: Number(nproc),
      cpu: cpuModel ?? "unknown",
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      kernel: Deno.osRelease(),
      loadavg: Deno.loadavg(),
    },
    settings: {
      rounds: ROUNDS,
      wrk: `wrk -t2 -c16 -d${WRK_SECONDS}s --latency -s bench/post.lua`,
      paced: { rate: PACED_RATE, durationMs: PACED_MS, connections: PACED_CONNECTIONS },
      sequential: SEQUENTIAL,
      bodyBytes: { realistic: bodies.realistic!.byteLength, small: bodies.small!.byteLength },
    },
    targets: targetsMet,
    summary: { server: S, floor: F },
    rssKiB: { idle: rssIdle, afterLoad: rssLoaded },
    startToReadyMs: { median: startMs, runs: starts },
    inject: injectResults,
    checks: allChecks,
    sigtermExitCodes: exits,
    serverLog: { levels, notable: notableLog },
    runs,
    ...(profile ? { cpuProfile: profile } : {}),
  };
  await Deno.mkdir(RESULTS, { recursive: true });
  const file = `${RESULTS}/${started.toISOString().slice(0, 10)}${QUICK ? ".quick" : ""}.json`;
  await Deno.writeTextFile(file, JSON.stringify(result, null, 2) + "\n");
  out(`\nwrote ${file.replace(REPO + "/", "")}`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  err(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  code = 1;
} finally {
  await stopAll();
}
Deno.exit(code);
