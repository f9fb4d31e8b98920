/**
 * Agent conformance suite (`deno task agents`, not part of `deno task test`):
 * the injected agent container, rendered by `inject()`, run by real Fluentd
 * and Fluent Bit the way a kubelet runs it (see `kubelet.ts`), against each
 * way a log line can get lost. Needs root and `FLUENTD`/`FLUENT_BIT`.
 * @module
 */
import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import type { Pod, PodSecurityContext } from "kubernetes-types/core/v1.d.ts";
import { inject, parseConfig } from "../../lib/mod.ts";
import { METRICS_PATH } from "../../lib/agent/mod.ts";
import { exec, out } from "../../testing/process.ts";
import { Aggregator, type TlsIdentity } from "./aggregator.ts";
import {
  type AgentBinaries,
  agentBinaries,
  type AgentProcess,
  type Objects,
  PodSandbox,
} from "./kubelet.ts";
import { kubeletStop, Liveness, started } from "./probe.ts";

const agents: AgentBinaries = agentBinaries();
type AgentName = "fluentd" | "fluent-bit";
const AGENTS: AgentName[] = ["fluentd", "fluent-bit"];
const NAMESPACE = "shop";
const NODE = "node-7";
const LOG_DIR = "/var/log/app";

/** One row of the figures docs/log-path.md quotes. */
interface Row {
  agent: AgentName;
  scenario: string;
  sent: number;
  received: number;
  lost: number;
  duplicates: number;
  p50Ms: number;
  maxMs: number;
  peakRssMiB: number;
}
const rows: Row[] = [];

/** The agent's output: the aggregator's records, or its stdout parsed as JSON lines. */
type Sink = () => Array<{ record: Record<string, unknown>; at: number }>;

/** Renders `pod` through `inject()` with `output` and returns the patched pod. */
function render(
  agent: AgentName,
  output: string,
  podPatch: Partial<Pod["spec"]> = {},
  containers = ["app"],
  mode: "native" | "classic" = "native",
): Pod {
  const config = parseConfig(
    `defaultProfile: ${agent}\nmode: ${mode}\nprofiles:\n  ${agent}:\n    output: ${output}\n`,
    "conformance",
  );
  const pod: Pod = {
    metadata: { name: `${agent}-pod`, namespace: NAMESPACE },
    spec: {
      nodeName: NODE,
      containers: containers.map((name) => ({ name, image: "busybox" })),
      ...podPatch,
    },
  };
  const result = inject(pod, config, { namespace: NAMESPACE });
  assert.equal(result.decision, "injected", result.reason);
  return jsonpatch.applyPatch(structuredClone(pod), result.patch).newDocument;
}

/** A pod's log volume as the app sees it, recording when each line was written. */
class App {
  readonly sentAt = new Map<string, number>();
  #seq = 0;
  constructor(readonly dir: string, readonly name: string) {}

