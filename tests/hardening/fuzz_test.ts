/**
 * A bounded, seeded mutation fuzzer for the handler. Starts from valid reviews,
 * mutates them (delete a key, replace a value with random JSON, duplicate an
 * array element, flip a character, truncate) and asserts the handler never
 * throws and never answers 5xx (and that 200s are valid, their patch applying).
 * Failing inputs are saved to `testdata/fuzz/crash-<hash>.json` and replayed
 * by the second test. `FUZZ_ITERATIONS` (default 3000) and `FUZZ_SEED` tune it.
 * @module
 */
import { say } from "../../testing/process.ts";
import assert from "node:assert/strict";
import {
  checkAnswer,
  jobReview,
  makeHandler,
  mutateRequest,
  nginxReview,
  prng,
  richReview,
  sha256,
} from "./_util.ts";

const ITERATIONS = Number(Deno.env.get("FUZZ_ITERATIONS") ?? 3000);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 0x5eed);
const FUZZ_DIR = new URL("../../testdata/fuzz/", import.meta.url);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Rand = () => number;

const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

const KEYS = [
  "name",
  "containers",
  "initContainers",
  "volumes",
  "volumeMounts",
  "mountPath",
  "annotations",
  "labels",
  "metadata",
  "spec",
  "uid",
  "kind",
  "operation",
  "__proto__",
  "constructor",
  "prototype",
  "sidecar-injector.io/containers",
  "sidecar-injector.io/log-dir",
  "sidecar-injector.io/profile",
  "sidecar-injector.io/status",
  "sidecar-injected",
  "a/b~c",
  "",
];
const STRINGS = [
  "",
  "nginx",
  "fluentd",
  "app-logs",
  "/var/log/app",
  "/fluentd/etc",
  "CREATE",
  "Pod",
  "v1",
  "Job",
  "true",
  "false",
  "kube-system",
  "\u0000",
  "\ud800",
  "😀",
  "~1/~0",
  "1e999",
  "9".repeat(400),
  "x".repeat(70_000),
];

