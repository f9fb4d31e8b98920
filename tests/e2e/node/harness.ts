/**
 * A one-node Kubernetes cluster for end-to-end tests: the control plane of
 * `../control_plane/harness.ts` (with the flags a kubelet needs) plus containerd, runc, the CNI
 * bridge, kube-scheduler and a real kubelet. Binaries come from `build.sh` (cached beside the
 * control plane's), images from `images.ts` (imported with `ctr`). Started once per test file,
 * under an exclusive lock so two runs on one host never overlap; `stop()` removes every pod,
 * process, mount, cgroup, chain, link and sysctl change it made (checked by `host_state.ts`).
 * @module
 */
import {
  type ControlPlane,
  exec,
  freePort,
  type Proc,
  REPO_ROOT,
  say,
  spawnLogged,
  startControlPlane,
  terminate,
} from "../control_plane/harness.ts";
import {
  diff,
  HARD_CODED_DIRS,
  type HostState,
  mountPoints,
  processesMentioning,
  restore,
  snapshot,
} from "./host_state.ts";
import {
  busyboxImage,
  type ImageArchive,
  PAUSE_REF,
  pauseImage,
  standInAgentImage,
  webhookImage,
} from "./images.ts";

/** The node's name. */
export const NODE_NAME = "e2e-node";
/** The pods' bridge and CIDR: neither cni0/10.244.0.0/16 nor the control plane's 10.0.0.0/24. */
export const BRIDGE = "sie2e0";
export const POD_CIDR = "10.246.0.0/24";

/** Host tools the node needs beside the Go binaries (Debian: runc, containernetworking-plugins, ...). */
const HOST_TOOLS: Record<string, string> = {
  "/usr/sbin/runc": "runc",
  "/usr/lib/cni/bridge": "containernetworking-plugins",
  "/usr/lib/cni/host-local": "containernetworking-plugins",
  "/usr/lib/cni/loopback": "containernetworking-plugins",
  "/bin/busybox": "busybox-static",
  "/usr/sbin/iptables": "iptables",
  "/usr/sbin/ip": "iproute2",
  "/usr/bin/wrk": "wrk", // the large-pod storm on the webhook Pod
};

/** What is missing on this host for the node to run (Debian package names); empty when nothing. */
export function missingOnHost(): string[] {
  const missing = new Set<string>();
  for (const [path, pkg] of Object.entries(HOST_TOOLS)) {
    try {
      Deno.statSync(path);
    } catch {
      missing.add(pkg);
    }
  }
  if (Deno.uid?.() !== 0) missing.add("root (the kubelet needs it)");
  return [...missing];
}

/** A running one-node cluster. */
export interface Node {
  cp: ControlPlane;
  /** The node's state dir (containerd, kubelet, logs). */
  dir: string;
  binDir: string;
  /** Milliseconds from nothing to a Ready node, builds and image archives included. */
  startMs: number;
  /** `ctr -n k8s.io` against this node's containerd. */
  ctr(args: string[]): Promise<string>;
  /** Imports an OCI archive (if its reference is not there yet). */
  importImage(image: ImageArchive): Promise<void>;
  /** Stops everything and restores the host; returns what still differs from before the start. */
  stop(): Promise<string[]>;
  /** Synchronous SIGKILL of the node's processes (for `unload`); no host restore. */
  killSync(): void;
}

function lockPath(): string {
  const override = Deno.env.get("SIDECAR_E2E_NODE_LOCK");
  if (override) return override;
  try {
    if (Deno.statSync("/work").isDirectory) return "/work/realnode.lock";
  } catch { /* no /work */ }
  return "/tmp/sidecar-injector-e2e-node.lock";
}

