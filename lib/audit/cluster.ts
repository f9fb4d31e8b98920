/**
 * The audit against a live cluster: reads the webhook registration, the
 * namespaces and every pod (page by page) through the API, and asks
 * `auditPod` about each. Also checks that the registered `caBundle`
 * verifies the serving certificate in the injector's Secret.
 * @module
 */
import type { Config } from "../config/mod.ts";
import { assertPod } from "../inject/mod.ts";
import { isRecord } from "../json/mod.ts";
import { CERT_WARN_DAYS, verifyServingCert } from "../tls/mod.ts";
import type { KubeClient } from "../kube/mod.ts";
import { auditPod, type Finding } from "./audit.ts";
import { parseWebhook, sentToWebhook, type WebhookRegistration } from "./webhook.ts";

/** The defaults of `k8s/`: the webhook registration, its namespace and its TLS Secret. */
export const INJECTOR_DEFAULTS = {
  webhook: "sidecar-injector",
  namespace: "sidecar-injector",
  secret: "sidecar-injector-certs",
  configMap: "sidecar-injector-config",
} as const;

/** What {@link auditCluster} reads. */
export interface ClusterAuditOptions {
  client: KubeClient;
  config: Config;
  /** One namespace, or every namespace when undefined. */
  namespace?: string | undefined;
  /** Name of the MutatingWebhookConfiguration, for notes. */
  webhook: string;
  /** The registration as {@link readRegistration} returned it. */
  registration: WebhookRegistration | undefined;
}

/** What the audit found. */
export interface ClusterAudit {
  findings: Finding[];
  /** Pods looked at (running or pending). */
  scanned: number;
  /** The registration, or undefined when it does not exist. */
  registration: WebhookRegistration | undefined;
  /** Things the reader should know that are not pod findings. */
  notes: string[];
}

const WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
/** Finished pods run no containers: nothing to ship, nothing to report. */
const NOT_FINISHED = "status.phase!=Succeeded,status.phase!=Failed";

function labelsOf(obj: unknown): Record<string, string> {
  if (!isRecord(obj) || !isRecord(obj.metadata) || !isRecord(obj.metadata.labels)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj.metadata.labels)) if (typeof v === "string") out[k] = v;
  return out;
}

function nameOf(obj: unknown): string {
  return isRecord(obj) && isRecord(obj.metadata) && typeof obj.metadata.name === "string"
    ? obj.metadata.name
    : "";
}

/** Reads the registration; undefined when it does not exist. */
export async function readRegistration(
  client: KubeClient,
  name: string,
): Promise<WebhookRegistration | undefined> {
  const raw = await client.getIfExists(`${WEBHOOKS}/${encodeURIComponent(name)}`);
  return raw === undefined ? undefined : parseWebhook(raw);
}