function randomJson(rand: Rand, depth = 0): Json {
  const r = rand();
  if (depth > 4 || r < 0.45) {
    const s = rand();
    if (s < 0.1) return null;
    if (s < 0.2) return rand() < 0.5;
    if (s < 0.35) return pick(rand, [0, -1, 1.5, 2 ** 53, -0, 1e308, Number.MIN_VALUE]);
    if (s < 0.7) return pick(rand, STRINGS);
    return Array.from(
      { length: Math.floor(rand() * 12) },
      () => String.fromCharCode(Math.floor(rand() * 0x3000)),
    ).join("");
  }
  if (r < 0.7) {
    return Array.from({ length: Math.floor(rand() * 4) }, () => randomJson(rand, depth + 1));
  }
  const o: Record<string, Json> = {};
  for (let i = Math.floor(rand() * 4); i > 0; i--) {
    Object.defineProperty(o, pick(rand, KEYS), {
      value: randomJson(rand, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return o;
}

/** Every container (object or array) in the tree, with its parent path. */
function containersOf(root: Json): Array<Json[] | Record<string, Json>> {
  const out: Array<Json[] | Record<string, Json>> = [];
  const walk = (v: Json) => {
    if (v === null || typeof v !== "object") return;
    out.push(v);
    for (const child of Array.isArray(v) ? v : Object.values(v)) walk(child);
  };
  walk(root);
  return out;
}

/** One random mutation; returns the new body text. */
function mutate(rand: Rand, doc: Json, text: string | undefined): { doc: Json; text?: string } {
  const op = rand();
  if (text !== undefined && op < 0.15) {
    // Flip one character of the serialised JSON.
    const i = Math.floor(rand() * text.length);
    const c = pick(rand, ['"', "{", "}", "[", "]", ",", ":", "\\", "0", "x", " ", "\u0000", "é"]);
    return { doc, text: text.slice(0, i) + c + text.slice(i + 1) };
  }
  if (text !== undefined && op < 0.22) {
    return { doc, text: text.slice(0, Math.floor(rand() * text.length)) };
  }
  const nodes = containersOf(doc);
  // Bias towards the pod: most nodes are below request.object anyway.
  const node = pick(rand, nodes);
  if (Array.isArray(node)) {
    const choice = rand();
    if (node.length === 0 || choice < 0.3) {
      node.push(randomJson(rand));
    } else if (choice < 0.6) {
      const i = Math.floor(rand() * node.length);
      node.splice(i, 0, structuredClone(node[i]!)); // duplicate an element
    } else if (choice < 0.8) {
      node.splice(Math.floor(rand() * node.length), 1);
    } else {
      node[Math.floor(rand() * node.length)] = randomJson(rand);
    }
    return { doc };
  }
  const keys = Object.keys(node);
  const choice = rand();
  if (keys.length === 0 || choice < 0.2) {
    Object.defineProperty(node, pick(rand, KEYS), {
      value: randomJson(rand),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else if (choice < 0.5) {
    delete node[pick(rand, keys)];
  } else {
    node[pick(rand, keys)] = randomJson(rand);
  }
  return { doc };
}

const BASES = [nginxReview, richReview, jobReview];

/** The body of iteration `i` (deterministic for a seed). */
function generate(seed: number, i: number): string {
  const rand = prng(seed * 1_000_003 + i);
  let doc = pick(rand, BASES)() as Json;
  let text: string | undefined;
  const n = 1 + Math.floor(rand() * 3);
  for (let k = 0; k < n; k++) {
    const r = mutate(rand, doc, text ?? JSON.stringify(doc));
    doc = r.doc;
    if (r.text !== undefined) {
      text = r.text;
      break; // byte-level damage: no further structured mutation
    }
  }
  return text ?? JSON.stringify(doc);
}

async function probe(
  handler: (req: Request) => Promise<Response>,
  body: Uint8Array,
): Promise<{ status: number; problem?: string }> {
  let res: Response;
  try {
    res = await handler(mutateRequest(body as Uint8Array<ArrayBuffer>));
  } catch (err) {
    return { status: -1, problem: `handler threw: ${String(err)}` };
  }
  let text: string | undefined;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    text = undefined;
  }
  const problem = await checkAnswer(res, text);
  return problem === undefined ? { status: res.status } : { status: res.status, problem };
}

Deno.test(`fuzz: ${ITERATIONS} mutated reviews never make the handler throw or answer 5xx`, async () => {
  const { handler, log } = makeHandler();
  const enc = new TextEncoder();
  const byStatus: Record<string, number> = {};
  const failures: string[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const body = enc.encode(generate(SEED, i));
    const { status, problem } = await probe(handler, body);
    byStatus[status] = (byStatus[status] ?? 0) + 1;
    if (problem !== undefined) {
      const file = new URL(`crash-${(await sha256(body)).slice(0, 16)}.json`, FUZZ_DIR);
      await Deno.mkdir(FUZZ_DIR, { recursive: true });
      await Deno.writeFile(file, body);
      failures.push(`iteration ${i} [${status}] ${problem} -> ${file.pathname}`);
    }
  }
  const internal = log.lines.filter((l) => l.level === "error").length;
  say(
    `fuzz: seed=${SEED} iterations=${ITERATIONS} by status ${
      JSON.stringify(byStatus)
    } internal errors logged=${internal}`,
  );
  assert.deepEqual(failures, [], `${failures.length} failing inputs saved`);
  assert.equal(internal, 0, "the handler logged internal errors (a throw was caught)");
});

Deno.test("fuzz: every saved input in testdata/fuzz/ replays without a throw or 5xx", async () => {
  const { handler } = makeHandler();
  const failures: string[] = [];
  let replayed = 0;
  for await (const entry of Deno.readDir(FUZZ_DIR)) {
    if (!entry.isFile || !entry.name.endsWith(".json")) continue;
    const body = await Deno.readFile(new URL(entry.name, FUZZ_DIR));
    const { status, problem } = await probe(handler, body);
    replayed++;
    if (problem !== undefined) failures.push(`${entry.name} [${status}]: ${problem}`);
  }
  assert.ok(replayed > 0, "no fixtures in testdata/fuzz/");
  assert.deepEqual(failures, []);
});
