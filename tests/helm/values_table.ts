/**
 * The values table of docs/install-helm.md, generated from the `# --` comments of the chart's
 * values.yaml (the comment above a key describes it; its default comes from the file itself).
 * `tests/helm/values_table_test.ts` checks the doc holds exactly this table and that every value
 * is described. Rewrite the doc's table with:
 *
 *   deno run -R -W tests/helm/values_table.ts && deno fmt docs/install-helm.md
 * @module
 */
import { load } from "js-yaml";

/** One documented value. */
export interface ValueRow {
  /** Dotted path, e.g. `webhook.failurePolicy`. */
  path: string;
  description: string;
  default: unknown;
}

const BEGIN = "<!-- values-table:begin (tests/helm/values_table.ts) -->";
const END = "<!-- values-table:end -->";

/** The documented values of a values.yaml text, in file order. */
export function documentedValues(valuesYaml: string): ValueRow[] {
  const values = load(valuesYaml) as Record<string, unknown>;
  const rows: ValueRow[] = [];
  const stack: { indent: number; key: string }[] = [];
  let pending: string | undefined;
  for (const line of valuesYaml.split("\n")) {
    const doc = line.match(/^\s*# -- (.*)$/);
    if (doc) {
      pending = doc[1];
      continue;
    }
    const k = line.match(/^(\s*)([A-Za-z0-9_.-]+):/);
    if (!k) continue;
    const indent = k[1]!.length;
    while (stack.length && stack.at(-1)!.indent >= indent) stack.pop();
    stack.push({ indent, key: k[2]! });
    if (pending !== undefined) {
      const path = stack.map((s) => s.key);
      rows.push({ path: path.join("."), description: pending, default: at(values, path) });
      pending = undefined;
    }
  }
  return rows;
}

function at(values: unknown, path: string[]): unknown {
  let v = values;
  for (const p of path) v = (v as Record<string, unknown>)[p];
  return v;
}

/** Dotted paths of every leaf value (scalars, lists, empty maps). */
export function leafPaths(v: unknown, prefix = ""): string[] {
  if (typeof v !== "object" || v === null || Array.isArray(v) || Object.keys(v).length === 0) {
    return [prefix];
  }
  return Object.entries(v).flatMap(([k, x]) => leafPaths(x, prefix ? `${prefix}.${k}` : k));
}

const cell = (s: string): string => s.replaceAll("|", "\\|");

function showDefault(v: unknown): string {
  const json = JSON.stringify(v);
  if (json === undefined) return "";
  if (json.length > 40) return "see values.yaml";
  return "`" + cell(json) + "`";
}

/** The markdown table, with its begin/end markers. */
export function valuesTable(valuesYaml: string): string {
  const lines = [
    BEGIN,
    "| value | default | meaning |",
    "| --- | --- | --- |",
    ...documentedValues(valuesYaml).map((r) =>
      `| \`${r.path}\` | ${showDefault(r.default)} | ${cell(r.description)} |`
    ),
    END,
  ];
  return lines.join("\n");
}

/** The table currently in a markdown document, or undefined. */
export function tableIn(markdown: string): string | undefined {
  const start = markdown.indexOf(BEGIN);
  const end = markdown.indexOf(END);
  return start < 0 || end < start ? undefined : markdown.slice(start, end + END.length);
}

/**
 * The table's rows as cell lists, whatever its padding (`deno fmt` aligns the columns of the doc's
 * table, the generator does not).
 */
export function tableRows(table: string): string[][] {
  return table.split("\n")
    .filter((l) => l.startsWith("|") && !/^\|[\s|-]+\|$/.test(l))
    .map((l) => l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()));
}

/** Replaces the table in a markdown document. */
export function withTable(markdown: string, table: string): string {
  const current = tableIn(markdown);
  if (current === undefined) throw new Error(`no ${BEGIN} ... ${END} in the document`);
  return markdown.replace(current, table);
}

if (import.meta.main) {
  const root = new URL("../../", import.meta.url);
  const values = Deno.readTextFileSync(new URL("charts/sidecar-injector/values.yaml", root));
  const docPath = new URL("docs/install-helm.md", root);
  Deno.writeTextFileSync(docPath, withTable(Deno.readTextFileSync(docPath), valuesTable(values)));
}
