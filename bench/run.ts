/**
 * `deno task bench [--quick] [--cpu-prof] [--install]`: the webhook (run as
 * `deno task serve` runs it) beside a `node:https` floor (the same server
 * stack doing the least a webhook can), a `Deno.serve` floor and, when Go is
 * installed, a plain Go webhook (bench/go/), over TLS keep-alive on loopback.
 *
 * Alternating servers, 3 rounds (1 with --quick), medians of: wrk -t2 -c16
 * (realistic and small review), 1,000 req/s paced latency, 500 sequential
 * reviews on one connection. Then the large-pod storm (16/64/256 connections,
 * fresh server each, peak RSS; the node:https floor too, for the stack's own
 * share), cold start-to-ready, `inject()` alone, and
 * with --cpu-prof a profile. Prints the targets below, writes bench/results/.
 * `--install` lets it apt-get wrk when missing.
 * @module
 */
import { exec, memoryKiB, out, say, terminate } from "../testing/process.ts";
import { buildRequest, median } from "../testing/http1.ts";
import { checks, samePatches } from "./checks.ts";
import { writeFixtures } from "./fixtures.ts";
import { paced, sequential } from "./load.ts";
import { cpuProfile } from "./profile.ts";
import {
  emptyRuns,
  f,
  machine,
  printProfile,
  printServers,
  printStorm,
  type Runs,
  summarizeRuns,
  type Summary,
  writeResult,
} from "./report.ts";
import {
  buildGo,
  coldStart,
  cpuMs,
  deploymentLimitMiB,
  injectBench,
  makeCerts,
  type Server,
  start,
} from "./servers.ts";
import { storm, STORM_CONNECTIONS, type StormLevel } from "./storm.ts";
import { ensureWrk, wrk, WRK_MISSING } from "./wrk.ts";

/** What the targets are judged on. */
interface Measured {
  server: Summary;
  nodeFloor: Summary;
  go: Summary | undefined;
  storm: StormLevel[];
  limitMiB: number;
  startMs: number;
}

/** Peak RSS allowed under the large-pod storm: one replica's footprint, paid three times over. */
const STORM_PEAK_MIB = 160;

/** The pass/fail targets (README "Performance"), all from one run. */
const TARGETS: {
  target: string;
  value: (m: Measured) => number | undefined;
  met: (v: number, m: Measured) => boolean;
}[] = [
  {
    target: "throughput >= 0.90 x node:https floor (realistic review, wrk -c16)",
    value: (m) => m.server.wrkRealistic.rps / m.nodeFloor.wrkRealistic.rps,
    met: (v) => v >= 0.9,
  },
  {
    target: "throughput >= 1.0 x plain Go webhook (realistic review, wrk -c16)",
    value: (m) => m.go && m.server.wrkRealistic.rps / m.go.wrkRealistic.rps,
    met: (v) => v >= 1,
  },
  { target: "p99 <= 2 ms at 1,000 req/s", value: (m) => m.server.paced.p99Ms, met: (v) => v <= 2 },
  {
    target: `large-pod storm peak RSS (MiB) <= ${STORM_PEAK_MIB} and < Deployment limit at ${
      STORM_CONNECTIONS.join("/")
    }`,
    value: (m) => Math.max(...m.storm.map((l) => l.peakMiB)),
    met: (v, m) => v <= STORM_PEAK_MIB && v < m.limitMiB,
  },
  {
    target: "large-pod storm: no answer but 200 or the budget's 503",
    value: (m) => m.storm.reduce((a, l) => a + l.unexpected, 0),
    met: (v) => v === 0,
  },
  {
    target: "sequential median <= 0.3 ms",
    value: (m) => m.server.sequential.p50Ms,
    met: (v) => v <= 0.3,
  },
  { target: "start-to-ready < 200 ms", value: (m) => m.startMs, met: (v) => v < 200 },
  {
    target: "no errors under load (wrk, paced, sequential)",
    value: (m) =>
      m.server.wrkRealistic.non2xx + m.server.wrkSmall.non2xx + m.server.paced.errors +
      m.server.sequential.non2xx,
    met: (v) => v === 0,
  },
];

