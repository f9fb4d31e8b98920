/**
 * Where the Kubernetes API is and how to authenticate to it: a kubeconfig
 * (files merged as kubectl merges `KUBECONFIG`) or the pod's own
 * service-account files. Parsing is separate from reading: `read` is passed in.
 * @module
 */
import { load } from "js-yaml";
import { isRecord } from "../json/mod.ts";

/** The kubeconfig cannot be used; `main` exits 2 on it. */
export class KubeconfigError extends Error {
  override name = "KubeconfigError";
}

/** None of the kubeconfig files exists. */
class NoKubeconfigError extends KubeconfigError {}

/** A `users[].user.exec` credential plugin (client.authentication.k8s.io). */
export interface ExecConfig {
  apiVersion: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  /** Printed with the error when the command is missing. */
  installHint?: string;
}

/** Everything needed to call one API server. */
export interface Credentials {
  /** `https://host:port`, without a trailing slash. */
  server: string;
  /** PEM of the CA(s) that sign the API server's certificate; absent means the system's. */
  ca?: string;
  insecureSkipTlsVerify: boolean;
  tlsServerName?: string;
  clientCert?: string;
  clientKey?: string;
  token?: string;
  /** Re-read before each use: projected service-account tokens are rotated on disk. */
  tokenFile?: string;
  exec?: ExecConfig;
  /** The context's namespace (kubectl's default for `-n`). */
  namespace: string;
}

/** Reads a text file; a seam for tests. */
export type ReadText = (path: string) => Promise<string>;

/** Where the kubelet mounts a pod's service-account token, CA and namespace. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/**
 * The API server as every pod can reach it. Used instead of
 * `KUBERNETES_SERVICE_HOST` so that the server's network permission can name
 * one host rather than any address.
 */
export const IN_CLUSTER_SERVER = "https://kubernetes.default.svc:443";

type Named = Map<string, Record<string, unknown>>;

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

function resolvePath(base: string, path: string): string {
  return path.startsWith("/") ? path : `${base}/${path}`;
}

/** base64 (`*-data` fields) to text. */
function decodeData(value: string, what: string): string {
  try {
    const bin = atob(value.replace(/\s+/g, ""));
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    throw new KubeconfigError(`${what} is not valid base64`);
  }
}

function str(obj: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new KubeconfigError(`${where}.${key} must be a string`);
  return v;
}

/** A named list (`clusters`, `users`, `contexts`), first file wins, as kubectl merges. */
function collect(
  into: Named,
  doc: Record<string, unknown>,
  list: string,
  field: string,
  src: string,
) {
  const items = doc[list];
  if (items === undefined || items === null) return;
  if (!Array.isArray(items)) throw new KubeconfigError(`${src}: ${list} must be a list`);
  items.forEach((item, i) => {
    if (!isRecord(item) || typeof item.name !== "string") {
      throw new KubeconfigError(`${src}: ${list}[${i}] needs a name`);
    }
    const value = item[field] ?? {};
    if (!isRecord(value)) {
      throw new KubeconfigError(`${src}: ${list}[${i}].${field} must be a mapping`);
    }
    // Relative file references are relative to the file that holds them.
    if (!into.has(item.name)) into.set(item.name, { ...value, "@dir": dirOf(src) });
  });
}

/**
 * The credentials of the current (or the named) context of the kubeconfig
 * files `paths`, read with `read`. Files that do not exist are skipped, as
 * kubectl does, unless none exists.
 *
 * @throws {KubeconfigError} when no file is readable or the context is incomplete.
 */
