/**
 * Runs an injected pod's agent container the way a kubelet would, on this
 * machine: the container's own command, args, env and user; its volumes
 * (emptyDir, downward API, Secret) as host directories bound at their
 * mountPaths in a private mount namespace; no capabilities; a read-only root
 * filesystem when the container asks for one. The image is replaced by the
 * agent binaries named in the environment.
 *
 * The pod's network namespace is imitated by a free host port: the variable
 * that hands the agent its metrics port gets one, and the container's named
 * port resolves to it. Probes and the preStop hook run as the kubelet runs
 * them (`probe.ts`).
 * @module
 */
import type { Container, Pod, Volume } from "kubernetes-types/core/v1.d.ts";
import { METRICS_PORT_ENV } from "../../lib/agent/mod.ts";
import { defaultConfig } from "../../lib/config/mod.ts";

/** Paths of real agents on this machine, from `FLUENTD` and `FLUENT_BIT`. */
export interface AgentBinaries {
  fluentd: string;
  fluentBit: string;
}

/** The oldest Fluent Bit the suites accept: older ones lose the line being read when killed. */
export const FLUENT_BIT_MIN = [5, 0, 9] as const;

/**
 * Throws unless the Fluent Bit at `path` is at least {@link FLUENT_BIT_MIN}: before it, the tail
 * database records the bytes read, a partial line included, so every kill costs a line
 * (docs/log-path.md), and the suites' no-loss scenarios would fail for a known reason.
 */
export function assertFluentBitVersion(path: string): void {
  const out = new TextDecoder().decode(
    new Deno.Command(path, { args: ["--version"], stdout: "piped", stderr: "null" }).outputSync()
      .stdout,
  );
  const m = out.match(/Fluent Bit v(\d+)\.(\d+)\.(\d+)/);
  // The first part that differs decides; no match counts as older.
  const order = m
    ? FLUENT_BIT_MIN.map((n, i) => Number(m[i + 1]) - n).find((d) => d !== 0) ?? 0
    : -1;
  if (order < 0) {
    throw new Error(
      `FLUENT_BIT=${path} is ${m?.[0] ?? "not a Fluent Bit"}; the suites need >= ${
        FLUENT_BIT_MIN.join(".")
      } (the default image is ${
        defaultConfig().profiles["fluent-bit"]!.image
      }): older tails lose the line being read when killed`,
    );
  }
}

/** Reads the agents' paths from the environment, or throws saying what to set. */
export function agentBinaries(): AgentBinaries {
  const fluentd = Deno.env.get("FLUENTD");
  const fluentBit = Deno.env.get("FLUENT_BIT");
  const missing = [
    ...(fluentd ? [] : ["FLUENTD (a fluentd >= 1.17 executable)"]),
    ...(fluentBit ? [] : [`FLUENT_BIT (a fluent-bit >= ${FLUENT_BIT_MIN.join(".")} executable)`]),
  ];
  if (missing.length > 0 || !fluentd || !fluentBit) {
    throw new Error(
      `the agent conformance suite runs real agents: set ${missing.join(" and ")}; ` +
        "no package registry ships them, see docs/log-path.md",
    );
  }
  if (Deno.uid() !== 0) {
    throw new Error("the agent conformance suite needs root (unshare --mount, setpriv)");
  }
  assertFluentBitVersion(fluentBit);
  return { fluentd, fluentBit };
}

/** What the image would provide: its PATH, and where its agent binary lives. */
const IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const FLUENT_BIT_IN_IMAGE = "/fluent-bit/bin/fluent-bit";

/** Secrets and ConfigMaps of the pod's namespace: name → key → content. */
export type Objects = Record<string, Record<string, string>>;

/** A pod whose volumes exist as host directories under `root`. */
export class PodSandbox {
  readonly pod: Pod;
  readonly root: string;
  readonly #volumes = new Map<string, string>();

  private constructor(pod: Pod, root: string) {
    this.pod = pod;
    this.root = root;
  }

  /** Creates the pod's volumes, as the kubelet does before starting containers. */
  static async create(pod: Pod, objects: Objects = {}): Promise<PodSandbox> {
    const root = await Deno.makeTempDir({ prefix: "agent-pod-" });
    await Deno.chmod(root, 0o755);
    const box = new PodSandbox(pod, root);
    for (const v of pod.spec?.volumes ?? []) box.#volumes.set(v.name, await box.#make(v, objects));
    return box;
  }

  /** Host directory of volume `name`. */
  dir(name: string): string {
    const d = this.#volumes.get(name);
    if (!d) throw new Error(`pod has no volume ${name}`);
    return d;
  }

