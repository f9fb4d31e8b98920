/**
 * A structural check of a Fluentd `raw` output block, so that a typo fails
 * when the config is loaded instead of crashing every injected agent.
 * @module
 */

/** One `<name args>` or `</name>` line. */
const SECTION = /^<(\/?)([A-Za-z_][\w-]*)(?:\s+([^>]*))?>$/;

/**
 * Returns why `text` is not a well-formed Fluentd config fragment holding at
 * least one `<match>`: every line that starts a section is a complete tag,
 * sections close in order, and `<source>` is not allowed (the injector owns
 * the input).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkFluentdMatch } from "./raw_output.ts";
 * assert.equal(checkFluentdMatch("<match app.**>\n  @type null\n</match>"), undefined);
 * assert.match(checkFluentdMatch("<match app.**>\n  @type null\n</match") ?? "", /line 3/);
 * ```
 */
export function checkFluentdMatch(text: string): string | undefined {
  const open: Array<{ name: string; line: number }> = [];
  let matches = 0;
  const lines = text.split("\n");
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    const at = `line ${i + 1}`;
    if (!line.startsWith("<")) {
      if (open.length === 0 && line !== "" && !line.startsWith("#")) {
        return `${at}: ${JSON.stringify(line)} is outside any section`;
      }
      continue;
    }
    const m = SECTION.exec(line);
    if (!m) return `${at}: ${JSON.stringify(line)} is not a complete <section> or </section> tag`;
    const [, closing, name = ""] = m;
    if (closing) {
      const top = open.pop();
      if (!top) return `${at}: </${name}> closes nothing`;
      if (top.name !== name) return `${at}: </${name}> closes <${top.name}> of line ${top.line}`;
      continue;
    }
    if (open.length === 0) {
      if (name === "source") return `${at}: <source> is not allowed; the injector owns the input`;
      if (name === "match" || name === "label") matches++;
      else if (name !== "filter") return `${at}: <${name}> is not allowed at the top level`;
    }
    open.push({ name, line: i + 1 });
  }
  const top = open.pop();
  if (top) return `<${top.name}> of line ${top.line} is never closed`;
  if (matches === 0) return "must contain a <match> section";
  return undefined;
}