export async function loadKubeconfig(
  paths: readonly string[],
  options: { context?: string | undefined; read?: ReadText } = {},
): Promise<Credentials> {
  const read = options.read ?? Deno.readTextFile;
  const clusters: Named = new Map();
  const users: Named = new Map();
  const contexts: Named = new Map();
  let current: string | undefined;
  let found = 0;
  for (const path of paths) {
    let text: string;
    try {
      text = await read(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw new KubeconfigError(
        `${path}: cannot read: ${err instanceof Error ? err.message : err}`,
      );
    }
    found++;
    let doc: unknown;
    try {
      doc = load(text, { filename: path }) ?? {};
    } catch (err) {
      throw new KubeconfigError(
        `${path}: not valid YAML: ${err instanceof Error ? err.message : err}`,
      );
    }
    if (!isRecord(doc)) throw new KubeconfigError(`${path}: not a kubeconfig (not a mapping)`);
    collect(clusters, doc, "clusters", "cluster", path);
    collect(users, doc, "users", "user", path);
    collect(contexts, doc, "contexts", "context", path);
    current ??= str(doc, "current-context", path);
  }
  if (found === 0) {
    throw new NoKubeconfigError(`no kubeconfig found (looked at ${paths.join(", ") || "nothing"})`);
  }
  const name = options.context ?? current;
  if (!name) throw new KubeconfigError("the kubeconfig has no current-context (use --context)");
  const context = contexts.get(name);
  if (!context) throw new KubeconfigError(`context ${name} is not in the kubeconfig`);
  const where = `context ${name}`;
  const clusterName = str(context, "cluster", where);
  const cluster = clusterName === undefined ? undefined : clusters.get(clusterName);
  if (!cluster) throw new KubeconfigError(`${where}: cluster ${clusterName ?? "<none>"} not found`);
  const userName = str(context, "user", where);
  const user = userName === undefined ? {} : users.get(userName);
  if (!user) throw new KubeconfigError(`${where}: user ${userName} not found`);
  return await resolve(cluster, user, str(context, "namespace", where) ?? "default", read);
}

/** Text of `<key>-data` (base64) or of the file `<key>` names. */
async function material(
  obj: Record<string, unknown>,
  key: string,
  where: string,
  read: ReadText,
): Promise<string | undefined> {
  const data = str(obj, `${key}-data`, where);
  if (data !== undefined) return decodeData(data, `${where}.${key}-data`);
  const file = str(obj, key, where);
  if (file === undefined) return undefined;
  const path = resolvePath(String(obj["@dir"]), file);
  try {
    return await read(path);
  } catch (err) {
    throw new KubeconfigError(
      `${where}.${key}: cannot read ${path}: ${err instanceof Error ? err.message : err}`,
    );
  }
}

async function resolve(
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
  namespace: string,
  read: ReadText,
): Promise<Credentials> {
  const server = str(cluster, "server", "cluster");
  if (!server) throw new KubeconfigError("cluster.server is missing");
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeconfigError(`cluster.server ${server} is not a URL`);
  }
  if (url.protocol !== "https:") {
    throw new KubeconfigError(`cluster.server ${server}: only https is supported`);
  }
  if (str(cluster, "proxy-url", "cluster")) {
    throw new KubeconfigError("cluster.proxy-url is not supported");
  }
  const creds: Credentials = {
    server: server.replace(/\/+$/, ""),
    insecureSkipTlsVerify: cluster["insecure-skip-tls-verify"] === true,
    namespace,
  };
  const ca = await material(cluster, "certificate-authority", "cluster", read);
  if (ca !== undefined) creds.ca = ca;
  const serverName = str(cluster, "tls-server-name", "cluster");
  if (serverName !== undefined) creds.tlsServerName = serverName;

  const cert = await material(user, "client-certificate", "user", read);
  const key = await material(user, "client-key", "user", read);
  if ((cert === undefined) !== (key === undefined)) {
    throw new KubeconfigError(
      "user: a client certificate needs its key, and a key its certificate",
    );
  }
  if (cert !== undefined && key !== undefined) {
    creds.clientCert = cert;
    creds.clientKey = key;
  }
  const token = str(user, "token", "user");
  if (token !== undefined) creds.token = token;
  const tokenFile = str(user, "tokenFile", "user");
  if (tokenFile !== undefined) creds.tokenFile = resolvePath(String(user["@dir"]), tokenFile);
  if (user.exec !== undefined && user.exec !== null) creds.exec = execConfig(user.exec);
  if (user["auth-provider"] !== undefined) {
    throw new KubeconfigError("user.auth-provider is not supported (use an exec plugin)");
  }
  if (user.username !== undefined || user.password !== undefined) {
    throw new KubeconfigError("user.username/password (basic auth) is not supported");
  }
  return creds;
}

