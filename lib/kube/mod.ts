/**
 * A small Kubernetes API client for the audit: credentials from a
 * kubeconfig (exec plugins included) or the pod's service account, GETs and
 * paged lists over node:https, and label selectors.
 * @module
 */
export {
  type Credentials,
  defaultKubeconfigPaths,
  type ExecConfig,
  findCredentials,
  IN_CLUSTER_SERVER,
  inClusterCredentials,
  KubeconfigError,
  loadKubeconfig,
  type ReadText,
  SERVICE_ACCOUNT_DIR,
} from "./credentials.ts";
export { type ExecResult, parseExecCredential, runExecPlugin } from "./exec_credential.ts";
export { KubeClient, type KubeClientOptions, KubeError } from "./client.ts";
export { type LabelSelector, matches, parseSelector } from "./selector.ts";
