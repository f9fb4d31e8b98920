/**
 * File watching for reloads. Kubernetes updates Secret and ConfigMap volumes
 * by swapping a `..data` symlink, so the watch is on the directories, and
 * bursts of events are coalesced.
 * @module
 */
import type { Logger } from "../observe/mod.ts";

/** How {@link watchFiles} reports and coalesces. */
export interface WatchOptions {
  /** Told when the watch stops on its own: reloads of these files then stop. */
  log: Logger;
  /** Events closer together than this become one `onChange`. */
  debounceMs?: number;
  /** A seam for tests; default `Deno.watchFs`. */
  watch?: (dirs: string[]) => AsyncIterable<unknown> & { close(): void };
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/**
 * Calls `onChange` (debounced) whenever anything changes in the directories
 * holding `paths`. Returns a handle whose `close()` stops watching. A watch
 * that ends or fails by itself is logged as an error: hot reload must not stop
 * silently.
 */
export function watchFiles(
  paths: readonly string[],
  onChange: () => void,
  options: WatchOptions,
): { close(): void } {
  const { log, debounceMs = 100 } = options;
  const dirs = [...new Set(paths.map(dirOf))];
  const watcher = (options.watch ?? ((d) => Deno.watchFs(d, { recursive: false })))(dirs);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  (async () => {
    let error: unknown;
    try {
      for await (const _event of watcher) {
        clearTimeout(timer);
        timer = setTimeout(onChange, debounceMs);
      }
    } catch (err) {
      error = err;
    }
    if (!closed) {
      log.error("file watch stopped; changes to these files are no longer reloaded", {
        paths,
        error: error === undefined ? "the watch ended" : String(error),
      });
    }
  })();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      try {
        watcher.close();
      } catch {
        // Already closed: nothing left to stop.
      }
    },
  };
}
