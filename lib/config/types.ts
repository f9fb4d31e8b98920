/**
 * The injector configuration's types: the whole config and its profiles.
 * @module
 */
import type { AgentSpec, Output, Parser } from "../agent/mod.ts";

export type { Agent, CaSource, Output, Parser } from "../agent/mod.ts";

/**
 * How the sidecar is added: `native`, an init container with `restartPolicy:
 * Always` (Kubernetes >= 1.29: started before the app containers, stopped
 * after them, never keeps a pod from completing), or `classic`, a regular
 * container, for older clusters.
 */
export type Mode = "native" | "classic";

/** One named sidecar template. */
export interface Profile extends AgentSpec {
  volumeName: string;
  output: Output;
  /** `sizeLimit` of the log volume the apps write to. */
  logVolumeSizeLimit: string;
  /**
   * Bound of the records the agent buffers on its state volume (an aggregator
   * outage fills it); the state volume's `sizeLimit` is this plus a margin.
   */
  bufferLimit: string;
  /** How lines become records, unless a pod's annotation says otherwise. */
  parser: Parser;
  /** Name of a ConfigMap (in the pod's namespace) holding the agent's whole config; replaces the inline one. */
  configMap?: string;
}

/** The whole injector configuration. */
export interface Config {
  defaultProfile: string;
  mode: Mode;
  /** What to answer when injection throws for a pod: admit it unchanged (`allow`) or reject it (`deny`). */
  onError: "allow" | "deny";
  excludeNamespaces: string[];
  profiles: Record<string, Profile>;
}
