/**
 * Field checks shared by the config file and the per-pod annotations, so the
 * two accept exactly the same values. Each returns why a value is wrong, or
 * `undefined` when it is fine.
 * @module
 */

/** Kubernetes' limit for a DNS-1123 label (container, volume, profile names). */
export const DNS_LABEL_MAX = 63;
/** Kubernetes' limit for a DNS-1123 subdomain (ConfigMap, Secret names). */
const DNS_SUBDOMAIN_MAX = 253;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const IMAGE = /^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/;
const IMAGE_MAX = 512;
const LOG_DIR_MAX = 256;
const LOG_DIR_CHARS = /^[A-Za-z0-9._\/-]+$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

/**
 * A Kubernetes resource quantity: a number, then a decimal exponent, a
 * decimal SI suffix or a binary suffix. Group 1 is the number, group 2 the rest.
 */
const QUANTITY = /^\+?(\d+(?:\.\d*)?|\.\d+)([eE][-+]?\d+|[numkMGTPE]|[KMGTPE]i)?$/;

/** Returns why `s` is not a DNS-1123 label. */
export function checkDnsLabel(s: string): string | undefined {
  return DNS_LABEL.test(s)
    ? undefined
    : `must be a DNS-1123 label (lower case, digits, '-', at most ${DNS_LABEL_MAX})`;
}

/** Returns why `s` is not a DNS-1123 subdomain (the name of a ConfigMap or Secret). */
export function checkDnsSubdomain(s: string): string | undefined {
  return s.length <= DNS_SUBDOMAIN_MAX && DNS_SUBDOMAIN.test(s)
    ? undefined
    : "must be a DNS-1123 subdomain (a ConfigMap or Secret name)";
}

/** Returns why `s` is not a valid environment variable name. */
export function checkEnvName(s: string): string | undefined {
  return ENV_NAME.test(s) ? undefined : "must be a valid environment variable name";
}

/** Returns why `s` is not a usable log directory. */
export function checkLogDir(s: string): string | undefined {
  if (!s.startsWith("/")) return "must be an absolute path";
  if (s.length > LOG_DIR_MAX) return `must be at most ${LOG_DIR_MAX} characters`;
  if (s === "/") return "must not be /";
  if (s.split("/").some((part) => part === ".." || part === ".")) {
    return "must not contain . or .. segments";
  }
  // The path goes into the agents' path lists (',' separates them), globs and tag
  // patterns, so only characters with no meaning to either agent are allowed.
  if (!LOG_DIR_CHARS.test(s) || s.includes("//") || s.endsWith("/")) {
    return "must be a clean path of letters, digits, '.', '_', '-' and '/', without '//' or a trailing '/'";
  }
  return undefined;
}

/** Returns why `s` is not a key of a ConfigMap or Secret. */
export function checkConfigKey(s: string): string | undefined {
  return s.length <= DNS_SUBDOMAIN_MAX && CONFIG_KEY.test(s)
    ? undefined
    : "must be a ConfigMap or Secret key (letters, digits, '-', '_', '.')";
}

/** Returns why `s` is not a Kubernetes resource quantity. */
export function checkQuantity(s: string): string | undefined {
  return QUANTITY.test(s) ? undefined : "must be a Kubernetes quantity such as 100m, 64Mi or 1";
}

/** Returns why `s` is not a plausible image reference. */
export function checkImage(s: string): string | undefined {
  if (s.length > IMAGE_MAX) return `must be at most ${IMAGE_MAX} characters`;
  if (!IMAGE.test(s)) return "must be an image reference like registry/name:tag";
  return undefined;
}

/** Returns why `s` is not a host name or IP address. */
export function checkHost(s: string): string | undefined {
  return /^[a-zA-Z0-9.\-:]+$/.test(s) ? undefined : "must be a host name or IP address";
}

const SUFFIX: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * The numeric value of a Kubernetes quantity; `NaN` when `checkQuantity`
 * refuses it.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantity } from "./fields.ts";
 * assert.equal(quantity("64Mi"), 64 * 2 ** 20);
 * assert.equal(quantity("1e3"), 1000);
 * assert.ok(Number.isNaN(quantity("lots")));
 * ```
 */
export function quantity(q: string | number): number {
  if (typeof q === "number") return q;
  const m = QUANTITY.exec(q);
  if (!m) return Number.NaN;
  const [, number = "", suffix = ""] = m;
  if (/^[eE][-+]?\d/.test(suffix)) return Number(number + suffix);
  return Number(number) * (SUFFIX[suffix] ?? Number.NaN);
}