const QUICK = Deno.args.includes("--quick");
const ROUNDS = QUICK ? 1 : 3;
const WRK_SECONDS = QUICK ? 2 : 5;
const STORM_SECONDS = QUICK ? 3 : 8;
const PACED = { rate: 1000, durationMs: QUICK ? 2000 : 5000, connections: 8 };
const SEQUENTIAL = 500;
const COLD_STARTS = 5;
const NAMES = {
  server: "server",
  node_floor: "node:https floor",
  deno_floor: "Deno.serve floor",
  go: "Go",
};

/** One round on one server: throughput, paced latency, sequential latency. */
async function round(
  s: Server,
  runs: Runs,
  bodies: Record<string, Uint8Array>,
  files: Record<string, string>,
) {
  const req = buildRequest("POST", "/mutate", `127.0.0.1:${s.target.port}`, bodies.realistic, {
    "content-type": "application/json",
  });
  const cpu0 = await cpuMs(s.proc.child.pid);
  const wr = await wrk(s.target, files.realistic!, { seconds: WRK_SECONDS });
  runs.cpuUsPerReview.push((1000 * (await cpuMs(s.proc.child.pid) - cpu0)) / wr.requests);
  const ws = await wrk(s.target, files.small!, { seconds: WRK_SECONDS });
  const p = await paced(s.target, req, PACED);
  const q = await sequential(s.target, req, SEQUENTIAL);
  runs.wrkRealistic.push(wr);
  runs.wrkSmall.push(ws);
  runs.paced.push(p);
  runs.sequential.push(q);
  out(
    `  ${NAMES[s.name].padEnd(16)} wrk ${f(wr.rps, 0)} req/s (p99 ${f(wr.p99Ms)} ms), small ${
      f(ws.rps, 0)
    };` +
      ` 1,000 req/s p50/p99 ${f(p.p50)}/${f(p.p99)} ms (send late p99 ${f(p.sendLateP99)});` +
      ` sequential p50 ${f(q.p50, 3)} ms` + (wr.socketErrors ? `; ${wr.socketErrors}` : ""),
  );
}

