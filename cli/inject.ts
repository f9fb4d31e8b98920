/**
 * `inject`: the same `inject()` on a manifest, offline (like `istioctl kube-inject`).
 * @module
 */
import { defaultConfig, injectWorkload, loadConfig, writeAllSync } from "../lib/mod.ts";
import type { InjectOptions } from "./options.ts";

/** The manifest is not YAML; `main` exits 2 on it, as on a bad pod. */
export class ManifestSyntaxError extends SyntaxError {
  override name = "ManifestSyntaxError";
}

const encoder = new TextEncoder();

/** Documents of a manifest, with `kind: List` flattened and empty documents dropped. */
function documents(loaded: unknown[]): unknown[] {
  return loaded.flatMap((d) =>
    d !== null && typeof d === "object" && "kind" in d && d.kind === "List" && "items" in d &&
      Array.isArray(d.items)
      ? d.items
      : d === null || d === undefined
      ? []
      : [d]
  );
}

/** Prints the manifest with the sidecar injected; warnings and skips go to stderr. */
export async function injectCommand(options: InjectOptions): Promise<number> {
  // Only the CLI needs these: loaded here, `serve` stays ~5 MB smaller.
  const [{ default: jsonpatch }, { dump, loadAll }] = await Promise.all([
    import("fast-json-patch"),
    import("js-yaml"),
  ]);
  const config = options.configFile ? await loadConfig(options.configFile) : defaultConfig();
  const text = options.file === "-"
    ? await new Response(Deno.stdin.readable).text()
    : await Deno.readTextFile(options.file);
  let loaded: unknown[];
  try {
    loaded = loadAll(text, { filename: options.file });
  } catch (err) {
    throw new ManifestSyntaxError(
      `${options.file}: not valid YAML: ${err instanceof Error ? err.message : err}`,
      { cause: err },
    );
  }
  const out: unknown[] = [];
  const err = (s: string) => writeAllSync(Deno.stderr, encoder.encode(s + "\n"));
  for (const doc of documents(loaded)) {
    const result = injectWorkload(doc, config);
    for (const w of result.warnings) err(`Warning: ${w}`);
    if (result.decision === "skipped") err(`# not injected: ${result.reason}`);
    out.push(
      result.patch.length ? jsonpatch.applyPatch(doc, result.patch, true, false).newDocument : doc,
    );
  }
  const rendered = options.output === "json"
    ? JSON.stringify(
      out.length === 1 ? out[0] : { apiVersion: "v1", kind: "List", items: out },
      null,
      2,
    ) + "\n"
    : out.map((d) => dump(d, { noRefs: true, lineWidth: -1 })).join("---\n");
  writeAllSync(Deno.stdout, encoder.encode(rendered));
  return 0;
}
