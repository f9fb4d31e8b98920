/**
 * Runs the REAL webhook server (`main.ts serve`) from the repo as a child process,
 * with certificates from the repo's own `k8s/gen-certs.sh`.
 * @module
 */
import { serveArgs, serveEnv } from "../../../testing/serve_command.ts";
import { exec, type Proc, REPO_ROOT, say, spawnLogged, tailFile, terminate } from "./harness.ts";

/** TLS material written by `k8s/gen-certs.sh`. */
export interface WebhookCerts {
  dir: string;
  caCrt: string;
  tlsCrt: string;
  tlsKey: string;
  /** PEM text of the CA, for `caBundle` and for clients. */
  caPem: string;
}

/**
 * Generates webhook certs with `bash k8s/gen-certs.sh --out DIR --san IP:127.0.0.1`
 * (plus `extraArgs`, such as `--days 10`).
 * `dir` must be under `<repo>/.tmp/`: the `serve` permission set reads nothing else there.
 */
export async function genWebhookCerts(
  dir: string,
  extraSans: string[] = [],
  extraArgs: string[] = [],
): Promise<WebhookCerts> {
  if (!dir.startsWith(`${REPO_ROOT}/.tmp/`)) {
    throw new Error(`webhook certs must live under ${REPO_ROOT}/.tmp/`);
  }
  const r = await exec("bash", [
    "k8s/gen-certs.sh",
    "--out",
    dir,
    "--san",
    "IP:127.0.0.1",
    ...extraSans.flatMap((san) => ["--san", san]),
    ...extraArgs,
  ], {
    timeoutMs: 60_000,
  });
  if (r.code !== 0) throw new Error(`k8s/gen-certs.sh failed (${r.code}): ${r.stderr}`);
  return {
    dir,
    caCrt: `${dir}/ca.crt`,
    tlsCrt: `${dir}/tls.crt`,
    tlsKey: `${dir}/tls.key`,
    caPem: await Deno.readTextFile(`${dir}/ca.crt`),
  };
}

/** Options of {@link startWebhook}. */
export interface WebhookOptions {
  certs: WebhookCerts;
  /** Log file path (any directory); stdout and stderr are appended to it. */
  logPath: string;
  /** `--host`; default 127.0.0.1. */
  host?: string;
  /** Optional `--config FILE`; must be under `<repo>/.tmp/`. */
  configFile?: string;
  /** `--drain-delay-ms`; default 200. */
  drainDelayMs?: number;
  /** Bound on reaching "listening" and `/readyz` 200. */
  timeoutMs?: number;
  /**
   * Wait until `/readyz` answers 200 (default). With `false`, returns at once
   * with `port` 0: for a server expected to fail to start.
   */
  waitReady?: boolean;
  /** More `serve` flags, e.g. `["--max-connections", "2"]`. */
  extraArgs?: string[];
}

/** A running webhook process. */
export interface Webhook {
  port: number;
  pid: number;
  logPath: string;
  proc: Proc;
  /** Everything the process wrote to stdout so far. */
  logText(): string;
  /** The log file: stdout and stderr (complete once `proc.drained` resolved). */
  output(): string;
  /** `admission` log lines (parsed JSON) so far. */
  admissions(): Array<Record<string, unknown>>;
  /** SIGTERM, wait for exit (SIGKILL after 5 s); returns the exit status. */
  stop(): Promise<Deno.CommandStatus>;
  /** SIGKILL, synchronous. */
  kill(): void;
  /** SIGKILL if still running; resolves once it has exited and its output is drained. */
  close(): Promise<void>;
}

/**
 * Starts `main.ts serve ...` as `deno task serve` runs it and (unless
 * `waitReady` is false) waits until `/readyz` answers 200.
 */
export async function startWebhook(opts: WebhookOptions): Promise<Webhook> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let stdout = "";
  let port: number | undefined;
  let pending = "";
  const onStdout = (text: string) => {
    stdout += text;
    if (port !== undefined) return;
    pending += text;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      try {
        const j = JSON.parse(line);
        if (j.msg === "listening" && typeof j.port === "number") port = j.port;
      } catch { /* not JSON */ }
    }
  };
  const args = serveArgs([
    "--host",
    opts.host ?? "127.0.0.1",
    "--port",
    "0",
    "--cert",
    opts.certs.tlsCrt,
    "--key",
    opts.certs.tlsKey,
    "--drain-delay-ms",
    String(opts.drainDelayMs ?? 200),
    ...(opts.configFile ? ["--config", opts.configFile] : []),
    ...(opts.extraArgs ?? []),
  ]);
  const proc = spawnLogged("webhook", Deno.execPath(), args, opts.logPath, {
    cwd: REPO_ROOT,
    env: serveEnv({ POD_NAMESPACE: "sidecar-injector", NO_COLOR: "1" }),
    onStdout,
  });
  const kill = () => {
    if (!proc.exited()) {
      try {
        Deno.kill(proc.child.pid, "SIGKILL");
      } catch { /* gone */ }
    }
  };
  const webhook = (port: number): Webhook => ({
    port,
    pid: proc.child.pid,
    logPath: opts.logPath,
    proc,
    logText: () => stdout,
    output: () => {
      try {
        return Deno.readTextFileSync(opts.logPath);
      } catch {
        return "";
      }
    },
    admissions: () =>
      stdout.split("\n").flatMap((line) => {
        try {
          const j = JSON.parse(line);
          return j && j.msg === "admission" ? [j] : [];
        } catch {
          return [];
        }
      }),
    stop: () => terminate(proc),
    kill,
    close: async () => {
      kill();
      await proc.status;
      await proc.drained;
    },
  });
  if (opts.waitReady === false) return webhook(0);
  const client = Deno.createHttpClient({ caCerts: [opts.certs.caPem] });
  const deadline = performance.now() + timeoutMs;
  const fail = async (why: string): Promise<never> => {
    say(
      `e2e: webhook: ${why}\n----- webhook log (${opts.logPath}) -----\n${
        tailFile(opts.logPath, 60)
      }`,
    );
    await terminate(proc);
    throw new Error(`e2e: webhook: ${why}`);
  };
  try {
    let ready = false;
    while (!ready) {
      if (proc.exited()) {
        const s = await proc.status;
        await proc.drained;
        await fail(`process exited (code ${s.code}) before becoming ready`);
      }
      if (performance.now() > deadline) {
        await fail(`not ready within ${timeoutMs} ms (port ${port ?? "not yet logged"})`);
      }
      if (port !== undefined) {
        try {
          const res = await fetch(`https://127.0.0.1:${port}/readyz`, {
            client,
            signal: AbortSignal.timeout(2_000),
          });
          await res.body?.cancel();
          ready = res.status === 200;
        } catch { /* not up yet */ }
      }
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.close();
  }
  return webhook(port as number);
}

/** The serial of the certificate the server at `port` presents to a new connection. */
export async function servedSerial(port: number, caFile: string): Promise<string> {
  const r = await exec("bash", [
    "-c",
    `openssl s_client -connect 127.0.0.1:${port} -CAfile ${caFile} -verify_return_error </dev/null 2>/dev/null | openssl x509 -noout -serial`,
  ]);
  if (r.code !== 0) throw new Error(`no certificate from :${port}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The serial of the certificate in `certFile`. */
export async function fileSerial(certFile: string): Promise<string> {
  return (await exec("openssl", ["x509", "-noout", "-serial", "-in", certFile])).stdout.trim();
}
