/**
 * The live config for a running server: the last good one, replaced on
 * `reload()` only when the file parses.
 * @module
 */
import { defaultConfig } from "./defaults.ts";
import { loadConfig, withExcludedNamespace } from "./parse.ts";
import type { Config } from "./types.ts";

/** The result of one reload. */
export type ReloadResult = "ok" | "unchanged" | "rejected";

/** How a {@link ConfigSource} reads its file and reports reloads. */
export interface ConfigSourceOptions {
  /** Reads the file; a seam for tests. Default `Deno.readTextFile`. */
  read?: (path: string) => Promise<string>;
  /** The injector's own namespace: always excluded, whatever the file says. */
  ownNamespace?: string | undefined;
  /** Called after every reload, with the reason when the new file was rejected. */
  onReload?: (result: ReloadResult, error?: string) => void;
}

/**
 * The live config. An invalid file leaves the current config serving.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConfigSource } from "./source.ts";
 * let text = "mode: classic\n";
 * const source = await ConfigSource.open("/cfg.yaml", { read: () => Promise.resolve(text) });
 * text = "mode: sometimes\n";
 * assert.equal(await source.reload(), "rejected");
 * assert.equal(source.current.mode, "classic");
 * ```
 */
export class ConfigSource {
  readonly #path: string | undefined;
  readonly #options: ConfigSourceOptions;
  #current: Config;
  #serialized: string;

  private constructor(path: string | undefined, options: ConfigSourceOptions, first: Config) {
    this.#path = path;
    this.#options = options;
    this.#current = first;
    this.#serialized = JSON.stringify(first);
  }

  /** Loads `path` (or the defaults when undefined); throws when it is invalid. */
  static async open(
    path: string | undefined,
    options: ConfigSourceOptions = {},
  ): Promise<ConfigSource> {
    return new ConfigSource(path, options, await ConfigSource.#load(path, options));
  }

  static async #load(path: string | undefined, options: ConfigSourceOptions): Promise<Config> {
    const config = path ? await loadConfig(path, options.read) : defaultConfig();
    return withExcludedNamespace(config, options.ownNamespace);
  }

  /** The file this source reads; undefined for the built-in defaults. */
  get path(): string | undefined {
    return this.#path;
  }

  /** The config to use now. */
  get current(): Config {
    return this.#current;
  }

  /** Re-reads the file; keeps the current config when the new one is invalid. */
  async reload(): Promise<ReloadResult> {
    let next: Config;
    try {
      next = await ConfigSource.#load(this.#path, this.#options);
    } catch (err) {
      this.#options.onReload?.("rejected", err instanceof Error ? err.message : String(err));
      return "rejected";
    }
    const serialized = JSON.stringify(next);
    if (serialized === this.#serialized) {
      this.#options.onReload?.("unchanged");
      return "unchanged";
    }
    this.#current = next;
    this.#serialized = serialized;
    this.#options.onReload?.("ok");
    return "ok";
  }
}
