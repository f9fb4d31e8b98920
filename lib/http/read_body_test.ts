import assert from "node:assert/strict";
import { DeadlineSweeper, readCapped } from "./read_body.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("readCapped() joins a body that arrives in several chunks", async () => {
  const parts = ["{", '"a":', "1}"].map((s) => new TextEncoder().encode(s));
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      const next = parts.shift();
      if (next) c.enqueue(next);
      else c.close();
    },
  });
  assert.equal(
    await readCapped(new Request("http://x/", { method: "POST", body }), 100),
    '{"a":1}',
  );
});

Deno.test("DeadlineSweeper fires expired deadlines, skips disarmed ones, and stops when idle", async () => {
  let t = 0;
  const sweeper = new DeadlineSweeper(() => t, 5, 20);
  const fired: string[] = [];
  sweeper.after(10).arm(() => fired.push("a"));
  const disarm = sweeper.after(10).arm(() => fired.push("b"));
  disarm();
  t = 11;
  await sleep(30);
  assert.deepEqual(fired, ["a"]);
  await sleep(60); // idle for longer than idleStopMs: the interval is gone (the sanitizer checks)
});

Deno.test("readCapped() stops reading and answers 408 when the deadline expires", async () => {
  let pulls = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      pulls++;
      await sleep(20);
      c.enqueue(new Uint8Array(1));
    },
  });
  const sweeper = new DeadlineSweeper(() => performance.now(), 5, 10);
  await assert.rejects(
    readCapped(new Request("http://x/", { method: "POST", body }), 1000, sweeper.after(50)),
    { status: 408 },
  );
  const seen = pulls;
  await sleep(100);
  assert.ok(pulls <= seen + 1, `kept reading after the deadline: ${seen} -> ${pulls}`);
});
