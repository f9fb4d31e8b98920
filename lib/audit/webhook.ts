/**
 * The injector's MutatingWebhookConfiguration as the audit needs it: which
 * namespaces and pods the apiserver sends to the webhook (its selectors),
 * when it was registered, and its `caBundle`.
 * @module
 */
import { isRecord } from "../json/mod.ts";
import { type LabelSelector, matches, parseSelector } from "../kube/mod.ts";

/** One webhook of the configuration that is called for pod creates. */
interface PodHook {
  name: string;
  namespaceSelector: LabelSelector;
  objectSelector: LabelSelector;
  /** base64-decoded PEM; undefined when the field is empty. */
  caBundle: string | undefined;
  /** `clientConfig.service`, when the webhook is reached through a Service. */
  service: { namespace: string; name: string } | undefined;
}

/** A MutatingWebhookConfiguration, validated. */
export interface WebhookRegistration {
  name: string;
  /** RFC 3339 `metadata.creationTimestamp`. */
  created: string | undefined;
  /** The webhooks whose rules cover `CREATE` of `v1` pods. */
  hooks: PodHook[];
}

const any = (list: unknown, ...wanted: string[]): boolean =>
  Array.isArray(list) && list.some((v) => wanted.includes(v));

function coversPodCreate(rules: unknown): boolean {
  if (!Array.isArray(rules)) return false;
  return rules.some((r) =>
    isRecord(r) && any(r.operations, "CREATE", "*") && any(r.apiGroups, "", "*") &&
    any(r.apiVersions, "v1", "*") && any(r.resources, "pods", "*", "*/*")
  );
}

function decodeBundle(value: unknown): string | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  try {
    const bin = atob(value);
    return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return "";
  }
}

/**
 * Validates a MutatingWebhookConfiguration read from the API.
 *
 * @throws {TypeError} naming the first field that is not what the API serves.
 */
export function parseWebhook(value: unknown): WebhookRegistration {
  if (!isRecord(value) || !isRecord(value.metadata)) {
    throw new TypeError("not a MutatingWebhookConfiguration");
  }
  const meta = value.metadata;
  const name = typeof meta.name === "string" ? meta.name : "";
  const hooks: PodHook[] = [];
  const list = value.webhooks ?? [];
  if (!Array.isArray(list)) throw new TypeError(`${name}: webhooks must be a list`);
  list.forEach((h: unknown, i) => {
    const where = `${name}.webhooks[${i}]`;
    if (!isRecord(h)) throw new TypeError(`${where} must be an object`);
    if (!coversPodCreate(h.rules)) return;
    const client = isRecord(h.clientConfig) ? h.clientConfig : {};
    const svc = client.service;
    hooks.push({
      name: typeof h.name === "string" ? h.name : where,
      namespaceSelector: parseSelector(h.namespaceSelector, `${where}.namespaceSelector`),
      objectSelector: parseSelector(h.objectSelector, `${where}.objectSelector`),
      caBundle: decodeBundle(client.caBundle),
      service: isRecord(svc) && typeof svc.namespace === "string" && typeof svc.name === "string"
        ? { namespace: svc.namespace, name: svc.name }
        : undefined,
    });
  });
  return {
    name,
    created: typeof meta.creationTimestamp === "string" ? meta.creationTimestamp : undefined,
    hooks,
  };
}

/**
 * True when the apiserver would send this pod's create to one of the
 * webhooks: its namespace labels match the `namespaceSelector` and its own
 * labels the `objectSelector`. (`matchConditions` are CEL; `inject()` applies
 * the same rules itself.)
 */
export function sentToWebhook(
  registration: WebhookRegistration,
  namespaceLabels: Record<string, string>,
  podLabels: Record<string, string>,
): boolean {
  return registration.hooks.some((h) =>
    matches(h.namespaceSelector, namespaceLabels) && matches(h.objectSelector, podLabels)
  );
}
