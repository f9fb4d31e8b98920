/**
 * No import cycles in `main.ts`, `cli/` and `lib/`, between modules or
 * between `lib/` folders: the graph comes from `deno info --json`, so it is
 * the one Deno itself resolves, type-only imports included.
 * @module
 */
import assert from "node:assert/strict";
import { exec, REPO_ROOT } from "../../testing/process.ts";

/** Module or folder → what it imports. */
type Graph = Map<string, Set<string>>;

/** The first cycle found, as `a → b → … → a`, or `undefined` when the graph has none. */
export function findCycle(graph: Graph): string[] | undefined {
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === "done") return undefined;
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    state.set(node, "open");
    path.push(node);
    for (const next of [...(graph.get(node) ?? [])].sort()) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const node of [...graph.keys()].sort()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

const ROOT_URL = new URL(`file://${REPO_ROOT}/`).href;
const isOwn = (specifier: string) =>
  specifier.startsWith(ROOT_URL) &&
  /^(main\.ts|cli\/|lib\/)/.test(specifier.slice(ROOT_URL.length));

/** Every non-test module of main.ts, cli/ and lib/, and what each imports of them. */
async function moduleGraph(): Promise<Graph> {
  const files: string[] = ["main.ts"];
  for (const dir of ["cli", "lib"]) {
    const list = await exec(
      "git",
      ["ls-files", "--cached", "--others", "--exclude-standard", dir],
      {
        cwd: REPO_ROOT,
      },
    );
    files.push(...list.stdout.split("\n").filter((f) => /\.ts$/.test(f) && !/_test\.ts$/.test(f)));
  }
  // One root that imports them all, so one `deno info` sees modules no entry point reaches.
  const dir = await Deno.makeTempDir();
  try {
    const root = `${dir}/all.ts`;
    await Deno.writeTextFile(
      root,
      files.map((f) => `import "${new URL(f, ROOT_URL).href}";\n`).join(""),
    );
    const info = await exec(Deno.execPath(), [
      "info",
      "--json",
      `--config=${REPO_ROOT}/deno.json`,
      root,
    ]);
    assert.equal(info.code, 0, info.stderr);
    const graph: Graph = new Map();
    const { modules } = JSON.parse(info.stdout) as {
      modules: Array<{
        specifier: string;
        dependencies?: Array<{ code?: { specifier: string }; type?: { specifier: string } }>;
      }>;
    };
    for (const m of modules) {
      if (!isOwn(m.specifier)) continue;
      const deps = new Set<string>();
      for (const d of m.dependencies ?? []) {
        for (const s of [d.code?.specifier, d.type?.specifier]) if (s && isOwn(s)) deps.add(s);
      }
      graph.set(
        m.specifier.slice(ROOT_URL.length),
        new Set([...deps].map((s) => s.slice(ROOT_URL.length))),
      );
    }
    assert.ok(graph.size >= files.length, `deno info saw ${graph.size} of ${files.length} modules`);
    return graph;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `lib/<folder>` of a module in a lib folder, else `undefined` (lib/mod.ts, cli/, main.ts). */
const folderOf = (module: string) => /^lib\/([^/]+)\//.exec(module)?.[1];

/** The folders of `lib/` and which others each imports. */
function folderGraph(modules: Graph): Graph {
  const graph: Graph = new Map();
  for (const [module, deps] of modules) {
    const from = folderOf(module);
    if (from === undefined) continue;
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const d of deps) {
      const to = folderOf(d);
      if (to !== undefined && to !== from) edges.add(to);
    }
  }
  return graph;
}

Deno.test("findCycle() names the cycle, and finds none in a layered graph", () => {
  const g = (edges: Record<string, string[]>): Graph =>
    new Map(Object.entries(edges).map(([k, v]) => [k, new Set(v)]));
  assert.deepEqual(findCycle(g({ a: ["b"], b: ["c"], c: ["a"], d: ["a"] })), ["a", "b", "c", "a"]);
  assert.deepEqual(findCycle(g({ a: ["a"] })), ["a", "a"]);
  assert.equal(findCycle(g({ a: ["b", "c"], b: ["c"], c: [] })), undefined);
});

Deno.test("main.ts, cli/ and lib/ import no module that imports them back", async () => {
  const modules = await moduleGraph();
  const cycle = findCycle(modules);
  assert.equal(cycle, undefined, `import cycle: ${cycle?.join(" → ")}`);

  const folders = folderGraph(modules);
  const folderCycle = findCycle(folders);
  assert.equal(
    folderCycle,
    undefined,
    `lib/ folders import each other in a circle: ${folderCycle?.join(" → ")}`,
  );
  // Every module sits in a folder by job; only the public surface stays at the top.
  const loose = [...modules.keys()].filter((m) => /^lib\/[^/]+$/.test(m) && m !== "lib/mod.ts");
  assert.deepEqual(loose, [], "modules loose at the top of lib/");
  for (const folder of folders.keys()) {
    assert.ok(modules.has(`lib/${folder}/mod.ts`), `lib/${folder}/ has no mod.ts`);
  }
});