async function main(): Promise<number> {
  const started = new Date();
  if (!(await ensureWrk(Deno.args.includes("--install")))) {
    say(WRK_MISSING);
    return 1;
  }
  out(
    `sidecar-injector bench${QUICK ? " (--quick)" : ""}: ${ROUNDS} round(s), wrk ${WRK_SECONDS} s`,
  );
  const caCert = await makeCerts();
  const { bodies, files } = await writeFixtures();
  out(`bodies: ${Object.entries(bodies).map(([k, b]) => `${k} ${b.byteLength} B`).join(", ")}`);
  const go = await buildGo();
  out(go.ok ? `Go webhook built (${go.note})` : go.note);

  const names = ["server", "node_floor", "deno_floor", ...(go.ok ? ["go" as const] : [])] as const;
  const servers: Server[] = [];
  for (const name of names) servers.push(await start(name, caCert));
  const allChecks = [];
  const patches = new Map(servers.map((s) => [s.name, new Map<string, string>()]));
  for (const s of servers) {
    allChecks.push(
      ...await checks(
        NAMES[s.name],
        s.target,
        {
          realistic: bodies.realistic!,
          small: bodies.small!,
        },
        s.name === "server" || s.name === "go",
        patches.get(s.name),
      ),
    );
  }
  if (go.ok) allChecks.push(...samePatches(patches.get("server")!, patches.get("go")!));
  for (const c of allChecks) {
    out(`check ${c.ok ? "ok  " : "FAIL"} ${c.target} ${c.what}: ${c.detail}`);
  }

  const rssIdle = new Map<string, number>();
  for (const s of servers) rssIdle.set(s.name, (await memoryKiB(s.proc.child.pid)).rss / 1024);
  const runs = new Map(servers.map((s) => [s.name, emptyRuns()]));
  for (let r = 0; r < ROUNDS; r++) {
    out(`round ${r + 1}`);
    // Rotate the order, so no server always runs first (or right after the heaviest).
    for (let i = 0; i < servers.length; i++) {
      const s = servers[(i + r) % servers.length]!;
      await round(s, runs.get(s.name)!, bodies, files);
    }
  }
  const rssAfter = new Map<string, { rss: number; hwm: number }>();
  for (const s of servers) rssAfter.set(s.name, await memoryKiB(s.proc.child.pid));
  const exits: Record<string, number> = {};
  for (const s of servers) exits[s.name] = (await terminate(s.proc)).code;

  out(`large-pod storm (${bodies.large!.byteLength} B reviews, fresh server per level)`);
  const levels = await storm(caCert, files.large!, STORM_SECONDS);
  const floorLevels = await storm(caCert, files.large!, STORM_SECONDS, "node_floor");
  const limitMiB = await deploymentLimitMiB();
  const starts = [];
  for (let i = 0; i < COLD_STARTS; i++) starts.push(await coldStart(caCert));
  const startMs = median(starts.map((s) => s.ms));
  const inject = await injectBench();
  const profile = Deno.args.includes("--cpu-prof")
    ? await cpuProfile(caCert, files.realistic!, WRK_SECONDS)
    : undefined;

  const S = new Map([...runs].map(([k, v]) => [k, summarizeRuns(v)]));
  const sv = S.get("server")!;
  printServers(servers.map((s) => [NAMES[s.name], S.get(s.name)!] as const), {
    idle: servers.map((s) => rssIdle.get(s.name)),
    after: servers.map((s) => rssAfter.get(s.name)),
  }, SEQUENTIAL);
  printStorm(levels, floorLevels, limitMiB);
  out(`start-to-ready median ${f(startMs, 0)} ms`);
  for (const b of inject) out(`${b.name}: ${f(b.nsPerIter / 1000, 1)} µs`);

  const measured: Measured = {
    server: sv,
    nodeFloor: S.get("node_floor")!,
    go: S.get("go"),
    storm: levels,
    limitMiB,
    startMs,
  };
  const targets = TARGETS.map((t) => {
    const value = t.value(measured);
    const met = value === undefined ? undefined : t.met(value, measured);
    return { target: t.target, value, met };
  });
  out("");
  for (const t of targets) {
    const verdict = t.met === undefined ? "NOT RUN" : t.met ? "MET    " : "NOT MET";
    out(`${verdict}  ${t.target}  (${t.value === undefined ? go.note : f(t.value)})`);
  }
  out(
    `SIGTERM exit codes: ${JSON.stringify(exits)}; cold starts ${
      starts.map((s) => s.exitCode).join(",")
    }`,
  );
  if (profile) printProfile(profile);
  await writeResult(
    {
      date: started.toISOString(),
      quick: QUICK,
      machine: machine((await exec("cat", ["/proc/cpuinfo"])).stdout),
      settings: {
        rounds: ROUNDS,
        wrkSeconds: WRK_SECONDS,
        paced: PACED,
        sequential: SEQUENTIAL,
        stormSeconds: STORM_SECONDS,
        go: go.note,
      },
      targets,
      summary: Object.fromEntries(S),
      rssMiB: { idle: Object.fromEntries(rssIdle), afterLoadKiB: Object.fromEntries(rssAfter) },
      storm: { limitMiB, levels, nodeFloor: floorLevels },
      startToReadyMs: { median: startMs, runs: starts },
      inject,
      checks: allChecks,
      sigtermExitCodes: exits,
      runs: Object.fromEntries(runs),
      ...(profile ? { cpuProfile: profile } : {}),
    },
    started,
    QUICK,
  );
  return allChecks.every((c) => c.ok) ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  say(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
}
Deno.exit(code);
