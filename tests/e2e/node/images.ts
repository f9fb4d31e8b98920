/**
 * Container images for the one-node cluster, assembled here without a registry or an image
 * builder: a root filesystem staged in a temp dir, packed by `tar` into one uncompressed,
 * reproducible layer, and wrapped in an OCI image layout (`oci-layout`, `index.json`,
 * `blobs/sha256/*`) that `ctr images import` tags with the reference in `index.json`.
 * Archives are cached by a digest of their inputs in `~/.cache/sidecar-injector-e2e/node-images/`.
 * @module
 */
import { type Agent, PROBE_PATH } from "../../../lib/agent/mod.ts";
import { defaultConfig } from "../../../lib/config/mod.ts";
import { exec, REPO_ROOT } from "../control_plane/harness.ts";

/** A built OCI archive and the reference it is imported as. */
export interface ImageArchive {
  ref: string;
  path: string;
}

/** The image config (`config` in the OCI image config). */
export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
}

const enc = new TextEncoder();

async function sha256Hex(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function must(cmd: string, args: string[], cwd?: string): Promise<string> {
  const r = await exec(cmd, args, { timeoutMs: 300_000, ...(cwd ? { cwd } : {}) });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const TAR_FLAGS = ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner"];

/** Packs `rootfs` as a single-layer OCI archive at `out`, imported as `ref`. */
export async function writeOciArchive(
  rootfs: string,
  ref: string,
  config: ImageConfig,
  out: string,
): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "oci-" });
  try {
    const blobs = `${work}/layout/blobs/sha256`;
    await Deno.mkdir(blobs, { recursive: true });
    // The layer's "." entry becomes the container's "/": a temp dir's 0700 would lock out non-root users.
    await Deno.chmod(rootfs, 0o755);
    await must("tar", [...TAR_FLAGS, "-C", rootfs, "-cf", `${work}/layer.tar`, "."]);
    const layer = await Deno.readFile(`${work}/layer.tar`);
    const layerDigest = await sha256Hex(layer);
    await Deno.rename(`${work}/layer.tar`, `${blobs}/${layerDigest}`);
    const put = async (obj: unknown) => {
      const bytes = enc.encode(JSON.stringify(obj));
      const d = await sha256Hex(bytes);
      await Deno.writeFile(`${blobs}/${d}`, bytes);
      return { digest: `sha256:${d}`, size: bytes.length };
    };
    const cfg = await put({
      created: "1970-01-01T00:00:00Z",
      architecture: "amd64",
      os: "linux",
      config,
      rootfs: { type: "layers", diff_ids: [`sha256:${layerDigest}`] },
    });
    const manifest = await put({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cfg },
      layers: [{
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        digest: `sha256:${layerDigest}`,
        size: layer.length,
      }],
    });
    const tag = ref.slice(ref.lastIndexOf(":") + 1);
    await Deno.writeTextFile(
      `${work}/layout/index.json`,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          platform: { architecture: "amd64", os: "linux" },
          annotations: {
            "io.containerd.image.name": ref,
            "org.opencontainers.image.ref.name": tag,
          },
        }],
      }),
    );
    await Deno.writeTextFile(`${work}/layout/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
    await must("tar", [
      ...TAR_FLAGS,
      "-C",
      `${work}/layout`,
      "-cf",
      `${out}.tmp`,
      "oci-layout",
      "index.json",
      "blobs",
    ]);
    await Deno.rename(`${out}.tmp`, out);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Bumped when the way archives are written changes, so cached ones are rebuilt. */
const LAYOUT_VERSION = "2";

/** Where archives are cached between runs. */
export function imageCacheDir(): string {
  const root = Deno.env.get("SIDECAR_E2E_CACHE") ??
    `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME")}/.cache`}/sidecar-injector-e2e`;
  return `${root}/node-images`;
}

/** Builds (or reuses) the archive `name` keyed by `key` (a digest of everything that goes in). */
async function cached(
  name: string,
  key: string,
  ref: string,
  build: (rootfs: string) => Promise<ImageConfig>,
): Promise<ImageArchive> {
  const dir = imageCacheDir();
  await Deno.mkdir(dir, { recursive: true });
  const short = (await sha256Hex(enc.encode(`${LAYOUT_VERSION}\n${ref}\n${key}`))).slice(0, 16);
  const path = `${dir}/${name}-${short}.tar`;
  try {
    await Deno.stat(path);
    return { ref, path };
  } catch { /* build it */ }
  const rootfs = await Deno.makeTempDir({ prefix: `rootfs-${name}-` });
  try {
    const config = await build(rootfs);
    await writeOciArchive(rootfs, ref, config, path);
  } finally {
    await Deno.remove(rootfs, { recursive: true }).catch(() => {});
  }
  return { ref, path };
}