async function nodeBinaries(): Promise<string> {
  const child = new Deno.Command("bash", {
    args: [`${REPO_ROOT}/tests/e2e/node/build.sh`],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  if (out.code !== 0) throw new Error(`e2e node: build.sh failed (${out.code}): ${stdout}`);
  return stdout.split("\n").at(-1) ?? "";
}

function nodeIp(): Promise<string> {
  return exec("ip", ["-4", "route", "get", "1.1.1.1"]).then((r) => {
    const ip = r.stdout.match(/ src (\d+\.\d+\.\d+\.\d+)/)?.[1];
    if (!ip) throw new Error(`e2e node: no IPv4 default route (${r.stdout}${r.stderr})`);
    return ip;
  });
}

/** Starts the node; see the module doc. Agent images are imported under `agentRefs`. */
export async function startNode(agentRefs: string[]): Promise<Node> {
  const t0 = performance.now();
  const lock = await Deno.open(lockPath(), { create: true, write: true });
  say(`e2e node: waiting for the node lock ${lockPath()}`);
  await lock.lock(true);
  await sweepStaleRuns();
  const procs: Proc[] = [];
  let cp: ControlPlane | undefined;
  let before: HostState | undefined;
  await Deno.mkdir(`${REPO_ROOT}/.tmp`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${REPO_ROOT}/.tmp`, prefix: "node-" });
  const sock = `${dir}/containerd/containerd.sock`;
  let binDir = "";
  const ctr = async (args: string[]) => {
    const r = await exec(`${binDir}/ctr`, ["-a", sock, "-n", "k8s.io", ...args], {
      timeoutMs: 300_000,
    });
    if (r.code !== 0) throw new Error(`ctr ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };

  const killSync = () => {
    for (const p of [...procs].reverse()) {
      if (!p.exited()) {
        try {
          Deno.kill(p.child.pid, "SIGKILL");
        } catch { /* gone */ }
      }
    }
    cp?.killSync();
  };

  const stop = async (): Promise<string[]> => {
    const kubelet = procs.find((p) => p.name === "kubelet");
    if (kubelet) await terminate(kubelet, 15_000);
    // Pods: kill and delete every container task, then the containers.
    if (procs.find((p) => p.name === "containerd" && !p.exited())) {
      const ids = async (what: string) =>
        (await ctr([what, "ls", "-q"]).catch(() => "")).split("\n").filter((x) => x);
      for (const t of await ids("tasks")) {
        await ctr(["tasks", "kill", "-s", "SIGKILL", t]).catch(() => {});
      }
      await new Promise((r) => setTimeout(r, 500));
      for (const t of await ids("tasks")) await ctr(["tasks", "delete", "-f", t]).catch(() => {});
      for (const c of await ids("containers")) {
        await ctr(["containers", "delete", c]).catch(() => {});
      }
    }
    for (const p of [...procs].reverse()) await terminate(p, 15_000);
    await cp?.stop();
    await cleanHost(dir, before);
    const left = before ? diff(before, await snapshot(dir)) : [];
    lock.close(); // releases the lock
    return left;
  };

  try {
    const missing = missingOnHost();
    if (missing.length > 0) {
      throw new Error(`e2e node: missing on this host: ${missing.join(", ")}`);
    }
    const ip = await nodeIp();
    binDir = await nodeBinaries();
    before = await snapshot(dir);
    // For the sweep of a run that ends without stop() (killed, or its teardown test filtered out).
    await Deno.writeTextFile(`${dir}/${BEFORE_FILE}`, JSON.stringify(before));
    // Images build while the control plane starts.
    const images = Promise.all([
      pauseImage(binDir),
      busyboxImage(),
      webhookImage(),
      ...agentRefs.map((ref) => standInAgentImage(ref)),
    ]);
    images.catch(() => {});
    cp = await startControlPlane({
      apiserverArgs: (cpDir) => [
        // Webhooks are called at the endpoint's pod IP: there is no kube-proxy.
        "--enable-aggregator-routing=true",
        "--kubelet-preferred-address-types=InternalIP",
        `--kubelet-client-certificate=${cpDir}/admin.crt`,
        `--kubelet-client-key=${cpDir}/admin.key`,
      ],
      controllers: [
        "endpoints-controller",
        "endpointslice-controller",
        "root-ca-certificate-publisher-controller",
        "node-lifecycle-controller",
        "ttl-after-finished-controller",
      ],
    });
    const cpDir = cp.dir;

    await Deno.mkdir(`${dir}/cni`, { recursive: true });
    await Deno.mkdir(`${dir}/containerd`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/cni/10-e2e.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "sidecar-injector-e2e",
        plugins: [{
          type: "bridge",
          bridge: BRIDGE,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            dataDir: `${dir}/cni-ipam`,
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        }],
      }),
    );
    await Deno.writeTextFile(
      `${dir}/containerd.toml`,
      [
        "version = 3",
        `root = "${dir}/containerd/root"`,
        `state = "${dir}/containerd/state"`,
        'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", ' +
        '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", ' +
        '"io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp", ' +
        '"io.containerd.internal.v1.tracing"]',
        "[grpc]",
        `  address = "${sock}"`,
        "[ttrpc]",
        `  address = "${sock}.ttrpc"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${dir}/containerd/opt"`,
        '[plugins."io.containerd.cri.v1.images"]',
        '  snapshotter = "overlayfs"',
        '  [plugins."io.containerd.cri.v1.images".pinned_images]',
        `    sandbox = "${PAUSE_REF}"`,
        '[plugins."io.containerd.cri.v1.runtime"]',
        "  enable_selinux = false",
        "  disable_apparmor = true",
        // Root here lacks CAP_SYS_RESOURCE: runc cannot write the sandbox's negative oom_score_adj.
        "  restrict_oom_score_adj = true",
        "  netns_mounts_under_state_dir = true",
        '  [plugins."io.containerd.cri.v1.runtime".containerd]',
        '    default_runtime_name = "runc"',
        '    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]',
        '      runtime_type = "io.containerd.runc.v2"',
        '      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]',
        '        BinaryName = "/usr/sbin/runc"',
        `        Root = "${dir}/runc"`,
        "        SystemdCgroup = false",
        '  [plugins."io.containerd.cri.v1.runtime".cni]',
        '    bin_dirs = ["/usr/lib/cni"]',
        `    conf_dir = "${dir}/cni"`,
        "    max_conf_num = 1",
        "",
      ].join("\n"),
    );
    const log = (name: string) => {
      const p = `${dir}/${name}.log`;
      cp!.addLog(name, p);
      return p;
    };
    procs.push(spawnLogged(
      "containerd",
      `${binDir}/containerd`,
      ["--config", `${dir}/containerd.toml`, "--log-level", "warn"],
      log("containerd"),
      { env: { PATH: `${binDir}:${Deno.env.get("PATH")}` } },
    ));
    await cp.waitFor("containerd", async () => {
      await ctr(["version"]);
      return true;
    }, 60_000);

    const node: Node = {
      cp,
      dir,
      binDir,
      startMs: 0,
      ctr,
      importImage: async (image) => {
        const idx = JSON.parse(
          (await exec("tar", ["-xOf", image.path, "index.json"])).stdout,
        );
        const digest = idx.manifests[0].digest;
        const have = (await ctr(["images", "ls"])).split("\n")
          .some((l) => l.split(/\s+/)[0] === image.ref && l.includes(digest));
        if (!have) await ctr(["images", "import", "--all-platforms", image.path]);
      },
      stop,
      killSync,
    };
    const tImages = performance.now();
    for (const img of await images) await node.importImage(img);
    say(`e2e node: images ready and imported in ${Math.round(performance.now() - tImages)} ms`);

    procs.push(spawnLogged("kube-scheduler", `${binDir}/kube-scheduler`, [
      `--kubeconfig=${cp.kubeconfig}`,
      `--authentication-kubeconfig=${cp.kubeconfig}`,
      `--authorization-kubeconfig=${cp.kubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${freePort()}`,
      "--leader-elect=false",
      "--profiling=false",
    ], log("kube-scheduler")));

    await Deno.writeTextFile(
      `${dir}/kubelet.yaml`,
      [
        "apiVersion: kubelet.config.k8s.io/v1beta1",
        "kind: KubeletConfiguration",
        "failCgroupV1: false", // the host is cgroup v1
        "cgroupDriver: cgroupfs", // no systemd
        `containerRuntimeEndpoint: unix://${sock}`,
        "address: 0.0.0.0",
        `port: ${freePort()}`,
        "healthzBindAddress: 127.0.0.1",
        `healthzPort: ${freePort()}`,
        "readOnlyPort: 0",
        "authentication:",
        "  anonymous: {enabled: false}",
        "  webhook: {enabled: true}",
        `  x509: {clientCAFile: ${cpDir}/ca.crt}`,
        "authorization: {mode: Webhook}",
        `podLogsDir: ${dir}/pod-logs`,
        `volumePluginDir: ${dir}/kubelet/volume-plugins`,
        "resolvConf: /etc/resolv.conf",
        "clusterDomain: cluster.local",
        "failSwapOn: false",
        "protectKernelDefaults: false", // it writes sysctls; stop() restores them
        "imageGCHighThresholdPercent: 100", // never GC: images cannot be pulled again
        "imageGCLowThresholdPercent: 99",
        'evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", ' +
        'nodefs.inodesFree: "1%", imagefs.inodesFree: "1%"}',
        "evictionPressureTransitionPeriod: 10s",
        "volumeStatsAggPeriod: 5s", // emptyDir sizeLimit eviction within ~10 s, not minutes
        "nodeStatusReportFrequency: 10s",
        "syncFrequency: 10s",
        "serializeImagePulls: false",
        "maxPods: 60",
        "",
      ].join("\n"),
    );
    const kubeletStart = new Date();
    procs.push(spawnLogged("kubelet", `${binDir}/kubelet`, [
      `--config=${dir}/kubelet.yaml`,
      `--kubeconfig=${cp.kubeconfig}`,
      `--root-dir=${dir}/kubelet`,
      `--cert-dir=${dir}/kubelet/pki`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${ip}`,
      "--v=1",
    ], log("kubelet")));
    await cp.waitFor(
      `node ${NODE_NAME} Ready`,
      async () => {
        const n = await cp!.kubectlJson(["get", "node", NODE_NAME, "-o", "json"]);
        // deno-lint-ignore no-explicit-any
        const ready = n.status?.conditions?.find((c: any) => c.type === "Ready");
        return ready?.status === "True" && new Date(ready.lastHeartbeatTime) >= kubeletStart &&
          !(n.spec.taints ?? []).some((t: { key: string }) =>
            t.key === "node.kubernetes.io/not-ready"
          );
      },
      180_000,
      500,
    );
    node.startMs = Math.round(performance.now() - t0);
    say(`e2e node: ${NODE_NAME} Ready in ${node.startMs} ms (state in ${dir})`);
    return node;
  } catch (err) {
    const left = await stop().catch((e) => [`stop failed: ${e}`]);
    if (left.length > 0) {
      say(`e2e node: after a failed start the host differs:\n${left.join("\n")}`);
    }
    throw err;
  }
}

/** The host's state before a run, kept in its state dir. */
const BEFORE_FILE = "host-before.json";

/**
 * Everything a node left on the host, below and around its state dir `dir`, removed once its
 * own processes are stopped: shims and containers (they name the dir), whatever still runs in
 * a kubepods cgroup, mounts below the dir, the cgroups, the network (`before` says what was
 * there before the run), and the dir itself.
 */
async function cleanHost(dir: string, before: HostState | undefined): Promise<void> {
  for (const line of await processesMentioning(dir)) {
    const pid = Number(line.split(" ")[0]);
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  await killCgroupProcs();
  await new Promise((r) => setTimeout(r, 300));
  // Mounts below the state dir, deepest first (volumes, rootfs overlays, netns, shm).
  for (let i = 0; i < 3; i++) {
    const mounts = (await mountPoints()).filter((m) => m.startsWith(`${dir}/`)).sort().reverse();
    if (mounts.length === 0) break;
    for (const m of [...new Set(mounts)]) {
      const r = await exec("umount", [m]);
      if (r.code !== 0) await exec("umount", ["-l", m]);
    }
  }
  await removeCgroups();
  if (before) await restore(before, BRIDGE);
  await Deno.remove(dir, { recursive: true }).catch((e) => say(`e2e node: rm ${dir}: ${e}`));
}

/**
 * Under the lock no other node runs, so a node state dir still on disk or still named by a
 * process belongs to a run that ended without `stop()`: a test file killed, or run with a
 * filter that left out its teardown test (its `unload` handler can only kill the node's own
 * processes, not the containers, mounts and network). Cleaned here, before this run's snapshot.
 */
async function sweepStaleRuns(): Promise<void> {
  const dirs = new Set<string>();
  for (const e of await Array.fromAsync(Deno.readDir(`${REPO_ROOT}/.tmp`)).catch(() => [])) {
    if (e.isDirectory && e.name.startsWith("node-")) dirs.add(`${REPO_ROOT}/.tmp/${e.name}`);
  }
  // Other checkouts share the lock: their dirs are found through the processes naming them.
  for (const line of await processesMentioning("/.tmp/node-")) {
    const m = line.match(/(\/\S+\/\.tmp\/node-[A-Za-z0-9_]+)/);
    if (m) dirs.add(m[1]!);
  }
  for (const dir of dirs) {
    const before = await Deno.readTextFile(`${dir}/${BEFORE_FILE}`).then(
      (t) => JSON.parse(t) as HostState,
      // A run without the file (older harness): the host now, less what a node adds.
      async () => withoutNode(await snapshot("\0")),
    );
    say(`e2e node: cleaning up after an earlier run that did not stop (${dir})`);
    await cleanHost(dir, before);
  }
}

/** `now` without a node's chains (kubelet's KUBE-*, the bridge plugin's CNI-*), bridge, veths and dirs. */
function withoutNode(now: HostState): HostState {
  return {
    ...now,
    chains: now.chains.filter((c) => !/:(KUBE|CNI)-/.test(c)),
    links: now.links.filter((l) => l !== BRIDGE && !l.startsWith("veth")),
    dirs: now.dirs.filter((d) => !HARD_CODED_DIRS.includes(d)),
  };
}

async function cgroupProcFiles(): Promise<string[]> {
  const r = await exec("find", [
    "/sys/fs/cgroup",
    "-maxdepth",
    "6",
    "-path",
    "*kubepods*",
    "-name",
    "cgroup.procs",
  ], { timeoutMs: 60_000 });
  return r.stdout.split("\n").filter((x) => x);
}

/** SIGKILL of whatever still runs in a kubepods cgroup (containers whose shim is gone). */
async function killCgroupProcs(): Promise<void> {
  for (const f of await cgroupProcFiles()) {
    const pids = (await exec("cat", [f])).stdout.split("\n").filter((x) => x);
    for (const p of pids) {
      try {
        Deno.kill(Number(p), "SIGKILL");
      } catch { /* gone */ }
    }
  }
}

/** The kubepods cgroups the kubelet and runc made, deepest first. */
async function removeCgroups(): Promise<void> {
  const r = await exec("bash", [
    "-c",
    'for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/unified/; do [ -d "$h/kubepods" ] && ' +
    'find "$h"kubepods -depth -type d -exec rmdir {} \\; 2>/dev/null; done; true',
  ]);
  if (r.code !== 0) say(`e2e node: cgroup cleanup: ${r.stderr}`);
}
