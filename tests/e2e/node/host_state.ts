/**
 * What the one-node cluster changes on the host, snapshotted before it starts and compared
 * after teardown: the sysctls the kubelet and the bridge plugin set, iptables chains, network
 * links, mounts, the directories the kubelet and containerd hard-code, and processes that
 * belong to the node. `restore()` undoes what a run left; `diff()` says what still differs.
 * @module
 */
import { exec } from "../control_plane/harness.ts";

/** Sysctls the kubelet (protectKernelDefaults: false) and the CNI bridge plugin write. */
export const SYSCTLS = [
  "vm.overcommit_memory",
  "vm.panic_on_oom",
  "kernel.panic",
  "kernel.panic_on_oops",
  "kernel.keys.root_maxkeys",
  "kernel.keys.root_maxbytes",
  "net.ipv4.ip_forward",
];

/** Paths the kubelet, containerd's shims and libcni use whatever their root dirs are. */
export const HARD_CODED_DIRS = [
  "/var/log/containers",
  "/var/lib/kubelet",
  "/run/containerd",
  "/var/lib/cni",
];

/** A snapshot of the host. */
export interface HostState {
  sysctls: Record<string, string>;
  /** `table:chain` for every iptables chain. */
  chains: string[];
  links: string[];
  mounts: string[];
  dirs: string[];
  /** kubepods cgroups (any hierarchy). */
  cgroups: string[];
  /** `pid cmdline` of processes whose command line names `marker` (the node's state dir). */
  processes: string[];
}

async function out(cmd: string, args: string[]): Promise<string> {
  const r = await exec(cmd, args, { timeoutMs: 30_000 });
  return r.code === 0 ? r.stdout : "";
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Processes whose command line contains `marker`. Through `ps` and `cat`: Deno grants reads of
 * /proc and /sys only to a fully permitted process, and the tests run with the listed permissions.
 */
export async function processesMentioning(marker: string): Promise<string[]> {
  const ps = await out("ps", ["-e", "-ww", "-o", "pid=,args="]);
  return ps.split("\n").map((l) => l.trim())
    .filter((l) => l.includes(marker) && !l.startsWith(`${Deno.pid} `) && !l.includes(" ps -e "));
}

/** The mount points of this mount namespace. */
export async function mountPoints(): Promise<string[]> {
  return (await out("cat", ["/proc/self/mountinfo"])).split("\n")
    .map((l) => l.split(" ")[4]).filter((m): m is string => !!m);
}

/** Takes a snapshot; `marker` is the node's state dir (its processes name it). */
export async function snapshot(marker: string): Promise<HostState> {
  const sysctls: Record<string, string> = {};
  for (const s of SYSCTLS) sysctls[s] = (await out("sysctl", ["-n", s])).trim();
  const chains: string[] = [];
  for (const table of ["filter", "nat", "mangle"]) {
    for (const line of (await out("iptables", ["-t", table, "-S"])).split("\n")) {
      const m = line.match(/^-[PN] (\S+)/);
      if (m) chains.push(`${table}:${m[1]}`);
    }
  }
  const links = (await out("ip", ["-o", "link", "show"])).split("\n")
    .map((l) => l.match(/^\d+: ([^:@]+)/)?.[1]).filter((l): l is string => !!l).sort();
  const mounts = (await mountPoints()).sort();
  const dirs: string[] = [];
  for (const d of HARD_CODED_DIRS) if (await exists(d)) dirs.push(d);
  const cgroups = (await out("bash", ["-c", "ls -d /sys/fs/cgroup/*/kubepods 2>/dev/null; true"]))
    .split("\n").filter((x) => x);
  const processes = await processesMentioning(marker);
  return { sysctls, chains, links, mounts, dirs, cgroups, processes };
}

/** What differs between two snapshots, one line per difference; empty when none. */
export function diff(before: HostState, after: HostState): string[] {
  const d: string[] = [];
  for (const [k, v] of Object.entries(before.sysctls)) {
    if (after.sysctls[k] !== v) d.push(`sysctl ${k}: ${v} -> ${after.sysctls[k]}`);
  }
  const sets = (what: string, a: string[], b: string[]) => {
    for (const x of b) if (!a.includes(x)) d.push(`${what} added: ${x}`);
    for (const x of a) if (!b.includes(x)) d.push(`${what} removed: ${x}`);
  };
  sets("iptables chain", before.chains, after.chains);
  sets("link", before.links, after.links);
  sets("mount", before.mounts, after.mounts);
  sets("dir", before.dirs, after.dirs);
  sets("cgroup", before.cgroups, after.cgroups);
  sets("process", before.processes, after.processes);
  return d;
}

/**
 * Undoes what the node changed since `before`: sysctls back, chains it added flushed and
 * deleted (jumps to them first), its bridge and veths deleted, hard-coded dirs it created removed.
 * Mounts and processes are the harness's job (it knows which are its own).
 */
export async function restore(before: HostState, bridge: string): Promise<void> {
  const now = await snapshot("\0");
  for (const [k, v] of Object.entries(before.sysctls)) {
    if (now.sysctls[k] !== v && v !== "") await out("sysctl", ["-q", "-w", `${k}=${v}`]);
  }
  const added = now.chains.filter((c) => !before.chains.includes(c));
  for (const c of added) {
    const [table, chain] = c.split(":") as [string, string];
    // Rules in other chains that jump to it go first.
    for (const line of (await out("iptables", ["-t", table, "-S"])).split("\n")) {
      if (line.startsWith("-A ") && line.includes(`-j ${chain}`)) {
        await out("iptables", ["-t", table, "-D", ...line.slice(3).split(" ")]);
      }
    }
  }
  for (const c of added) {
    const [table, chain] = c.split(":") as [string, string];
    await out("iptables", ["-t", table, "-F", chain]);
    await out("iptables", ["-t", table, "-X", chain]);
  }
  // Only links a node makes: its bridge and the veths of pods (another tool's are not ours).
  const ours = (l: string) => l === bridge || l.startsWith("veth");
  for (const l of now.links.filter((l) => !before.links.includes(l) && ours(l))) {
    await out("ip", ["link", "delete", l]);
  }
  for (const d of now.dirs.filter((d) => !before.dirs.includes(d))) {
    await Deno.remove(d, { recursive: true }).catch(() => {});
  }
}