/** A digest of files (path, size, mtime) and extra text: the cache key of an image. */
async function inputsKey(files: string[], extra: string): Promise<string> {
  const parts = [extra];
  for (const f of files.sort()) {
    const s = await Deno.stat(f);
    parts.push(`${f} ${s.size} ${s.mtime?.getTime()}`);
  }
  return await sha256Hex(enc.encode(parts.join("\n")));
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await listFiles(p));
    else if (e.isFile) out.push(p);
  }
  return out;
}

const BUSYBOX = "/bin/busybox";

/** A busybox root: the static binary, its applets as symlinks, passwd/group with nobody. */
async function busyboxRoot(rootfs: string): Promise<void> {
  await Deno.mkdir(`${rootfs}/bin`, { recursive: true });
  await Deno.mkdir(`${rootfs}/etc`);
  await Deno.mkdir(`${rootfs}/tmp`, { mode: 0o1777 });
  await Deno.chmod(`${rootfs}/tmp`, 0o1777);
  await Deno.copyFile(BUSYBOX, `${rootfs}/bin/busybox`);
  const applets = (await must(BUSYBOX, ["--list"])).split("\n").filter((a) => a && a !== "busybox");
  for (const a of applets) await Deno.symlink("busybox", `${rootfs}/bin/${a}`);
  await Deno.writeTextFile(
    `${rootfs}/etc/passwd`,
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
  );
  await Deno.writeTextFile(`${rootfs}/etc/group`, "root:x:0:\nnobody:x:65534:\n");
}

/** The pod sandbox image, from the static `pause` that build.sh compiled. */
export function pauseImage(binDir: string): Promise<ImageArchive> {
  return inputsKey([`${binDir}/pause`], "pause").then((key) =>
    cached("pause", key, PAUSE_REF, async (rootfs) => {
      await Deno.copyFile(`${binDir}/pause`, `${rootfs}/pause`);
      await Deno.chmod(`${rootfs}/pause`, 0o755);
      return { Entrypoint: ["/pause"], User: "65535:65535" };
    })
  );
}

/** The sandbox image reference the kubelet and containerd are configured with. */
export const PAUSE_REF = "registry.k8s.io/pause:3.10.1";
/** The app image the scenarios use. */
export const BUSYBOX_REF = "docker.io/library/busybox:e2e";

/**
 * The reference containerd stores `agent`'s default image under (a Docker Hub short name gains
 * `docker.io/`): an image imported under it is what an injected pod with that profile runs.
 */
export const agentImageRef = (agent: Agent): string =>
  `docker.io/${defaultConfig().profiles[agent]!.image}`;

/** Debian's busybox-static as an image for the apps in the scenarios. */
export async function busyboxImage(): Promise<ImageArchive> {
  const key = await inputsKey([BUSYBOX], "busybox");
  return await cached("busybox", key, BUSYBOX_REF, async (rootfs) => {
    await busyboxRoot(rootfs);
    return { Cmd: ["sh"], Env: ["PATH=/usr/local/bin:/usr/bin:/bin"] };
  });
}

const STAND_IN = `${REPO_ROOT}/testdata/e2e/node/stand_in_agent.sh`;

/**
 * A STAND-IN agent, NOT Fluentd or Fluent Bit: busybox plus `testdata/e2e/node/stand_in_agent.sh`
 * installed as `fluentd` and `fluent-bit`, imported under the agent image reference the config
 * names, so the kubelet runs the container the webhook rendered (command, mounts, user). It
 * only copies the log volume's lines to stdout; it tells what the kubelet does, not what an agent does.
 */
