/**
 * Command line: `serve` (the webhook over TLS), `inject` (offline, the same
 * `inject()` on a manifest) and `audit` (existing pods without the agent).
 * Flags are parsed in `cli/options.ts`; exit codes are decided here only.
 * @module
 */
import {
  ConfigSyntaxError,
  InvalidConfigError,
  InvalidPodError,
  KubeconfigError,
  writeAllSync,
} from "./lib/mod.ts";
import { type Command, parseCommand, UsageError } from "./cli/options.ts";
import { VERSION } from "./cli/version.ts";

export { VERSION };

const USAGE = `sidecar-injector ${VERSION}

Usage:
  main.ts serve --cert FILE --key FILE [--port 8443] [--host 0.0.0.0] [--config FILE]
                [--drain-delay-ms 5000] [--max-in-flight 512] [--memory-budget-mib 4]
                [--max-connections 1024] [--metrics-port N]
                [--log-level info] [--audit-interval 5m [--kubeconfig FILE]]
  main.ts inject -f FILE|- [-o yaml|json] [--config FILE]
  main.ts audit [--kubeconfig FILE] [--context NAME] [-n NS | -A] [-o table|json]
                [--config FILE] [--webhook sidecar-injector] [--injector-namespace NS]

serve    Serve the webhook over TLS: POST /mutate, GET /healthz, /readyz, /metrics.
         Reloads the cert/key and the config when their files change.
         On SIGTERM/SIGINT: readiness fails, answers carry "Connection: close" for
         the drain delay, then the listener closes, in-flight reviews finish, exit 0.
inject   Print the manifest (Pod, Deployment, StatefulSet, DaemonSet, Job, CronJob, ...)
         with the sidecar injected into its pod template. "-" reads stdin.
audit    List existing pods the injector should have given the agent and did not
         (escaped), pods with an agent from an older injector or another image than
         the config (drifted), and check the webhook's caBundle against its serving
         certificate. Config: the cluster's ConfigMap unless --config.
         Exit 0 nothing found, 1 something found, 2 error.
`;

/**
 * Exit codes: 0 done, 1 failed, 2 the input (flags, config, manifest) is wrong.
 * `audit` uses 1 for "found something", so every error of it is 2.
 */
const EXIT_FAILED = 1;
const EXIT_BAD_INPUT = 2;

const encoder = new TextEncoder();
const write = (w: { writeSync(p: Uint8Array): number }, s: string) =>
  writeAllSync(w, encoder.encode(s));

/** Errors that mean "what you gave me is wrong", not "something broke". */
function isInputError(err: unknown): boolean {
  return err instanceof InvalidConfigError || err instanceof ConfigSyntaxError ||
    err instanceof InvalidPodError || err instanceof KubeconfigError ||
    (err instanceof Error && err.name === "ManifestSyntaxError");
}

async function run(command: Command): Promise<number> {
  switch (command.name) {
    case "help":
      write(Deno.stdout, USAGE);
      return 0;
    case "serve": {
      // Loaded on demand: `inject` never pays for the server, `serve` never for YAML output.
      const { serve } = await import("./cli/serve.ts");
      return await serve(command.options);
    }
    case "inject": {
      const { injectCommand } = await import("./cli/inject.ts");
      return await injectCommand(command.options);
    }
    case "audit": {
      const { auditCommand } = await import("./cli/audit.ts");
      return await auditCommand(command.options);
    }
  }
}

/** Runs the CLI; returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let command: Command | undefined;
  try {
    command = parseCommand(args);
    return await run(command);
  } catch (err) {
    if (err instanceof UsageError) {
      write(Deno.stderr, `error: ${err.message}\n\n${USAGE}`);
      return EXIT_BAD_INPUT;
    }
    write(Deno.stderr, `error: ${err instanceof Error ? err.message : String(err)}\n`);
    return isInputError(err) || command?.name === "audit" ? EXIT_BAD_INPUT : EXIT_FAILED;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
