/**
 * The processes the benchmark measures: the webhook exactly as `deno task
 * serve` runs it, the two floors (`Deno.serve`, `node:https`) and, when Go is
 * installed, a plain Go webhook built from bench/go/. Output goes straight to
 * log files (no pipes through the bench process).
 * @module
 */
import {
  exec,
  freePort,
  type Proc,
  REPO_ROOT,
  spawnToFile,
  terminate,
} from "../testing/process.ts";
import { serveArgs, serveCommand, serveEnv } from "../testing/serve_command.ts";
import { buildRequest, type Http1Connection } from "../testing/http1.ts";
import { connect, exchange, type Target } from "./load.ts";

/** Scratch space (git-ignored). */
export const TMP = `${REPO_ROOT}/.tmp`;
const CERTS = `${TMP}/bench-certs`;
const GO_DIR = `${REPO_ROOT}/bench/go`;
const GO_BIN = `${TMP}/bench-go-webhook`;
const GO_PATHS = ["go", "/usr/local/go/bin/go", `${Deno.env.get("HOME") ?? ""}/go/bin/go`];

/** What the bench can start. */
export type ServerName = "server" | "deno_floor" | "node_floor" | "go";

/** A started process, listening. */
export interface Server {
  name: ServerName;
  proc: Proc;
  target: Target;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Makes a CA and a 127.0.0.1 pair with k8s/gen-certs.sh; returns the CA's PEM. */
export async function makeCerts(): Promise<string> {
  const r = await exec("bash", ["k8s/gen-certs.sh", "--out", CERTS, "--san", "IP:127.0.0.1"]);
  if (r.code !== 0) throw new Error(`gen-certs.sh failed:\n${r.stderr}`);
  return await Deno.readTextFile(`${CERTS}/ca.crt`);
}

const TLS_FLAGS = ["--cert", `${CERTS}/tls.crt`, "--key", `${CERTS}/tls.key`];

/** `main.ts serve` arguments as `deno task serve` has them, plus `extra` runtime flags. */
export function serverArgs(port: number, extra: string[] = []): string[] {
  return serveArgs(
    ["--host", "127.0.0.1", "--port", String(port), ...TLS_FLAGS, "--drain-delay-ms", "0"],
    extra,
  );
}

/** The serve task's runtime flags that are not permissions: a floor runs with the same V8 flags. */
function runtimeFlags(): string[] {
  return serveCommand().runtime.filter((f) => f.startsWith("--v8-flags="));
}

/** Builds the Go webhook; undefined (with the reason) when Go is not installed. */
export async function buildGo(): Promise<{ ok: boolean; note: string }> {
  for (const go of GO_PATHS) {
    const version = await exec(go, ["version"]).catch(() => undefined);
    if (version?.code !== 0) continue;
    const r = await exec(go, ["build", "-o", GO_BIN, "."], {
      cwd: GO_DIR,
      env: { GOTOOLCHAIN: "local", CGO_ENABLED: "0" },
      timeoutMs: 300_000,
    });
    if (r.code !== 0) throw new Error(`go build failed:\n${r.stderr}`);
    return { ok: true, note: version.stdout.trim() };
  }
  return { ok: false, note: "Go not found (go, /usr/local/go/bin/go): the Go webhook is skipped" };
}

function command(name: ServerName, port: number, extra: string[]): [string, string[]] {
  const deno = Deno.execPath();
  const host = ["--host", "127.0.0.1", "--port", String(port)];
  switch (name) {
    case "server":
      return [deno, serverArgs(port, extra)];
    case "deno_floor":
    case "node_floor":
      return [deno, [
        "run",
        "--frozen",
        ...runtimeFlags(),
        "--allow-net=127.0.0.1",
        `--allow-read=${CERTS}`,
        name === "deno_floor" ? "bench/floor.ts" : "bench/floor_node.ts",
        ...TLS_FLAGS,
        ...host,
      ]];
    case "go":
      return [GO_BIN, [
        "-cert",
        `${CERTS}/tls.crt`,
        "-key",
        `${CERTS}/tls.key`,
        ...host.map(
          (a) => a.replace(/^--/, "-"),
        ),
      ]];
  }
}

/** Starts `name` on a free port and waits until `/readyz` answers 200. */
export async function start(
  name: ServerName,
  caCert: string,
  opts: { extra?: string[]; log?: string } = {},
): Promise<Server> {
  const port = freePort();
  const [cmd, args] = command(name, port, opts.extra ?? []);
  const log = opts.log ?? `${TMP}/bench-${name}.log`;
  // The floors get the serve task's environment too: like with like.
  const proc = spawnToFile(name, cmd, args, log, { env: serveEnv() });
  const target: Target = { hostname: "127.0.0.1", port, caCert };
  const deadline = performance.now() + 60_000;
  while (!(await readyOnce(target))) {
    if (proc.exited()) {
      const err = await Deno.readTextFile(`${log}.err`).catch(() => "");
      throw new Error(`${name} exited before it was ready:\n${err}`);
    }
    if (performance.now() > deadline) throw new Error(`${name} not ready within 60 s`);
    await sleep(5);
  }
  return { name, proc, target };
}

/** One `GET /readyz`: true on 200. */
export async function readyOnce(t: Target): Promise<boolean> {
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

/** Spawn to `/readyz` 200 of a fresh server, then its SIGTERM exit. */
export async function coldStart(
  caCert: string,
): Promise<{ ms: number; exitCode: number; stopMs: number }> {
  const port = freePort();
  const t0 = performance.now();
  const proc = spawnToFile("server", Deno.execPath(), serverArgs(port), `${TMP}/bench-cold.log`, {
    env: serveEnv(),
  });
  const t: Target = { hostname: "127.0.0.1", port, caCert };
  let ms = NaN;
  while (performance.now() - t0 < 30_000 && !proc.exited()) {
    if (await readyOnce(t)) {
      ms = performance.now() - t0;
      break;
    }
    await sleep(1);
  }
  const s0 = performance.now();
  const st = await terminate(proc);
  return { ms, exitCode: st.code, stopMs: performance.now() - s0 };
}

/** The Deployment's memory limit in MiB (k8s/deployment.yaml, container `injector`). */
export async function deploymentLimitMiB(): Promise<number> {
  const text = await Deno.readTextFile(`${REPO_ROOT}/k8s/deployment.yaml`);
  const m = /limits:\s*\n\s*memory:\s*(\d+)(Mi|Gi)\b/.exec(text);
  if (!m) throw new Error("no limits.memory in k8s/deployment.yaml");
  return Number(m[1]) * (m[2] === "Gi" ? 1024 : 1);
}

/** `inject()` alone: bench/inject_bench.ts under `deno bench`, mean time per iteration. */
export async function injectBench(): Promise<{ name: string; nsPerIter: number }[]> {
  const r = await exec(Deno.execPath(), [
    "bench",
    "--frozen",
    "-P",
    "bench/inject_bench.ts",
    "--json",
  ]);
  if (r.code !== 0) throw new Error(`deno bench failed:\n${r.stderr}`);
  const doc: { benches: { name: string; results: { ok?: { avg: number } }[] }[] } = JSON.parse(
    r.stdout,
  );
  return doc.benches.map((b) => ({ name: b.name, nsPerIter: b.results[0]?.ok?.avg ?? NaN }));
}

/** CPU time (user + system, all threads) a process has used, in ms; /proc ticks are 10 ms. */
export async function cpuMs(pid: number): Promise<number> {
  const stat = (await exec("cat", [`/proc/${pid}/stat`])).stdout;
  // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
