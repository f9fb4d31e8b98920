/**
 * File watching for reloads. Kubernetes updates Secret and ConfigMap volumes
 * by swapping a `..data` symlink, so the watch is on the directories, and
 * bursts of events are coalesced.
 * @module
 */

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

/**
 * Calls `onChange` (debounced) whenever anything changes in the directories
 * holding `paths`. Returns a handle whose `close()` stops watching.
 */
export function watchFiles(
  paths: readonly string[],
  onChange: () => void,
  debounceMs = 100,
): { close(): void } {
  const dirs = [...new Set(paths.map(dirOf))];
  const watcher = Deno.watchFs(dirs, { recursive: false });
  let timer: ReturnType<typeof setTimeout> | undefined;
  (async () => {
    try {
      for await (const _event of watcher) {
        clearTimeout(timer);
        timer = setTimeout(onChange, debounceMs);
      }
    } catch {
      // closed
    }
  })();
  return {
    close() {
      clearTimeout(timer);
      try {
        watcher.close();
      } catch {
        // already closed
      }
    },
  };
}
