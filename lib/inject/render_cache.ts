/**
 * The agent's parts of a patch, rendered once per config: the agent config
 * text and the sidecar container depend only on the profile (after the pod's
 * annotations), the names chosen, the app containers and who the agent runs
 * as, so pods alike share one rendering. The input is built in one place
 * ({@link RenderInput}) and the cache key is its JSON, so an input added to
 * the renderers later is part of the key without anyone remembering it. A
 * frozen part (the profile, its output: the config is deeply frozen) is
 * named rather than serialised: re-serialising the profile for every pod
 * cost more than rendering saved.
 * @module
 */
import type { Container } from "kubernetes-types/core/v1.d.ts";
import { type Config, deepFreeze, type Profile } from "../config/mod.ts";
import {
  type AgentFiles,
  type Pipeline,
  renderAgentFiles,
  renderSidecar,
  type SidecarNames,
  type SidecarOptions,
} from "../agent/mod.ts";

/** Everything the agent's parts are rendered from, and nothing else. Plain JSON data only. */
export interface RenderInput {
  /** The profile after the pod's annotations (image, log dir, resources). */
  profile: Profile;
  names: SidecarNames;
  sidecar: SidecarOptions;
  /** What the inline agent config is rendered from; absent when the profile names a ConfigMap. */
  pipeline?: Pipeline;
}

/** The rendered parts; deeply frozen, shared by every pod with the same input. */
export interface Rendered {
  sidecar: Container;
  /** The agent's files for the annotations; absent when the profile names a ConfigMap. */
  files?: AgentFiles;
  /** The JSON of `sidecar` and the files' texts, keyed by them, for the patch encoder. */
  encoded: ReadonlyMap<unknown, string>;
  /** Approximate size held: key, rendered text and encodings. */
  bytes: number;
}

const frozenIds = new WeakMap<object, string>();
let nextId = 0;

/**
 * The cache key of `value`: its JSON, except that a frozen object is written
 * as a token naming that object (`#12`), which JSON never starts with. A
 * frozen object cannot change, so its token stands for its content; an equal
 * but different object only misses the cache. Only deeply frozen data may be
 * frozen here (the config is).
 */
export function renderKey(value: unknown): string {
  if (typeof value !== "object" || value === null) return JSON.stringify(value) ?? "null";
  if (Object.isFrozen(value)) {
    let id = frozenIds.get(value);
    if (id === undefined) frozenIds.set(value, id = `#${nextId++}`);
    return id;
  }
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      out += `${i > 0 ? "," : ""}${v === undefined ? "null" : renderKey(v)}`;
    }
    return out + "]";
  }
  let out = "{";
  const record = value as Record<string, unknown>;
  for (const k in record) {
    const v = record[k];
    if (v === undefined || typeof v === "function") continue;
    out += `${out.length > 1 ? "," : ""}${JSON.stringify(k)}:${renderKey(v)}`;
  }
  return out + "}";
}

/** Renders the agent's parts for `input`, uncached. */
export function renderAgent(input: RenderInput): Rendered {
  const { profile, names, sidecar: options, pipeline } = input;
  const sidecar = deepFreeze(renderSidecar(profile, names, options));
  const encoded = new Map<unknown, string>([[sidecar, JSON.stringify(sidecar)]]);
  let bytes = encoded.get(sidecar)!.length;
  const rendered: Rendered = { sidecar, encoded, bytes };
  if (pipeline) {
    const files = renderAgentFiles(profile.agent, pipeline);
    for (const text of [files.config, files.extra?.text]) {
      if (text === undefined) continue;
      const json = JSON.stringify(text);
      encoded.set(text, json);
      bytes += text.length + json.length;
    }
    rendered.files = files;
  }
  rendered.bytes = bytes;
  return Object.freeze(rendered);
}

/** Renderings kept per config at most; a stream of distinct pods evicts the oldest. */
export const RENDER_CACHE_ENTRIES = 256;
/** Bytes kept per config at most (approximate: string lengths). */
export const RENDER_CACHE_BYTES = 4 * 2 ** 20;

/** A least-recently-used cache of renderings, bounded by entries and bytes. */
export class RenderCache {
  readonly #entries = new Map<string, Rendered>();
  #bytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    readonly maxEntries: number = RENDER_CACHE_ENTRIES,
    readonly maxBytes: number = RENDER_CACHE_BYTES,
  ) {}

  /** Entries held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held (approximate). */
  get bytes(): number {
    return this.#bytes;
  }

  /** The rendering of `input`, from the cache when an equal input was rendered before. */
  get(input: RenderInput, render: (input: RenderInput) => Rendered = renderAgent): Rendered {
    const key = renderKey(input);
    const found = this.#entries.get(key);
    if (found) {
      this.hits++;
      // Re-inserted last: Map iteration order is the LRU order.
      this.#entries.delete(key);
      this.#entries.set(key, found);
      return found;
    }
    this.misses++;
    const rendered = render(input);
    const cost = rendered.bytes + key.length;
    if (cost > this.maxBytes) return rendered;
    this.#entries.set(key, rendered);
    this.#bytes += cost;
    for (const [k, v] of this.#entries) {
      if (this.#entries.size <= this.maxEntries && this.#bytes <= this.maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= v.bytes + k.length;
    }
    return rendered;
  }
}

// Keyed by the config object: a reload brings a new one, and the old cache goes with it.
const caches = new WeakMap<Config, RenderCache>();

/** The rendering of `input` under `config`, cached until the config is replaced. */
export function renderFor(config: Config, input: RenderInput): Rendered {
  let cache = caches.get(config);
  if (!cache) caches.set(config, cache = new RenderCache());
  return cache.get(input);
}