  async #make(v: Volume, objects: Objects): Promise<string> {
    const dir = `${this.root}/volumes/${v.name}`;
    await Deno.mkdir(dir, { recursive: true });
    const fsGroup = this.pod.spec?.securityContext?.fsGroup;
    if (v.emptyDir) {
      await Deno.chmod(dir, 0o777);
      if (fsGroup !== undefined) {
        // The kubelet gives the volume to fsGroup, setgid, so new files join the group.
        await Deno.chown(dir, 0, fsGroup);
        await Deno.chmod(dir, 0o2777);
      }
    } else if (v.downwardAPI) {
      for (const item of v.downwardAPI.items ?? []) {
        const m = /^metadata\.annotations\['(.+)'\]$/.exec(item.fieldRef?.fieldPath ?? "");
        const value = m?.[1] ? this.pod.metadata?.annotations?.[m[1]] : undefined;
        if (value === undefined) throw new Error(`cannot project ${item.fieldRef?.fieldPath}`);
        // As the kubelet does, an item's path may name directories, created for it.
        const file = `${dir}/${item.path}`;
        await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
        await Deno.writeTextFile(`${dir}/${item.path}`, value, { mode: 0o644 });
      }
    } else if (v.secret || v.configMap) {
      const name = v.secret?.secretName ?? v.configMap?.name ?? "";
      const data = objects[name];
      if (!data) throw new Error(`no Secret or ConfigMap ${name} given`);
      const items = v.secret?.items ?? v.configMap?.items ??
        Object.keys(data).map((key) => ({ key, path: key }));
      for (const { key, path } of items) {
        await Deno.writeTextFile(`${dir}/${path}`, data[key] ?? "", { mode: 0o644 });
      }
    } else {
      throw new Error(`volume ${v.name}: unsupported type`);
    }
    return dir;
  }

  /** Starts container `name` (init or app container) of the pod. */
  start(name: string, agents: AgentBinaries, extra: { hostsFile?: string } = {}): AgentProcess {
    const spec = this.pod.spec;
    const c = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])].find((c) =>
      c.name === name
    );
    if (!c) throw new Error(`pod has no container ${name}`);
    const port = c.env?.some((e) => e.name === METRICS_PORT_ENV) ? freePort() : undefined;
    return new AgentProcess(this.#script(c, agents, extra.hostsFile, port), this.root, c, port);
  }

  #script(
    c: Container,
    agents: AgentBinaries,
    hostsFile: string | undefined,
    port: number | undefined,
  ): string {
    const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const pod = this.pod.spec?.securityContext;
    const sc = c.securityContext;
    const uid = sc?.runAsUser ?? pod?.runAsUser ?? 0;
    const gid = sc?.runAsGroup ?? pod?.runAsGroup ?? 0;
    if (uid === 0 && (sc?.runAsNonRoot ?? pod?.runAsNonRoot)) {
      throw new Error(`container ${c.name}: runAsNonRoot but runs as root`);
    }
    const groups = [
      ...(pod?.fsGroup !== undefined ? [pod.fsGroup] : []),
      ...(pod?.supplementalGroups ?? []),
    ];
    const binds: Array<[string, string, boolean]> = (c.volumeMounts ?? []).map((m) => [
      this.dir(m.name),
      m.mountPath,
      m.readOnly ?? false,
    ]);
    binds.push([agents.fluentBit, FLUENT_BIT_IN_IMAGE, true]);
    if (hostsFile) binds.push([hostsFile, "/etc/hosts", true]);
    const env: string[] = [`PATH=${this.root}/bin:${IMAGE_PATH}`, "HOME=/"];
    for (const e of c.env ?? []) {
      const field = e.valueFrom?.fieldRef?.fieldPath;
      const value = field === "metadata.name"
        ? this.pod.metadata?.name
        : field === "metadata.namespace"
        ? this.pod.metadata?.namespace
        : field === "spec.nodeName"
        ? this.pod.spec?.nodeName
        : e.name === METRICS_PORT_ENV
        ? String(port)
        : e.value;
      env.push(`${e.name}=${value ?? ""}`);
    }
    const lines = [
      "set -e",
      // The image's `fluentd` on PATH.
      `mkdir -p ${q(`${this.root}/bin`)}`,
      `ln -sf ${q(agents.fluentd)} ${q(`${this.root}/bin/fluentd`)}`,
    ];
    for (const [src, dst, ro] of binds) {
      lines.push(
        (Deno.statSync(src).isDirectory
          ? `mkdir -p ${q(dst)}`
          : `mkdir -p "$(dirname ${q(dst)})" && touch ${q(dst)}`) + " 2>/dev/null || true",
      );
      lines.push(`mount --bind ${q(src)} ${q(dst)}`);
      if (ro) lines.push(`mount -o remount,bind,ro ${q(dst)}`);
    }
    if (sc?.readOnlyRootFilesystem) lines.push("mount -o remount,bind,ro /");
    // runc gives the container's stdio pipes to its user, so it can open /dev/stdout.
    lines.push(`chown ${uid}:${gid} /proc/$$/fd/1 /proc/$$/fd/2`);
    const argv = [...(c.command ?? []), ...(c.args ?? [])];
    const groupFlag = groups.length ? `--groups=${groups.join(",")}` : "--clear-groups";
    lines.push(
      `cd ${q(c.workingDir ?? "/")}`,
      `exec setpriv --reuid=${uid} --regid=${gid} ${groupFlag} --inh-caps=-all ` +
        `--bounding-set=-all --no-new-privs -- env -i ${env.map(q).join(" ")} ${
          argv.map(q).join(" ")
        }`,
    );
    return lines.join("\n");
  }

  /** Removes the pod's directories (the emptyDirs die with the pod). */
  async remove(): Promise<void> {
    await Deno.remove(this.root, { recursive: true });
  }
}

