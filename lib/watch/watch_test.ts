import assert from "node:assert/strict";
import { memoryLogger } from "../../testing/memory_logger.ts";
import { watchFiles } from "./watch.ts";

/** A watch that yields `events` and then fails with `error` (or ends). */
function fakeWatch(events: number, error?: Error) {
  let closed = false;
  return {
    close() {
      closed = true;
    },
    async *[Symbol.asyncIterator]() {
      for (let i = 0; i < events && !closed; i++) {
        await Promise.resolve();
        yield i;
      }
      if (error && !closed) throw error;
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 30));

Deno.test("watchFiles() coalesces a burst of events into one onChange", async () => {
  const log = memoryLogger();
  let changes = 0;
  const w = watchFiles(["/etc/x/config.yaml"], () => changes++, {
    log,
    debounceMs: 10,
    watch: () => fakeWatch(5),
  });
  await settle();
  w.close();
  assert.equal(changes, 1);
});

Deno.test("watchFiles() logs an error when the watch fails by itself", async () => {
  const log = memoryLogger();
  watchFiles(["/tls/tls.crt", "/tls/tls.key"], () => {}, {
    log,
    debounceMs: 1,
    watch: () => fakeWatch(0, new Error("inotify watch limit reached")),
  });
  await settle();
  assert.equal(log.lines.length, 1);
  assert.equal(log.lines[0]?.level, "error");
  assert.match(String(log.lines[0]?.error), /inotify watch limit reached/);
  assert.deepEqual(log.lines[0]?.paths, ["/tls/tls.crt", "/tls/tls.key"]);
});

Deno.test("watchFiles() is silent when closed on purpose", async () => {
  const log = memoryLogger();
  const w = watchFiles(["/a/b"], () => {}, { log, watch: () => fakeWatch(0) });
  w.close();
  await settle();
  assert.deepEqual(log.lines, []);
});
