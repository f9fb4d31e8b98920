/**
 * The agent's parts of a patch, rendered once per config: the agent config
 * text and the sidecar container depend only on the profile (after the pod's
 * annotations), the names chosen, the app containers and who the agent runs
 * as, so pods alike share one rendering. The input is built in one place
 * ({@link RenderInput}) and the cache key is its JSON, so an input added to
 * the renderers later is part of the key without anyone remembering it.
 * @module
 */
import type { Container } from "kubernetes-types/core/v1.d.ts";
import { type Config, deepFreeze, type Profile } from "../config/mod.ts";
import {
  fluentBitConfig,
  fluentdConfig,
  type Pipeline,
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
  /** The agent config for the annotation; absent when the profile names a ConfigMap. */
  configText?: string;
  /** The JSON of `sidecar` and `configText`, keyed by them, for the patch encoder. */
  encoded: ReadonlyMap<unknown, string>;
  /** Approximate size held: key, rendered text and encodings. */
  bytes: number;
}

/** Renders the agent's parts for `input`, uncached. */
export function renderAgent(input: RenderInput): Rendered {
  const { profile, names, sidecar: options, pipeline } = input;
  const sidecar = deepFreeze(renderSidecar(profile, names, options));
  const encoded = new Map<unknown, string>([[sidecar, JSON.stringify(sidecar)]]);
  let bytes = encoded.get(sidecar)!.length;
  const rendered: Rendered = { sidecar, encoded, bytes };
  if (pipeline) {
    const text = profile.agent === "fluentd" ? fluentdConfig(pipeline) : fluentBitConfig(pipeline);
    const json = JSON.stringify(text);
    encoded.set(text, json);
    rendered.configText = text;
    bytes += text.length + json.length;
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
    const key = JSON.stringify(input);
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