/** Labels of each namespace audited (`kubernetes.io/metadata.name` included, as the apiserver sets it). */
async function namespaceLabels(
  client: KubeClient,
  namespace: string | undefined,
): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>();
  if (namespace !== undefined) {
    const ns = await client.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}`);
    out.set(namespace, labelsOf(ns));
    return out;
  }
  for await (const page of client.list("/api/v1/namespaces")) {
    for (const ns of page) out.set(nameOf(ns), labelsOf(ns));
  }
  return out;
}

/**
 * Audits every unfinished pod of `namespace` (or of the cluster).
 *
 * @throws {KubeError} when the API refuses or fails a read.
 */
export async function auditCluster(options: ClusterAuditOptions): Promise<ClusterAudit> {
  const { client, config, namespace, registration } = options;
  const notes: string[] = [];
  if (!registration) {
    notes.push(
      `MutatingWebhookConfiguration ${options.webhook} not found: no pod is injected; ` +
        "every pod the injector would inject is listed",
    );
  } else if (registration.hooks.length === 0) {
    notes.push(`MutatingWebhookConfiguration ${options.webhook} has no webhook for pod creates`);
  }
  const namespaces = await namespaceLabels(client, namespace);
  const path = namespace === undefined
    ? "/api/v1/pods"
    : `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
  const findings: Finding[] = [];
  let scanned = 0;
  for await (const page of client.list(path, { fieldSelector: NOT_FINISHED })) {
    for (const item of page) {
      scanned++;
      const ns = isRecord(item) && isRecord(item.metadata) &&
          typeof item.metadata.namespace === "string"
        ? item.metadata.namespace
        : "";
      try {
        assertPod(item);
        const sent = registration === undefined ||
          sentToWebhook(registration, namespaces.get(ns) ?? {}, item.metadata?.labels ?? {});
        const finding = auditPod(item, {
          config,
          namespace: ns,
          sentToWebhook: sent,
          webhookCreated: registration?.created,
        });
        if (finding) {
          findings.push(
            registration === undefined && finding.problem === "escaped"
              ? { ...finding, reason: `the webhook ${options.webhook} is not registered` }
              : finding,
          );
        }
      } catch (err) {
        notes.push(
          `${ns}/${nameOf(item)}: not audited: ${err instanceof Error ? err.message : err}`,
        );
      }
    }
  }
  return { findings, scanned, registration, notes };
}

/** The outcome of {@link checkServingCert}. */
export interface CertReport {
  /** `problem`: the apiserver cannot (or soon will not) verify the webhook; `unchecked`: not enough to tell. */
  status: "ok" | "problem" | "unchecked";
  /** `namespace/name` of the Secret read. */
  secret: string;
  detail: string;
  /** RFC 3339 expiry of the serving certificate, when known. */
  notAfter?: string;
  daysLeft?: number;
}

function secretCert(secret: unknown): string | undefined {
  if (!isRecord(secret) || !isRecord(secret.data)) return undefined;
  const data = secret.data["tls.crt"];
  if (typeof data !== "string") return undefined;
  const bin = atob(data);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/**
 * Checks the registration's `caBundle` against `tls.crt` of the Secret
 * `namespace/name`, and how many days that certificate has left.
 */
export async function checkServingCert(
  client: KubeClient,
  registration: WebhookRegistration,
  secret: { namespace: string; name: string },
  now: Date,
): Promise<CertReport> {
  const ref = `${secret.namespace}/${secret.name}`;
  const hook = registration.hooks[0];
  if (!hook) return { status: "unchecked", secret: ref, detail: "no webhook for pod creates" };
  const raw = await client.getIfExists(
    `/api/v1/namespaces/${encodeURIComponent(secret.namespace)}/secrets/${
      encodeURIComponent(secret.name)
    }`,
  );
  const pem = secretCert(raw);
  if (pem === undefined) {
    return {
      status: "unchecked",
      secret: ref,
      detail: raw === undefined ? `Secret ${ref} not found` : `Secret ${ref} has no tls.crt`,
    };
  }
  if (hook.caBundle === undefined) {
    return {
      status: "problem",
      secret: ref,
      detail: `webhook ${hook.name} has an empty caBundle: the apiserver cannot verify the server`,
    };
  }
  try {
    const check = verifyServingCert(hook.caBundle, pem, now);
    const report = {
      secret: ref,
      notAfter: check.notAfter.toISOString(),
      daysLeft: check.daysLeft,
    };
    if (!check.ok) return { status: "problem", ...report, detail: `${hook.name}: ${check.detail}` };
    if (report.daysLeft < CERT_WARN_DAYS) {
      return {
        status: "problem",
        ...report,
        detail: `serving certificate expires in ${report.daysLeft} days (renew: k8s/gen-certs.sh)`,
      };
    }
    return { status: "ok", ...report, detail: `${hook.name}: ${check.detail}` };
  } catch (err) {
    return {
      status: "problem",
      secret: ref,
      detail: `${hook.name}: ${err instanceof Error ? err.message : err}`,
    };
  }
}
