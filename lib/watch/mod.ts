/**
 * Watching files that change under a running server (the config file, the
 * serving certificate), including the symlink swaps of mounted volumes.
 * @module
 */
export { watchFiles, type WatchOptions } from "./watch.ts";
