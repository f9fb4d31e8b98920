/**
 * The server command exactly as `deno task serve` runs it (environment,
 * runtime flags, V8 flags and the `serve` permission set), read from
 * deno.json so tests and the benchmark start the server the way users and
 * the Dockerfile do.
 * @module
 */

const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));

/**
 * Splits the `serve` task into its environment (`NAME=value` before `deno`),
 * Deno's arguments before the script (`run`, `--frozen`, `--v8-flags=...`,
 * `-P=serve`) and the script with its command.
 */
export function serveCommand(): {
  env: Record<string, string>;
  runtime: string[];
  script: string[];
} {
  const task: unknown = config.tasks?.serve;
  if (typeof task !== "string") throw new Error("deno.json has no serve task");
  const tokens = task.trim().split(/\s+/);
  const env: Record<string, string> = {};
  while (tokens[0] !== undefined && /^[A-Z_][A-Z0-9_]*=/.test(tokens[0])) {
    const [name = "", ...value] = (tokens.shift() ?? "").split("=");
    env[name] = value.join("=");
  }
  if (tokens[0] !== "deno") throw new Error(`serve task does not start with deno: ${task}`);
  const at = tokens.indexOf("main.ts");
  if (at < 0) throw new Error(`serve task does not run main.ts: ${task}`);
  return { env, runtime: tokens.slice(1, at), script: tokens.slice(at) };
}

/** `Deno.execPath()` arguments for `main.ts serve ...args`, with `extra` runtime flags. */
export function serveArgs(args: readonly string[], extra: readonly string[] = []): string[] {
  const { runtime, script } = serveCommand();
  return [...runtime, ...extra, ...script, ...args];
}

/** The environment the `serve` task sets, on top of `base`. */
export function serveEnv(base: Record<string, string> = {}): Record<string, string> {
  return { ...base, ...serveCommand().env };
}
