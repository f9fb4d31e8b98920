import assert from "node:assert/strict";
import { ByteBudget } from "./budget.ts";
import { DeadlineSweeper } from "./deadline.ts";
import { readBody } from "./read_body.ts";
import { incomingOf } from "./web.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function post(body: BodyInit, headers: Record<string, string> = {}) {
  return incomingOf(new Request("http://x/", { method: "POST", body, headers }));
}

Deno.test("readBody() joins a body that arrives in several chunks", async () => {
  const parts = ["{", '"a":', "1}"].map((s) => new TextEncoder().encode(s));
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      const next = parts.shift();
      if (next) c.enqueue(next);
      else c.close();
    },
  });
  assert.equal(await readBody(post(body), { max: 100 }), '{"a":1}');
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

Deno.test("DeadlineSweeper keeps a deadline's time fixed however late it is armed", async () => {
  let t = 0;
  const sweeper = new DeadlineSweeper(() => t, 5, 20);
  const deadline = sweeper.after(10);
  t = 8;
  const fired = Promise.withResolvers<number>();
  deadline.arm(() => fired.resolve(t));
  t = 10;
  assert.equal(await fired.promise, 10, "fires 10 ms after it was made, not after it was armed");
  await sleep(60);
});

Deno.test("readBody() stops reading and answers 408 when the deadline expires", async () => {
  let pulls = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      pulls++;
      await sleep(20);
      c.enqueue(new Uint8Array(1));
    },
  });
  const sweeper = new DeadlineSweeper(() => performance.now(), 5, 10);
  await assert.rejects(readBody(post(body), { max: 1000, deadline: sweeper.after(50) }), {
    status: 408,
  });
  const seen = pulls;
  await sleep(100);
  assert.ok(pulls <= seen + 1, `kept reading after the deadline: ${seen} -> ${pulls}`);
});

Deno.test("readBody() reserves a declared length before reading, and a chunked body as it comes", async () => {
  const budget = new ByteBudget(1000);
  const deadline = new DeadlineSweeper(() => 0).after(1000);
  const declared = budget.lease();
  assert.equal(
    await readBody(post("x".repeat(300), { "content-length": "300" }), {
      max: 1000,
      deadline,
      lease: declared,
    }),
    "x".repeat(300),
  );
  assert.equal(declared.bytes, 300);
  const chunked = budget.lease();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array(100).fill(120));
      c.enqueue(new Uint8Array(100).fill(120));
      c.close();
    },
  });
  await readBody(post(body), { max: 1000, deadline, lease: chunked });
  assert.equal(chunked.bytes, 200);
  assert.equal(budget.used, 500);
  declared.release();
  chunked.release();
  assert.equal(budget.used, 0);
});

Deno.test("readBody() reads nothing while it waits for budget, and answers 503 at the deadline", async () => {
  let t = 0;
  const budget = new ByteBudget(100);
  const sweeper = new DeadlineSweeper(() => t, 1, 10);
  const holder = budget.lease();
  await holder.grow(100, sweeper.after(1000));
  let pulls = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      pulls++;
      c.enqueue(new Uint8Array(10));
      c.close();
    },
  }, { highWaterMark: 0 });
  const lease = budget.lease();
  const read = readBody(post(body, { "content-length": "10" }), {
    max: 1000,
    deadline: sweeper.after(50),
    lease,
  });
  await sleep(5);
  assert.equal(pulls, 0, "no byte read without budget");
  assert.equal(budget.waiting, 1);
  t = 50;
  await assert.rejects(read, { status: 503, reason: "memory_budget" });
  assert.equal(budget.waiting, 0);
  assert.equal(lease.bytes, 0);
  holder.release();
  assert.equal(budget.used, 0);
  await sleep(30);
});