export async function standInAgentImage(
  ref: string,
  opts: { crash?: boolean } = {},
): Promise<ImageArchive> {
  const crash = opts.crash ? ["STAND_IN_CRASH=1"] : [];
  const key = await inputsKey([BUSYBOX, STAND_IN], `stand-in-agent http ${crash}`);
  return await cached(
    opts.crash ? "crashing-agent" : "stand-in-agent",
    key,
    ref,
    async (rootfs) => {
      await busyboxRoot(rootfs);
      await Deno.mkdir(`${rootfs}/usr/local/bin`, { recursive: true });
      await Deno.copyFile(STAND_IN, `${rootfs}/usr/local/bin/stand-in-agent`);
      await Deno.chmod(`${rootfs}/usr/local/bin/stand-in-agent`, 0o755);
      for (const n of ["fluentd", "fluent-bit"]) {
        await Deno.symlink("stand-in-agent", `${rootfs}/usr/local/bin/${n}`);
      }
      // What the agents' probes ask (lib/agent/http.ts), served by busybox httpd.
      for (const path of [PROBE_PATH["fluentd"], PROBE_PATH["fluent-bit"]]) {
        const file = `${rootfs}/stand-in-www${path}`;
        await Deno.mkdir(file.slice(0, file.lastIndexOf("/")), { recursive: true });
        await Deno.writeTextFile(file, '{"stand_in_agent":true}\n');
      }
      // Fluent Bit's image runs its binary from here.
      await Deno.mkdir(`${rootfs}/fluent-bit/bin`, { recursive: true });
      await Deno.symlink("/usr/local/bin/stand-in-agent", `${rootfs}/fluent-bit/bin/fluent-bit`);
      return {
        Entrypoint: ["/usr/local/bin/stand-in-agent"],
        Env: ["PATH=/usr/local/bin:/usr/bin:/bin", "STAND_IN_AGENT=1", ...crash],
      };
    },
  );
}

/**
 * The shared libraries `ldd` names for each of `files` (absolute paths, de-duplicated), plus
 * libgcc_s.so.1 beside a glibc: glibc dlopens it for pthread_exit / pthread_cancel (a thread's
 * unwinding), so `ldd` never names it, and a program that ends a thread aborts without it.
 */