/** A running agent: its stdout lines, its stderr, signals, memory. */
export class AgentProcess {
  readonly stdout: string[] = [];
  /** Stdout lines that were not valid UTF-8 (kept in `stdout`, decoded lossily). */
  invalidUtf8Lines = 0;
  stderr = "";
  readonly exited: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<void>;
  /** Set once the agent has exited. */
  done = false;
  /** Highest total RSS of the agent's processes seen by `sample()`, KiB. */
  peakRssKiB = 0;
  /** The container as the pod declares it (probes, lifecycle). */
  readonly container: Container;
  /** The host port its metrics port is bound to, when it has one. */
  readonly port: number | undefined;

  constructor(script: string, cwd: string, container: Container, port?: number) {
    this.container = container;
    this.port = port;
    // unshare execs bash in place and bash execs the agent: the child's pid is the agent's.
    this.#child = new Deno.Command("unshare", {
      args: ["--mount", "--propagation", "private", "bash", "-c", script],
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.exited = this.#child.status.then((s) => {
      this.done = true;
      return s;
    });
    this.#done = Promise.all([this.#readLines(), this.#readErr()]).then(() => {});
  }

  get pid(): number {
    return this.#child.pid;
  }

  async #readLines() {
    const strict = new TextDecoder("utf-8", { fatal: true });
    const lossy = new TextDecoder();
    const push = (line: Uint8Array) => {
      try {
        this.stdout.push(strict.decode(line));
      } catch {
        this.invalidUtf8Lines++;
        this.stdout.push(lossy.decode(line));
      }
    };
    let rest = new Uint8Array(0);
    for await (const chunk of this.#child.stdout) {
      const bytes = new Uint8Array(rest.length + chunk.length);
      bytes.set(rest);
      bytes.set(chunk, rest.length);
      let start = 0;
      for (let nl = bytes.indexOf(10); nl !== -1; nl = bytes.indexOf(10, start)) {
        push(bytes.subarray(start, nl));
        start = nl + 1;
      }
      rest = bytes.slice(start);
    }
    if (rest.length > 0) push(rest);
  }

  async #readErr() {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      this.stderr += chunk;
    }
  }

  /** The agent's process and its descendants. */
  tree(): number[] {
    const parent = new Map<number, number>();
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        parent.set(Number(e.name), ppid);
      } catch { /* gone */ }
    }
    const out = [this.pid];
    for (let i = 0; i < out.length; i++) {
      for (const [pid, ppid] of parent) if (ppid === out[i]) out.push(pid);
    }
    return out.filter((pid) => parent.has(pid));
  }

  /** Total RSS of the agent's processes now (KiB); updates `peakRssKiB`. */
  sample(): number {
    let total = 0;
    for (const pid of this.tree()) {
      try {
        const m = /VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
        total += Number(m?.[1] ?? 0);
      } catch { /* gone */ }
    }
    this.peakRssKiB = Math.max(this.peakRssKiB, total);
    return total;
  }

  /** The uid the agent runs as. */
  uid(): number {
    const m = /Uid:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${this.pid}/status`));
    return Number(m?.[1]);
  }

  /** Sends `signal` to the agent (as the kubelet's stop does with SIGTERM). */
  signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch { /* already gone */ }
  }

  /** Sends `signal` to every process of the agent (SIGSTOP wedges it, SIGCONT frees it). */
  signalAll(signal: Deno.Signal): void {
    for (const pid of this.tree()) {
      try {
        Deno.kill(pid, signal);
      } catch { /* gone */ }
    }
  }

  /** SIGKILLs every process of the agent at once, as the OOM killer does to a container. */
  async oomKill(): Promise<void> {
    for (const pid of this.tree()) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await this.wait();
  }

  /** Waits for the exit and for its output to be read. */
  async wait(): Promise<Deno.CommandStatus> {
    const status = await this.exited;
    await this.#done;
    return status;
  }
}

/** A free TCP port on 127.0.0.1: the agent's port in its own network namespace. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
