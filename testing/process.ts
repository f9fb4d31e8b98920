/**
 * Process helpers shared by the tests, the e2e harness and the benchmark:
 * run a command to completion, spawn a long-running child with its output in
 * a log file, stop it, find a free port.
 * @module
 */
import { writeAllSync } from "../lib/mod.ts";

/** Repository root (this file is `testing/process.ts`). */
export const REPO_ROOT: string = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Writes one line to stderr (lint forbids console.*). */
export function say(msg: string): void {
  writeAllSync(Deno.stderr, encoder.encode(msg.endsWith("\n") ? msg : `${msg}\n`));
}

/** Writes one line to stdout. */
export function out(msg: string): void {
  writeAllSync(Deno.stdout, encoder.encode(msg.endsWith("\n") ? msg : `${msg}\n`));
}

/** The outcome of a finished command. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion with a bounded time; stdin optional. */
export async function exec(
  cmd: string,
  args: string[],
  opts: { stdin?: string; cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? REPO_ROOT,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  try {
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(encoder.encode(opts.stdin));
      await w.close();
    }
    const out = await child.output();
    const res = {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
    if (out.signal === "SIGKILL") res.stderr += `\n(killed after ${timeoutMs} ms timeout)`;
    return res;
  } finally {
    clearTimeout(timer);
  }
}

/** Asks the kernel for a free TCP port on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Last `n` lines of a text file, or a note if it cannot be read. */
export function tailFile(path: string, n = 60): string {
  try {
    const lines = Deno.readTextFileSync(path).split("\n");
    if (lines.at(-1) === "") lines.pop();
    return lines.slice(-n).join("\n");
  } catch (err) {
    return `(cannot read ${path}: ${err})`;
  }
}

/** A long-running child whose stdout and stderr are appended to a log file. */
export interface Proc {
  name: string;
  child: Deno.ChildProcess;
  logPath: string;
  /** True once the process has exited. */
  exited: () => boolean;
  status: Promise<Deno.CommandStatus>;
  /** Resolves when both output streams have been fully written to the log. */
  drained: Promise<void>;
}

/**
 * Spawns `cmd`, draining stdout/stderr into `logPath` (append mode, one handle per stream),
 * so the child never blocks on a full pipe. `onStdout` additionally sees stdout text.
 */
export function spawnLogged(
  name: string,
  cmd: string,
  args: string[],
  logPath: string,
  opts: { cwd?: string; env?: Record<string, string>; onStdout?: (text: string) => void } = {},
): Proc {
  const child = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd ?? REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env ? { env: opts.env } : {}),
  }).spawn();
  const sink = async (stream: ReadableStream<Uint8Array>, onText?: (t: string) => void) => {
    const file = await Deno.open(logPath, { write: true, create: true, append: true });
    const dec = new TextDecoder();
    try {
      for await (const chunk of stream) {
        let off = 0;
        while (off < chunk.length) off += await file.write(chunk.subarray(off));
        onText?.(dec.decode(chunk, { stream: true }));
      }
    } catch {
      /* stream torn down at exit */
    } finally {
      file.close();
    }
  };
  let done = false;
  const status = child.status.then((s) => {
    done = true;
    return s;
  });
  const drained = Promise.all([sink(child.stdout, opts.onStdout), sink(child.stderr)]).then(
    () => {},
  );
  return { name, child, logPath, exited: () => done, status, drained };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
export async function terminate(p: Proc, graceMs = 5_000): Promise<Deno.CommandStatus> {
  if (!p.exited()) {
    try {
      p.child.kill("SIGTERM");
    } catch { /* already gone */ }
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), graceMs));
  const first = await Promise.race([p.status, timeout]);
  clearTimeout(timer);
  if (first === "timeout") {
    try {
      p.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
  const s = await p.status;
  await p.drained;
  return s;
}

/**
 * Spawns `cmd` with stdout and stderr redirected by the shell straight into
 * `logPath` and `logPath.err`: no pipe through this process, so a child that
 * logs a line per request under load never waits on (or costs CPU in) its parent.
 */
export function spawnToFile(
  name: string,
  cmd: string,
  args: string[],
  logPath: string,
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Proc {
  const child = new Deno.Command("bash", {
    args: ["-c", 'exec "$@" >"$SPAWN_LOG" 2>"$SPAWN_LOG.err"', "bash", cmd, ...args],
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...opts.env, SPAWN_LOG: logPath },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let done = false;
  const status = child.status.then((s) => {
    done = true;
    return s;
  });
  return { name, child, logPath, exited: () => done, status, drained: status.then(() => {}) };
}

/** Resident memory of a process in KiB: now (VmRSS) and its peak so far (VmHWM). */
export async function memoryKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  // Deno refuses to read /proc/<pid>/ without --allow-all; cat may.
  const status = (await exec("cat", [`/proc/${pid}/status`])).stdout;
  const kib = (k: string) =>
    Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kib("VmRSS"), hwm: kib("VmHWM") };
}