async function sharedLibs(files: string[]): Promise<string[]> {
  const libs = new Set<string>();
  for (const f of files) {
    const r = await exec("ldd", [await Deno.realPath(f)]);
    for (const l of r.stdout.split("\n")) {
      const p = l.match(/(\/\S+) \(0x/)?.[1];
      if (p) libs.add(p);
    }
  }
  for (const l of [...libs]) {
    if (!/\/libc\.so\.6$/.test(l)) continue;
    const gcc = `${l.slice(0, l.lastIndexOf("/"))}/libgcc_s.so.1`;
    if (await Deno.stat(gcc).then(() => true, () => false)) libs.add(gcc);
  }
  return [...libs];
}

/**
 * Copies `paths` (files or dirs) into `rootfs` at the same paths. A file that is a symlink is
 * copied dereferenced at its own path and at its target's (Debian's /usr/bin/ruby -> ruby3.1:
 * Ruby and wrappers may name either).
 */
async function copyInto(rootfs: string, paths: string[]): Promise<void> {
  const all = new Set<string>();
  for (const p of paths) {
    all.add(p);
    if (!(await Deno.stat(p)).isDirectory) all.add(await Deno.realPath(p));
  }
  for (const p of all) {
    await Deno.mkdir(`${rootfs}${p.slice(0, p.lastIndexOf("/"))}`, { recursive: true });
    // Files (binaries, libraries) dereferenced; dirs as they are (dangling doc links included).
    const dir = (await Deno.stat(p)).isDirectory;
    await must("cp", [dir ? "-a" : "-aL", p, `${rootfs}${p}`]);
  }
}

/**
 * An image made from agent binaries that already exist on this host (`deno task agents`: the
 * paths in FLUENTD / FLUENT_BIT): a busybox root (the rendered command runs `sh -c`), `files`
 * at their own paths, the shared libraries of every ELF among them, and `links` (name -> target).
 * Nothing is built here.
 */
export async function hostAgentImage(
  name: string,
  ref: string,
  files: string[],
  links: Record<string, string>,
): Promise<ImageArchive> {
  const elves: string[] = [];
  for (const f of files) {
    const st = await Deno.stat(f);
    if (st.isFile) elves.push(f);
    else {
      const found = await exec("find", [f, "-name", "*.so", "-type", "f"]);
      elves.push(...found.stdout.split("\n").filter((x) => x));
    }
  }
  const libs = await sharedLibs(elves);
  const key = await inputsKey(files.filter((f) => Deno.statSync(f).isFile), libs.join(" "));
  return await cached(name, key, ref, async (rootfs) => {
    await busyboxRoot(rootfs);
    await copyInto(rootfs, [...files, ...libs]);
    for (const [link, target] of Object.entries(links)) {
      await Deno.mkdir(`${rootfs}${link.slice(0, link.lastIndexOf("/"))}`, { recursive: true });
      await Deno.copyFile(target, `${rootfs}${link}`);
      await Deno.chmod(`${rootfs}${link}`, 0o755);
    }
    return { Env: ["PATH=/usr/local/bin:/usr/bin:/bin"] };
  });
}

/** The webhook's image reference in the test overlay. */
export const WEBHOOK_REF = "localhost/sidecar-injector:e2e";

/**
 * The `deno run` command line of `deno task serve` (deno.json), without the env prefix (the
 * Deployment sets MALLOC_MMAP_THRESHOLD_ itself) and without the trailing `serve` (the
 * Deployment's args start with it): the image runs exactly what the task runs.
 */
export async function serveEntrypoint(deno: string): Promise<string[]> {
  const cfg = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`));
  const words = String(cfg.tasks.serve).split(/\s+/).filter((w) => !/^[A-Z_]+=/.test(w));
  if (words[0] !== "deno" || words.at(-1) !== "serve") {
    throw new Error(`deno task serve is not "deno run ... main.ts serve": ${cfg.tasks.serve}`);
  }
  return [deno, ...words.slice(1, -1)];
}

/**
 * The webhook image: the running Deno binary (npm's deno@2.9.6) with the shared libraries `ldd`
 * names, the repo's sources, deno.json/deno.lock and the installed node_modules under /app,
 * non-root (65532); entrypoint = `deno task serve`'s command line.
 */
export async function webhookImage(): Promise<ImageArchive> {
  const deno = Deno.execPath();
  await must(deno, ["install", "--frozen"], REPO_ROOT);
  const sources = [
    `${REPO_ROOT}/main.ts`,
    `${REPO_ROOT}/deno.json`,
    `${REPO_ROOT}/deno.lock`,
    ...await listFiles(`${REPO_ROOT}/lib`),
    ...await listFiles(`${REPO_ROOT}/cli`),
  ].filter((f) => !f.endsWith("_test.ts"));
  const libs = (await must("ldd", [deno])).split("\n")
    .map((l) => l.match(/(\/\S+) \(0x/)?.[1])
    .filter((p): p is string => p !== undefined);
  const key = await inputsKey([deno, ...sources], libs.join(" "));
  return await cached("webhook", key, WEBHOOK_REF, async (rootfs) => {
    await Deno.mkdir(`${rootfs}/usr/local/bin`, { recursive: true });
    await Deno.copyFile(deno, `${rootfs}/usr/local/bin/deno`);
    await Deno.chmod(`${rootfs}/usr/local/bin/deno`, 0o755);
    for (const lib of libs) {
      const real = await Deno.realPath(lib);
      await Deno.mkdir(`${rootfs}${lib.slice(0, lib.lastIndexOf("/"))}`, { recursive: true });
      await Deno.copyFile(real, `${rootfs}${lib}`);
    }
    for (const f of sources) {
      const rel = f.slice(REPO_ROOT.length);
      await Deno.mkdir(`${rootfs}/app${rel.slice(0, rel.lastIndexOf("/"))}`, { recursive: true });
      await Deno.copyFile(f, `${rootfs}/app${rel}`);
    }
    await must("cp", ["-a", `${REPO_ROOT}/node_modules`, `${rootfs}/app/node_modules`]);
    await Deno.mkdir(`${rootfs}/etc`);
    await Deno.writeTextFile(`${rootfs}/etc/passwd`, "nonroot:x:65532:65532::/app:/false\n");
    await Deno.writeTextFile(`${rootfs}/etc/group`, "nonroot:x:65532:\n");
    await Deno.mkdir(`${rootfs}/tmp`, { mode: 0o1777 });
    return {
      Entrypoint: await serveEntrypoint("/usr/local/bin/deno"),
      Env: ["DENO_DIR=/app/.deno", "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1", "HOME=/app"],
      User: "65532:65532",
      WorkingDir: "/app",
    };
  });
}
