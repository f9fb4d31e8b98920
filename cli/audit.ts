/**
 * `audit`: which existing pods lack the agent the injector would give them
 * (escaped), carry an outdated one (drifted) or one that cannot run
 * (blocked), and whether the webhook's `caBundle` verifies its serving
 * certificate. Read-only.
 * @module
 */
import {
  auditCluster,
  type CertReport,
  checkServingCert,
  type ClusterAudit,
  type Config,
  defaultConfig,
  findCredentials,
  INJECTOR_DEFAULTS,
  KubeClient,
  loadConfig,
  parseConfig,
  readRegistration,
  withExcludedNamespace,
  writeAllSync,
} from "../lib/mod.ts";
import type { AuditOptions } from "./options.ts";
import { VERSION } from "./version.ts";

const encoder = new TextEncoder();
const out = (s: string) => writeAllSync(Deno.stdout, encoder.encode(s));
const note = (s: string) => writeAllSync(Deno.stderr, encoder.encode(`note: ${s}\n`));

/** The config the cluster's injector runs: its ConfigMap, or defaults when there is none. */
async function clusterConfig(client: KubeClient, namespace: string): Promise<Config> {
  const name = INJECTOR_DEFAULTS.configMap;
  const cm = await client.getIfExists(
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps/${name}`,
  );
  const data = typeof cm === "object" && cm !== null && "data" in cm ? cm.data : undefined;
  const text = typeof data === "object" && data !== null && "config.yaml" in data
    ? data["config.yaml"]
    : undefined;
  if (typeof text !== "string") {
    note(`ConfigMap ${namespace}/${name} with config.yaml not found: auditing with the defaults`);
    return defaultConfig();
  }
  return parseConfig(text, `ConfigMap ${namespace}/${name} config.yaml`);
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) =>
    r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)).join("  ")
  ).join("\n") + "\n";
}

function certLine(cert: CertReport | undefined): string {
  if (!cert) return "certificate: not checked (no webhook registration)\n";
  const expiry = cert.notAfter ? `; expires ${cert.notAfter} (${cert.daysLeft} days)` : "";
  return `certificate (${cert.secret}): ${cert.status}: ${cert.detail}${expiry}\n`;
}

function render(audit: ClusterAudit, cert: CertReport | undefined, output: "table" | "json") {
  const count = (problem: string) => audit.findings.filter((f) => f.problem === problem).length;
  const [escaped, drifted, blocked] = [count("escaped"), count("drifted"), count("blocked")];
  if (output === "json") {
    out(
      JSON.stringify(
        {
          scanned: audit.scanned,
          escaped,
          drifted,
          blocked,
          findings: audit.findings,
          certificate: cert ?? null,
          notes: audit.notes,
        },
        null,
        2,
      ) + "\n",
    );
    return;
  }
  for (const n of audit.notes) note(n);
  if (audit.findings.length > 0) {
    out(table([
      ["NAMESPACE", "POD", "PROBLEM", "OWNER", "REASON"],
      ...audit.findings.map((f) => [f.namespace, f.pod, f.problem, f.owner ?? "-", f.reason]),
    ]));
  }
  out(
    `${audit.scanned} pods audited: ${escaped} without the agent, ${drifted} drifted, ` +
      `${blocked} blocked\n`,
  );
  out(certLine(cert));
}

/** Runs the audit; 0 when nothing is wrong, 1 when something is. `main` maps errors to 2. */
export async function auditCommand(options: AuditOptions): Promise<number> {
  const credentials = await findCredentials({
    kubeconfig: options.kubeconfig,
    context: options.context,
    env: (name) => Deno.env.get(name),
  });
  const client = new KubeClient(credentials, { userAgent: `sidecar-injector/${VERSION} audit` });
  try {
    const registration = await readRegistration(client, options.webhook);
    const injectorNamespace = options.injectorNamespace ??
      registration?.hooks.find((h) => h.service)?.service?.namespace ??
      INJECTOR_DEFAULTS.namespace;
    const base = options.configFile
      ? await loadConfig(options.configFile)
      : await clusterConfig(client, injectorNamespace);
    // The server never injects its own namespace (POD_NAMESPACE); the audit must agree.
    const config = withExcludedNamespace(base, injectorNamespace);
    const audit = await auditCluster({
      client,
      config,
      namespace: options.allNamespaces ? undefined : options.namespace ?? client.namespace,
      webhook: options.webhook,
      registration,
    });
    const cert = registration
      ? await checkServingCert(client, registration, {
        namespace: injectorNamespace,
        name: INJECTOR_DEFAULTS.secret,
      }, new Date())
      : undefined;
    render(audit, cert, options.output);
    return audit.findings.length > 0 || cert?.status === "problem" ? 1 : 0;
  } finally {
    client.close();
  }
}