function execConfig(value: unknown): ExecConfig {
  if (!isRecord(value)) throw new KubeconfigError("user.exec must be a mapping");
  const command = str(value, "command", "user.exec");
  if (!command) throw new KubeconfigError("user.exec.command is missing");
  const apiVersion = str(value, "apiVersion", "user.exec") ?? "";
  if (!apiVersion.startsWith("client.authentication.k8s.io/")) {
    throw new KubeconfigError(`user.exec.apiVersion ${apiVersion || "<none>"} is not supported`);
  }
  const args = value.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string")) {
    throw new KubeconfigError("user.exec.args must be a list of strings");
  }
  const env: Record<string, string> = {};
  const list = value.env ?? [];
  if (!Array.isArray(list)) throw new KubeconfigError("user.exec.env must be a list");
  for (const e of list) {
    if (!isRecord(e) || typeof e.name !== "string" || typeof e.value !== "string") {
      throw new KubeconfigError("user.exec.env entries need a name and a value");
    }
    env[e.name] = e.value;
  }
  const exec: ExecConfig = { apiVersion, command, args, env };
  const hint = str(value, "installHint", "user.exec");
  if (hint !== undefined) exec.installHint = hint;
  return exec;
}

/**
 * The pod's own credentials: the kubelet-mounted token (re-read on use), CA
 * and namespace, for {@link IN_CLUSTER_SERVER}.
 *
 * @throws {KubeconfigError} when the files are not there (no token mounted).
 */
export async function inClusterCredentials(
  options: { dir?: string; read?: ReadText } = {},
): Promise<Credentials> {
  const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
  const read = options.read ?? Deno.readTextFile;
  let ca: string;
  try {
    [ca] = await Promise.all([read(`${dir}/ca.crt`), read(`${dir}/token`)]);
  } catch (err) {
    throw new KubeconfigError(
      `no in-cluster service-account token in ${dir} (automountServiceAccountToken off?): ${
        err instanceof Error ? err.message : err
      }`,
    );
  }
  const namespace = (await read(`${dir}/namespace`).catch(() => "default")).trim();
  return {
    server: IN_CLUSTER_SERVER,
    ca,
    insecureSkipTlsVerify: false,
    tokenFile: `${dir}/token`,
    namespace,
  };
}

/** The kubeconfig files kubectl would read: `$KUBECONFIG` (colon-separated) or `~/.kube/config`. */
export function defaultKubeconfigPaths(env: (name: string) => string | undefined): string[] {
  const list = (env("KUBECONFIG") ?? "").split(":").filter((p) => p !== "");
  if (list.length > 0) return list;
  const home = env("HOME");
  return home ? [`${home}/.kube/config`] : [];
}

/**
 * kubectl's order: `kubeconfig` when given, else `$KUBECONFIG` or
 * `~/.kube/config` when one exists, else the pod's service account.
 */
export async function findCredentials(options: {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  env: (name: string) => string | undefined;
  read?: ReadText;
}): Promise<Credentials> {
  const { context, read } = options;
  if (options.kubeconfig !== undefined) {
    return await loadKubeconfig([options.kubeconfig], { context, ...(read ? { read } : {}) });
  }
  const paths = defaultKubeconfigPaths(options.env);
  try {
    return await loadKubeconfig(paths, { context, ...(read ? { read } : {}) });
  } catch (err) {
    if (!(err instanceof NoKubeconfigError)) throw err;
    return await inClusterCredentials(read ? { read } : {}).catch((inCluster) => {
      throw new KubeconfigError(`${err.message}; ${inCluster.message}`);
    });
  }
}