  /** Appends `n` lines to `file` (relative to the log dir), creating directories. */
  async write(file: string, n: number, pad = 0): Promise<string[]> {
    const path = `${this.dir}/${file}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    const lines = Array.from({ length: n }, () => `${this.name}-${++this.#seq}${"x".repeat(pad)}`);
    const at = performance.now();
    await Deno.writeTextFile(path, lines.map((l) => `${l}\n`).join(""), { append: true });
    for (const l of lines) this.sentAt.set(l, at);
    return lines;
  }
}

function stdoutSink(runs: AgentProcess[]): Sink {
  return () =>
    runs.flatMap((r) =>
      r.stdout.filter((l) => l !== "").map((l) => ({ record: JSON.parse(l), at: 0 }))
    );
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number, agent?: AgentProcess) {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    agent?.sample();
    if (performance.now() > deadline || agent?.done) {
      throw new Error(
        `${agent?.done ? "agent exited" : `timed out after ${timeoutMs} ms`} waiting for ${what}\n${
          agent?.stderr.slice(-3000) ?? ""
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Counts what `sink` received of what `app` sent, records a row and returns it. */
function tally(
  agent: AgentName,
  scenario: string,
  app: App,
  sink: Sink,
  peak: number,
  arrival = true,
): Row {
  const seen = new Map<string, number>();
  const latencies: number[] = [];
  for (const { record, at } of sink()) {
    const line = String(record.log);
    if (!app.sentAt.has(line)) continue;
    seen.set(line, (seen.get(line) ?? 0) + 1);
    if (arrival && seen.get(line) === 1) latencies.push(at - (app.sentAt.get(line) ?? 0));
  }
  latencies.sort((a, b) => a - b);
  const duplicates = [...seen.values()].reduce((n, c) => n + c - 1, 0);
  const row: Row = {
    agent,
    scenario,
    sent: app.sentAt.size,
    received: seen.size,
    lost: app.sentAt.size - seen.size,
    duplicates,
    p50Ms: Math.round(latencies[Math.floor(latencies.length / 2)] ?? 0),
    maxMs: Math.round(latencies.at(-1) ?? 0),
    peakRssMiB: Math.round(peak / 1024),
  };
  rows.push(row);
  return row;
}

const delivered = (app: App, sink: Sink) => () => {
  const got = new Set(sink().map((r) => String(r.record.log)));
  return [...app.sentAt.keys()].every((l) => got.has(l));
};

/** Stops the agent as the kubelet does: preStop, SIGTERM, SIGKILL at the end of the grace period. */
const stop = kubeletStop;

async function tlsIdentity(dir: string): Promise<TlsIdentity & { ca: string }> {
  const r = await exec("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout",
    `${dir}/key.pem`,
    "-out",
    `${dir}/cert.pem`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const cert = await Deno.readTextFile(`${dir}/cert.pem`);
  return { cert, key: await Deno.readTextFile(`${dir}/key.pem`), ca: cert };
}

/** What a forward-output scenario works with. */
interface Case {
  agg: Aggregator;
  dir: string;
  app: App;
  run: AgentProcess;
  sink: Sink;
}

interface CaseOptions {
  podPatch?: Partial<Pod["spec"]>;
  /** The aggregator is down when the agent starts. */
  down?: boolean;
  tls?: TlsIdentity;
  /** The output, given the aggregator's port; plain forward to 127.0.0.1 by default. */
  output?: (port: number) => string;
  objects?: Objects;
  /** Runs before the agent starts (files the app wrote already). */
  before?: (dir: string, app: App) => Promise<void>;
}

/** Runs `body` with a pod forwarding to a fresh aggregator; cleans up whatever happens. */
async function forwardCase(
  agent: AgentName,
  name: string,
  opts: CaseOptions,
  body: (c: Case) => Promise<void>,
): Promise<void> {
  const agg = await Aggregator.start(0, opts.tls);
  if (opts.down) await agg.down();
  const output = opts.output?.(agg.port) ?? `{ type: forward, host: 127.0.0.1, port: ${agg.port} }`;
  const box = await PodSandbox.create(render(agent, output, opts.podPatch), opts.objects);
  const dir = box.dir("app-logs");
  const app = new App(dir, name);
  try {
    await opts.before?.(dir, app);
    const run = box.start(agent, agents);
    try {
      await body({ agg, dir, app, run, sink: () => agg.received });
    } finally {
      await run.oomKill();
    }
  } finally {
    await agg.down();
    await box.remove();
  }
}

for (const agent of AGENTS) {
  Deno.test(`${agent}: stdout is one JSON object per line with pod, namespace, node, container`, async () => {
    const pod = render(agent, "{ type: stdout }", {}, ["web", "worker"]);
    const box = await PodSandbox.create(pod);
    const app = new App(box.dir("app-logs"), "json");
    await app.write("web.log", 50);
    await app.write("worker/deep/a/b.log", 50);
    await app.write("other.log", 50);
    const run = box.start(agent, agents);
    const sink = stdoutSink([run]);
    try {
      await waitFor("150 records on stdout", delivered(app, sink), 20_000, run);
      await stop(run);
      for (const line of run.stdout.filter((l) => l !== "")) {
        const r = JSON.parse(line);
        assert.equal(typeof r, "object", line);
        for (const key of ["time", "log", "file", "pod", "namespace", "node", "container"]) {
          assert.ok(key in r, `${key} missing in ${line}`);
        }
        assert.equal(r.pod, pod.metadata?.name);
        assert.equal(r.namespace, NAMESPACE);
        assert.equal(r.node, NODE);
        const want = r.file === `${LOG_DIR}/web.log`
          ? "web"
          : r.file.startsWith(`${LOG_DIR}/worker/`)
          ? "worker"
          : r.file;
        assert.equal(r.container, want, line);
      }
      const row = tally(
        agent,
        "stdout JSON lines (3 files, nested)",
        app,
        sink,
        run.peakRssKiB,
        false,
      );
      assert.equal(row.lost, 0);
      assert.equal(row.duplicates, 0);
    } finally {
      await run.oomKill();
      await box.remove();
    }
  });

  Deno.test(`${agent}: files created later, at any depth, ship within seconds`, async () => {
    await forwardCase(agent, "late", {}, async ({ app, run, sink }) => {
      await new Promise((r) => setTimeout(r, 3000));
      for (let depth = 0; depth <= 5; depth++) {
        await app.write(`${"d/".repeat(depth)}late-${depth}.log`, 20);
        await new Promise((r) => setTimeout(r, 500));
      }
      await waitFor("late files", delivered(app, sink), 20_000, run);
      const row = tally(agent, "late files, depth 0-5", app, sink, run.peakRssKiB);
      assert.equal(row.lost, 0);
      assert.ok(row.maxMs < 10_000, `slowest new file took ${row.maxMs} ms`);
    });
  });

  Deno.test(`${agent}: rotation by rename, copytruncate and rename to a .log name loses and repeats nothing`, async () => {
    await forwardCase(agent, "rot", {}, async ({ dir, app, run, sink }) => {
      await app.write("app.log", 10);
      await waitFor("the agent to follow app.log", delivered(app, sink), 20_000, run);
      await app.write("app.log", 200);
      await Deno.rename(`${dir}/app.log`, `${dir}/app.log.1`);
      await app.write("app.log", 200);
      await waitFor("rename + create", delivered(app, sink), 20_000, run);
      // Fluentd's in_tail can lose track of a file rotated twice within its rotate_wait (30 s):
      // rotations of one file are hours apart in practice, so the next one comes later here.
      if (agent === "fluentd") await new Promise((r) => setTimeout(r, 32_000));
      // copytruncate loses what the agent has not read when the file is truncated: logrotate's known gap.
      await Deno.copyFile(`${dir}/app.log`, `${dir}/app.log.2`);
      await Deno.truncate(`${dir}/app.log`, 0);
      await app.write("app.log", 200);
      await waitFor("copytruncate", delivered(app, sink), 20_000, run);
      await app.write("app.log", 100);
      await Deno.rename(`${dir}/app.log`, `${dir}/app-2.log`);
      await app.write("app.log", 200);
      await waitFor("rename to .log", delivered(app, sink), 20_000, run);
      await new Promise((r) => setTimeout(r, 4000)); // room for a re-read to show up
      const row = tally(
        agent,
        "rotation (rename, copytruncate, rename to .log)",
        app,
        sink,
        run.peakRssKiB,
      );
      assert.equal(row.lost, 0);
      assert.equal(row.duplicates, 0);
    });
  });

  Deno.test(`${agent}: long lines ship up to 1 MiB, a longer one is dropped and logged, the file goes on`, async () => {
    await forwardCase(agent, "long", {}, async ({ agg, app, run, sink }) => {
      await app.write("app.log", 10);
      const [big = ""] = await app.write("app.log", 1, 64 * 1024);
      const [huge = ""] = await app.write("app.log", 1, 2 * 1024 * 1024);
      app.sentAt.delete(huge);
      await app.write("app.log", 10);
      await waitFor("lines after the long one", delivered(app, sink), 20_000, run);
      assert.ok(agg.lines().includes(big), "the 64 KiB line arrives whole");
      assert.ok(!agg.lines().some((l) => l.length > 1024 * 1024));
      assert.match(run.stderr, /longer than|long lines/i);
      const row = tally(
        agent,
        "long lines (64 KiB kept, 2 MiB dropped+logged)",
        app,
        sink,
        run.peakRssKiB,
      );
      assert.equal(row.lost, 0);
    });
  });

  Deno.test(`${agent}: a non-root app's 0600 files in a 0700 directory, and fsGroup files, ship`, async () => {
    const security: PodSecurityContext = { runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000 };
    const before = async (dir: string, app: App) => {
      await app.write("private/app.log", 50);
      await Deno.chown(`${dir}/private`, 1000, 3000);
      await Deno.chmod(`${dir}/private`, 0o700);
      await Deno.chown(`${dir}/private/app.log`, 1000, 3000);
      await Deno.chmod(`${dir}/private/app.log`, 0o600);
      await app.write("other-user.log", 50); // another user's file, readable by the pod's fsGroup
      await Deno.chown(`${dir}/other-user.log`, 1001, 2000);
      await Deno.chmod(`${dir}/other-user.log`, 0o640);
    };
    const opts = { podPatch: { securityContext: security }, before };
    await forwardCase(agent, "uid", opts, async ({ app, run, sink }) => {
      await waitFor("non-root files", delivered(app, sink), 20_000, run);
      assert.equal(run.uid(), 1000);
      const row = tally(
        agent,
        "non-root: 0600 in 0700 dir + fsGroup 0640",
        app,
        sink,
        run.peakRssKiB,
      );
      assert.equal(row.lost, 0);
    });
  });

  Deno.test(`${agent}: SIGTERM flushes everything written before it, within the grace period`, async () => {
    await forwardCase(agent, "term", {}, async ({ app, run, sink }) => {
      await app.write("app.log", 10);
      await waitFor("agent up", delivered(app, sink), 20_000, run);
      await app.write("app.log", 2000);
      const t0 = performance.now();
      const status = await stop(run);
      const stopMs = performance.now() - t0;
      assert.equal(status.code, 0, run.stderr.slice(-2000));
      assert.ok(stopMs < 25_000, `stopped after ${stopMs} ms`);
      const row = tally(
        agent,
        `SIGTERM right after 2000 lines (stopped in ${Math.round(stopMs)} ms)`,
        app,
        sink,
        run.peakRssKiB,
      );
      assert.equal(row.lost, 0);
    });
  });

  Deno.test(`${agent}: aggregator outage with an unresolvable name, agent restart and OOM kill lose nothing`, async () => {
    const agg = await Aggregator.start();
    await agg.down();
    const hosts = await Deno.makeTempFile({ prefix: "hosts-" });
    await Deno.writeTextFile(hosts, "127.0.0.1 localhost\n");
    await Deno.chmod(hosts, 0o644);
    const box = await PodSandbox.create(
      render(agent, `{ type: forward, host: aggregator.logging.test, port: ${agg.port} }`),
    );
    const app = new App(box.dir("app-logs"), "outage");
    const sink: Sink = () => agg.received;
    let run = box.start(agent, agents, { hostsFile: hosts });
    let peak = 0;
    try {
      await app.write("app.log", 300);
      await new Promise((r) => setTimeout(r, 5000));
      run.sample();
      assert.equal(
        await Promise.race([run.exited.then(() => "exited"), Promise.resolve("running")]),
        "running",
      );
      await stop(run); // restart during the outage
      peak = Math.max(peak, run.peakRssKiB);
      run = box.start(agent, agents, { hostsFile: hosts });
      await app.write("app.log", 300);
      await new Promise((r) => setTimeout(r, 4000));
      run.sample();
      await run.oomKill(); // killed mid-backlog
      peak = Math.max(peak, run.peakRssKiB);
      run = box.start(agent, agents, { hostsFile: hosts });
      await app.write("nested/after-oom.log", 300);
      await new Promise((r) => setTimeout(r, 4000));
      assert.equal(agg.received.length, 0);
      // The name resolves and the aggregator is back.
      await Deno.writeTextFile(hosts, "127.0.0.1 localhost aggregator.logging.test\n");
      await agg.up();
      const back = performance.now();
      await waitFor("the backlog after the outage", delivered(app, sink), 90_000, run);
      const drainMs = performance.now() - back;
      peak = Math.max(peak, run.peakRssKiB);
      const row = tally(
        agent,
        `outage: unresolvable name, restart, OOM kill (drained ${Math.round(drainMs)} ms after)`,
        app,
        sink,
        peak,
        false,
      );
      assert.equal(row.lost, 0);
    } finally {
      await run.oomKill();
      await agg.down();
      await box.remove();
      await Deno.remove(hosts);
    }
  });

  Deno.test(`${agent}: a 50 MB backlog during an outage stays on disk, memory bounded, all delivered`, async () => {
    await forwardCase(agent, "burst", { down: true }, async ({ agg, app, run, sink }) => {
      await new Promise((r) => setTimeout(r, 2000));
      const idle = run.sample();
      for (let i = 0; i < 50; i++) await app.write(`burst-${i % 5}.log`, 8000, 110); // ~1 MB each
      const t0 = performance.now();
      while (performance.now() - t0 < 15_000) {
        run.sample();
        await new Promise((r) => setTimeout(r, 200));
      }
      await agg.up();
      await waitFor("the 50 MB backlog", delivered(app, sink), 240_000, run);
      const row = tally(
        agent,
        `50 MB backlog (idle RSS ${Math.round(idle / 1024)} MiB)`,
        app,
        sink,
        run.peakRssKiB,
        false,
      );
      assert.equal(row.lost, 0);
    });
  });

  Deno.test(`${agent}: forward over TLS with the CA from a Secret`, async () => {
    const certDir = await Deno.makeTempDir();
    const id = await tlsIdentity(certDir);
    const opts: CaseOptions = {
      tls: id,
      output: (port) =>
        `{ type: forward, host: localhost, port: ${port}, tls: true, caSecret: aggregator-ca }`,
      objects: { "aggregator-ca": { "ca.crt": id.ca } },
    };
    try {
      await forwardCase(agent, "tls", opts, async ({ app, run, sink }) => {
        await app.write("app.log", 200);
        await waitFor("TLS delivery", delivered(app, sink), 20_000, run);
        const row = tally(agent, "forward over TLS", app, sink, run.peakRssKiB);
        assert.equal(row.lost, 0);
      });
    } finally {
      await Deno.remove(certDir, { recursive: true });
    }
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The `q` quantile of `xs`, rounded. */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0);
}

/** Short pods in a row, per agent and mode. */
const SHORT_PODS = 20;

for (const agent of AGENTS) {
  for (const mode of ["native", "classic"] as const) {
    Deno.test(`${agent}, ${mode}: ${SHORT_PODS} short pods in a row, each writing a new file and stopped within 1 s, ship every line`, async () => {
      const agg = await Aggregator.start();
      const all = new App("", `short-${mode}`);
      const ready: number[] = [];
      const completion: number[] = [];
      let peak = 0;
      try {
        for (let i = 0; i < SHORT_PODS; i++) {
          // Classic mode never injects run-to-completion pods: its short pods are deleted at once.
          const patch = mode === "native" ? { restartPolicy: "Never" } : {};
          const output = `{ type: forward, host: 127.0.0.1, port: ${agg.port} }`;
          const box = await PodSandbox.create(render(agent, output, patch, ["app"], mode));
          const app = new App(box.dir("app-logs"), `short-${agent}-${mode}-${i}`);
          const t0 = performance.now();
          const run = box.start(agent, agents);
          try {
            // A native sidecar holds the app until its startupProbe passes; a classic one does not.
            if (mode === "native") ready.push(await started(run, t0));
            // Creating and starting the app container takes the runtime a moment, so its file
            // appears at any point of the agent's once-a-second scan for new files.
            await sleep(200 + Math.random() * 800);
            await app.write(`run-${i}.log`, 20 + Math.floor(Math.random() * 181));
            const exited = performance.now();
            // The kubelet stops the agent 0.15-0.9 s after the app exits (measured on a real node).
            await sleep(150 + Math.random() * 750);
            run.sample();
            const status = await stop(run);
            completion.push(performance.now() - exited);
            peak = Math.max(peak, run.peakRssKiB);
            assert.equal(
              status.code,
              0,
              `pod ${i}: agent exit ${status.code}\n${run.stderr.slice(-2000)}`,
            );
            const got = new Set(agg.lines());
            const lost = [...app.sentAt.keys()].filter((l) => !got.has(l));
            assert.equal(
              lost.length,
              0,
              `pod ${i} lost ${lost.length} of ${app.sentAt.size} lines\n${
                run.stderr.slice(-2000)
              }`,
            );
            for (const [l, at] of app.sentAt) all.sentAt.set(l, at);
          } finally {
            await run.oomKill();
            await box.remove();
          }
        }
        const startup = mode === "native"
          ? `ready p50 ${quantile(ready, 0.5)} ms max ${quantile(ready, 1)} ms, `
          : "";
        const row = tally(
          agent,
          `${SHORT_PODS} short pods, ${mode} (${startup}app exit to agent exit p50 ${
            quantile(completion, 0.5)
          } ms max ${quantile(completion, 1)} ms)`,
          all,
          () => agg.received,
          peak,
          false,
        );
        assert.equal(row.lost, 0);
        assert.equal(row.duplicates, 0);
      } finally {
        await agg.down();
      }
    });
  }

  Deno.test(`${agent}: liveness stays green through a 60 s aggregator outage, metrics show it, a wedged agent turns it red`, async () => {
    await forwardCase(agent, "live", {}, async ({ agg, app, run, sink }) => {
      await started(run);
      const live = new Liveness(run);
      try {
        await app.write("app.log", 10);
        await waitFor("agent up", delivered(app, sink), 20_000, run);
        await agg.down();
        const t0 = performance.now();
        while (performance.now() - t0 < 62_000) {
          await app.write("app.log", 10);
          run.sample();
          await sleep(1000);
        }
        const res = await fetch(`http://127.0.0.1:${run.port}${METRICS_PATH[agent]}`);
        const metrics = await res.text();
        const during = outageFigures(agent, metrics);
        assert.ok(during.retries > 0, `no retries in the metrics during the outage:\n${metrics}`);
        assert.ok(
          during.waiting > 0,
          `nothing waiting in the metrics during the outage:\n${metrics}`,
        );
        assert.equal(during.dropped, 0);
        assert.equal(live.failures, 0, "a liveness probe failed during the outage");
        assert.equal(live.redAt, undefined);
        await agg.up();
        await waitFor("the backlog after the outage", delivered(app, sink), 90_000, run);
        run.signalAll("SIGSTOP");
        const wedged = performance.now();
        await waitFor("liveness to turn red", () => live.redAt !== undefined, 60_000);
        const redMs = (live.redAt ?? 0) - wedged;
        run.signalAll("SIGCONT");
        // Period 10 s, timeout 5 s, 3 failures: the third failed probe ends 25-35 s after the wedge.
        assert.ok(redMs >= 24_000 && redMs <= 36_000, `red after ${redMs} ms`);
        const row = tally(
          agent,
          `liveness: green through 62 s outage (${during.retries} retries, ${during.waiting} waiting), red ${
            Math.round(redMs / 1000)
          } s after SIGSTOP`,
          app,
          sink,
          run.peakRssKiB,
          false,
        );
        assert.equal(row.lost, 0);
      } finally {
        await live.stop();
      }
    });
  });
}

/** Retries, what waits (Fluent Bit: chunks, Fluentd: buffered bytes) and drops, from the agent's metrics. */
function outageFigures(agent: AgentName, text: string): {
  retries: number;
  waiting: number;
  dropped: number;
} {
  if (agent === "fluent-bit") {
    const sum = (name: string) =>
      [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "gm"))].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    return {
      retries: sum("fluentbit_output_retries_total"),
      waiting: sum("fluentbit_storage_fs_chunks"),
      dropped: sum("fluentbit_output_dropped_records_total") +
        sum("fluentbit_output_retries_failed_total"),
    };
  }
  const plugins: Array<Record<string, unknown>> = JSON.parse(text).plugins;
  const forward = plugins.find((p) => p.plugin_id === "forward");
  assert.ok(forward, text);
  out(`fluentd forward plugin during the outage: ${JSON.stringify(forward)}`);
  return {
    retries: Number(forward.retry_count),
    waiting: Number(forward.buffer_total_queued_size),
    dropped: 0,
  };
}

Deno.test("figures", () => {
  out("\nagent       | scenario | sent | received | lost | dup | p50 ms | max ms | peak RSS MiB");
  for (const r of rows) {
    out(
      `${r.agent} | ${r.scenario} | ${r.sent} | ${r.received} | ${r.lost} | ${r.duplicates} | ${r.p50Ms} | ${r.maxMs} | ${r.peakRssMiB}`,
    );
  }
  Deno.mkdirSync("tests/agents/results", { recursive: true });
  Deno.writeTextFileSync(`tests/agents/results/latest.json`, JSON.stringify(rows, null, 2) + "\n");
});
