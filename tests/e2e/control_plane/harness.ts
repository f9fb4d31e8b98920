/**
 * A real Kubernetes control plane for end-to-end tests: etcd, kube-apiserver and
 * kube-controller-manager on 127.0.0.1 (free ports), with kubectl pointed at them.
 * Binaries come from `build.sh` (cached outside the repo); everything else (certs,
 * etcd data, logs, kubeconfig) lives in a temp dir under `<repo>/.tmp/` that
 * `stop()` removes.
 * @module
 */

import {
  exec,
  type ExecResult,
  freePort,
  type Proc,
  REPO_ROOT,
  say,
  spawnLogged,
  tailFile,
  terminate,
} from "../../../testing/process.ts";

const decoder = new TextDecoder();

export {
  exec,
  type ExecResult,
  freePort,
  type Proc,
  REPO_ROOT,
  say,
  spawnLogged,
  tailFile,
  terminate,
};

/** A running control plane. */
export interface ControlPlane {
  /** Temp dir holding certs, data, logs and the kubeconfig; removed by `stop()`. */
  dir: string;
  binDir: string;
  kubeconfig: string;
  /** `https://127.0.0.1:PORT` of kube-apiserver. */
  server: string;
  /** Milliseconds `startControlPlane()` took. */
  startMs: number;
  /** Runs kubectl against this control plane. */
  kubectl(args: string[], opts?: { stdin?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** Runs kubectl, fails unless exit code 0, parses stdout as JSON. */
  // deno-lint-ignore no-explicit-any
  kubectlJson<T = any>(args: string[], opts?: { stdin?: string }): Promise<T>;
  /** kube-apiserver `/metrics` in Prometheus text format. */
  metrics(): Promise<string>;
  /** Adds a log (e.g. the webhook's) to the ones printed on a timeout. */
  addLog(name: string, path: string): void;
  /** The last `lines` lines of each component's log. */
  logs(lines?: number): string;
  /** Polls `check` until it returns a value other than undefined/false; on timeout prints logs and throws. */
  waitFor<T>(
    what: string,
    check: () => Promise<T | undefined | false>,
    timeoutMs?: number,
    intervalMs?: number,
  ): Promise<T>;
  /** Stops every process (SIGTERM, then SIGKILL after 5 s) and removes the temp dir. */
  stop(): Promise<void>;
  /** Synchronous SIGKILL of every process and removal of the temp dir (for `unload`). */
  killSync(): void;
}

/** Runs `build.sh` and returns the directory of the binaries. */
export async function ensureBinaries(): Promise<string> {
  const script = `${REPO_ROOT}/tests/e2e/control_plane/build.sh`;
  say(
    "e2e: ensuring control-plane binaries with tests/e2e/control_plane/build.sh " +
      "(instant when cached; the FIRST build compiles kube-apiserver, kube-controller-manager, kubectl " +
      "and etcd from Go modules and takes 12-25 min)",
  );
  const child = new Deno.Command("bash", {
    args: [script],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit", // build progress goes straight to the terminal
  }).spawn();
  const out = await child.output();
  const stdout = decoder.decode(out.stdout).trim();
  if (out.code === 3) {
    throw new Error(
      "e2e: Go is not installed (build.sh exit 3). Install Go (>= 1.26; build.sh sets GOTOOLCHAIN) " +
        "so tests/e2e/control_plane/build.sh can build the control plane, then re-run the e2e tests.",
    );
  }
  if (out.code !== 0) {
    throw new Error(
      `e2e: build.sh failed with exit code ${out.code}; see its output above. stdout: ${stdout}`,
    );
  }
  const bin = stdout.split("\n").at(-1) ?? "";
  for (const b of ["etcd", "kube-apiserver", "kube-controller-manager", "kubectl"]) {
    try {
      Deno.statSync(`${bin}/${b}`);
    } catch {
      throw new Error(`e2e: build.sh printed ${bin} but ${b} is not there`);
    }
  }
  return bin;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const r = await exec("openssl", args, { cwd: dir, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
}

/** CA, apiserver serving cert, admin client cert and the service-account RSA key pair. */
async function makeCerts(dir: string): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    [
      "[serving]",
      "basicConstraints = critical, CA:FALSE",
      "keyUsage = critical, digitalSignature, keyEncipherment",
      "extendedKeyUsage = serverAuth",
      "subjectAltName = IP:127.0.0.1, IP:10.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default.svc",
      "[client]",
      "basicConstraints = critical, CA:FALSE",
      "keyUsage = critical, digitalSignature, keyEncipherment",
      "extendedKeyUsage = clientAuth",
      "",
    ].join("\n"),
  );
  const ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
  await Promise.all([
    openssl(dir, ["genpkey", ...ec, "-out", "ca.key"]),
    openssl(dir, ["genpkey", ...ec, "-out", "apiserver.key"]),
    openssl(dir, ["genpkey", ...ec, "-out", "admin.key"]),
    openssl(dir, [
      "genpkey",
      "-algorithm",
      "RSA",
      "-pkeyopt",
      "rsa_keygen_bits:2048",
      "-out",
      "sa.key",
    ]),
  ]);
  await Promise.all([
    openssl(dir, [
      "req",
      "-x509",
      "-new",
      "-key",
      "ca.key",
      "-subj",
      "/CN=sidecar-injector-e2e-ca",
      "-days",
      "2",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      "ca.crt",
    ]),
    openssl(dir, [
      "req",
      "-new",
      "-key",
      "apiserver.key",
      "-subj",
      "/CN=kube-apiserver",
      "-out",
      "apiserver.csr",
    ]),
    openssl(dir, [
      "req",
      "-new",
      "-key",
      "admin.key",
      "-subj",
      "/O=system:masters/CN=admin",
      "-out",
      "admin.csr",
    ]),
    openssl(dir, ["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]),
  ]);
  const sign = (name: string, ext: string) =>
    openssl(dir, [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
      "-extensions",
      ext,
      "-out",
      `${name}.crt`,
    ]);
  await sign("apiserver", "serving");
  await sign("admin", "client");
}

/** What a caller (the one-node cluster) adds to the control plane. */
export interface ControlPlaneOptions {
  /** Extra kube-apiserver flags, appended; `args(dir)` gets the temp dir (for cert paths). */
  apiserverArgs?: (dir: string) => string[];
  /** Extra kube-controller-manager controllers, appended to the default list. */
  controllers?: string[];
}

/** Starts etcd, kube-apiserver and kube-controller-manager; see the module doc. */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const t0 = performance.now();
  const binDir = await ensureBinaries();
  const tmpRoot = `${REPO_ROOT}/.tmp`;
  await Deno.mkdir(tmpRoot, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: tmpRoot, prefix: "e2e-cp-" });
  const procs: Proc[] = [];
  const logPaths = new Map<string, string>();
  let stopped = false;

  const logs = (lines = 60) =>
    [...logPaths].map(([name, path]) =>
      `----- ${name} (${path}), last ${lines} lines -----\n${tailFile(path, lines)}`
    )
      .join("\n");
  const killSync = () => {
    for (const p of procs) {
      if (!p.exited()) {
        try {
          Deno.kill(p.child.pid, "SIGKILL");
        } catch { /* gone */ }
      }
    }
    if (!stopped) {
      stopped = true;
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* gone */ }
    }
  };
  const stop = async () => {
    // Reverse start order: controller-manager, apiserver, etcd.
    for (const p of [...procs].reverse()) await terminate(p);
    if (!stopped) {
      stopped = true;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
  const waitFor = async <T>(
    what: string,
    check: () => Promise<T | undefined | false>,
    timeoutMs = 60_000,
    intervalMs = 250,
  ): Promise<T> => {
    const deadline = performance.now() + timeoutMs;
    let lastErr: unknown;
    while (true) {
      const dead = procs.find((p) => p.exited());
      if (dead) {
        const s = await dead.status;
        say(
          `e2e: ${dead.name} exited (code ${s.code}, signal ${s.signal}) while waiting for ${what}\n${logs()}`,
        );
        throw new Error(`e2e: ${dead.name} exited (code ${s.code}) while waiting for ${what}`);
      }
      try {
        const v = await check();
        if (v !== undefined && v !== false) return v;
      } catch (err) {
        lastErr = err;
      }
      if (performance.now() > deadline) {
        say(
          `e2e: timed out after ${timeoutMs} ms waiting for ${what}; last error: ${lastErr}\n${logs()}`,
        );
        throw new Error(
          `e2e: timed out after ${timeoutMs} ms waiting for ${what} (last error: ${lastErr})`,
        );
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  };

  try {
    await makeCerts(dir);
    const etcdPort = freePort();
    const peerPort = freePort();
    const apiPort = freePort();
    const server = `https://127.0.0.1:${apiPort}`;

    const etcdLog = `${dir}/etcd.log`;
    logPaths.set("etcd", etcdLog);
    procs.push(spawnLogged("etcd", `${binDir}/etcd`, [
      "--name=e2e",
      `--data-dir=${dir}/etcd-data`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=e2e=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync",
      "--log-level=warn",
    ], etcdLog));

    const apiLog = `${dir}/kube-apiserver.log`;
    logPaths.set("kube-apiserver", apiLog);
    procs.push(spawnLogged("kube-apiserver", `${binDir}/kube-apiserver`, [
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      "--advertise-address=127.0.0.1",
      "--endpoint-reconciler-type=none",
      `--cert-dir=${dir}/apiserver-certs`,
      `--tls-cert-file=${dir}/apiserver.crt`,
      `--tls-private-key-file=${dir}/apiserver.key`,
      `--client-ca-file=${dir}/ca.crt`,
      "--authorization-mode=RBAC",
      "--service-cluster-ip-range=10.0.0.0/24",
      "--service-account-issuer=https://127.0.0.1",
      `--service-account-key-file=${dir}/sa.pub`,
      `--service-account-signing-key-file=${dir}/sa.key`,
      "--allow-privileged=true",
      "--profiling=false",
      ...(opts.apiserverArgs?.(dir) ?? []),
    ], apiLog));

    const ca = await Deno.readTextFile(`${dir}/ca.crt`);
    const client = Deno.createHttpClient({
      caCerts: [ca],
      cert: await Deno.readTextFile(`${dir}/admin.crt`),
      key: await Deno.readTextFile(`${dir}/admin.key`),
    });
    const get = async (path: string): Promise<{ status: number; text: string }> => {
      const res = await fetch(`${server}${path}`, { client, signal: AbortSignal.timeout(10_000) });
      return { status: res.status, text: await res.text() };
    };
    await waitFor("kube-apiserver /readyz == ok", async () => {
      const r = await get("/readyz");
      return r.status === 200 && r.text.trim() === "ok";
    }, 90_000);

    const kubeconfig = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: e2e",
        "  cluster:",
        `    server: ${server}`,
        `    certificate-authority: ${dir}/ca.crt`,
        "users:",
        "- name: admin",
        "  user:",
        `    client-certificate: ${dir}/admin.crt`,
        `    client-key: ${dir}/admin.key`,
        "contexts:",
        "- name: e2e",
        "  context: {cluster: e2e, user: admin, namespace: default}",
        "current-context: e2e",
        "",
      ].join("\n"),
    );

    const kcmLog = `${dir}/kube-controller-manager.log`;
    logPaths.set("kube-controller-manager", kcmLog);
    procs.push(spawnLogged("kube-controller-manager", `${binDir}/kube-controller-manager`, [
      `--kubeconfig=${kubeconfig}`,
      "--controllers=serviceaccount-controller,deployment-controller,replicaset-controller," +
      "garbage-collector-controller,namespace-controller,job-controller,cronjob-controller" +
      (opts.controllers ?? []).map((c) => `,${c}`).join(""),
      "--leader-elect=false",
      "--secure-port=0",
      `--service-account-private-key-file=${dir}/sa.key`,
      `--root-ca-file=${dir}/ca.crt`,
      "--use-service-account-credentials=false",
      "--kube-api-qps=100",
      "--kube-api-burst=200",
    ], kcmLog));

    const kubectl = (args: string[], opts: { stdin?: string; timeoutMs?: number } = {}) =>
      exec(`${binDir}/kubectl`, [`--kubeconfig=${kubeconfig}`, ...args], {
        timeoutMs: opts.timeoutMs ?? 60_000,
        ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
      });
    const kubectlJson = async (args: string[], opts: { stdin?: string } = {}) => {
      const r = await kubectl(args, opts);
      if (r.code !== 0) {
        throw new Error(`kubectl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
      }
      return JSON.parse(r.stdout);
    };

    await waitFor("ServiceAccount default/default", async () => {
      const r = await kubectl(["get", "serviceaccount", "default", "-n", "default", "-o", "name"]);
      return r.code === 0;
    }, 60_000);

    const startMs = Math.round(performance.now() - t0);
    say(`e2e: control plane up at ${server} in ${startMs} ms (dir ${dir})`);
    return {
      dir,
      binDir,
      kubeconfig,
      server,
      startMs,
      kubectl,
      kubectlJson,
      metrics: async () => {
        const r = await get("/metrics");
        if (r.status !== 200) throw new Error(`GET /metrics: ${r.status} ${r.text.slice(0, 200)}`);
        return r.text;
      },
      addLog: (name, path) => void logPaths.set(name, path),
      logs,
      waitFor,
      stop: async () => {
        client.close();
        await stop();
      },
      killSync,
    };
  } catch (err) {
    await stop().catch(() => killSync());
    throw err;
  }
}
