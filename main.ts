/**
 * Command line: `serve` (the webhook over TLS) and `inject` (offline, the same
 * `inject()` on a manifest, like `istioctl kube-inject`). All I/O lives here.
 * @module
 */
import {
  ConfigSource,
  createHandler,
  createLogger,
  DEFAULT_MAX_IN_FLIGHT,
  defaultConfig,
  injectWorkload,
  type Level,
  loadConfig,
  type Logger,
  Metrics,
  SERVER_DEFAULTS,
  TlsServer,
  watchFiles,
  writeAllSync,
} from "./lib/mod.ts";

/** Reported in `/metrics` build info and the startup log. */
export const VERSION = "0.1.0";

const USAGE = `sidecar-injector ${VERSION}

Usage:
  main.ts serve --cert FILE --key FILE [--port 8443] [--host 0.0.0.0] [--config FILE]
                [--drain-delay-ms 5000] [--max-in-flight 512]
                [--max-connections 1024] [--metrics-port N]
                [--log-level info]
  main.ts inject -f FILE|- [-o yaml|json] [--config FILE]

serve    Serve the webhook over TLS: POST /mutate, GET /healthz, /readyz, /metrics.
         Reloads the cert/key and the config when their files change.
         On SIGTERM/SIGINT: readiness fails, answers carry "Connection: close" for
         the drain delay, then the listener closes, in-flight reviews finish, exit 0.
inject   Print the manifest (Pod, Deployment, StatefulSet, DaemonSet, Job, CronJob, ...)
         with the sidecar injected into its pod template. "-" reads stdin.
`;

const FLAGS: Record<string, { takes: boolean; alias?: string }> = {
  port: { takes: true },
  host: { takes: true },
  cert: { takes: true },
  key: { takes: true },
  config: { takes: true },
  "drain-delay-ms": { takes: true },
  "max-in-flight": { takes: true },
  "max-connections": { takes: true },
  "metrics-port": { takes: true },
  "log-level": { takes: true },
  filename: { takes: true, alias: "f" },
  output: { takes: true, alias: "o" },
  help: { takes: false, alias: "h" },
};

class UsageError extends Error {}

/** Parses `--flag value`, `--flag=value` and `-f value`; a repeated flag keeps its last value. */
export function parseArgs(
  args: readonly string[],
): { command: string; flags: Map<string, string> } {
  const flags = new Map<string, string>();
  let command = "";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (!arg.startsWith("-") || arg === "-") {
      if (command) throw new UsageError(`unexpected argument ${arg}`);
      command = arg;
      continue;
    }
    const [rawName = "", inline] = arg.replace(/^--?/, "").split(/=(.*)/s, 2);
    const name = Object.keys(FLAGS).find((k) => k === rawName || FLAGS[k]?.alias === rawName);
    if (!name) throw new UsageError(`unknown flag ${arg}`);
    if (!FLAGS[name]?.takes) {
      flags.set(name, "true");
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`${arg} needs a value`);
    flags.set(name, value);
  }
  return { command: command || "serve", flags };
}

function required(flags: Map<string, string>, name: string): string {
  const v = flags.get(name);
  if (!v) throw new UsageError(`--${name} is required`);
  return v;
}

function integer(
  flags: Map<string, string>,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer ${min}-${max}`);
  }
  return n;
}

function stdoutLogger(level: Level): Logger {
  return createLogger({ write: (bytes) => writeAllSync(Deno.stdout, bytes), level });
}

function exit(log: Logger, code: number): never {
  log.flush();
  Deno.exit(code);
}

async function serve(flags: Map<string, string>): Promise<void> {
  const level = flags.get("log-level") ?? "info";
  if (!["debug", "info", "warn", "error"].includes(level)) {
    throw new UsageError("--log-level must be debug|info|warn|error");
  }
  const log = stdoutLogger(level as Level);
  const certFile = required(flags, "cert");
  const keyFile = required(flags, "key");
  const configFile = flags.get("config");
  const hostname = flags.get("host") ?? "0.0.0.0";
  const port = integer(flags, "port", 8443, 0, 65535);
  const drainDelayMs = integer(flags, "drain-delay-ms", 5000, 0, 600_000);
  // Every flag is checked here, before anything starts: a bad value is a usage error (exit 2).
  const maxInFlight = integer(flags, "max-in-flight", DEFAULT_MAX_IN_FLIGHT, 1, 1_000_000);
  const maxConnections = integer(
    flags,
    "max-connections",
    SERVER_DEFAULTS.maxConnections,
    1,
    1_000_000,
  );
  const metricsPort = flags.has("metrics-port")
    ? integer(flags, "metrics-port", 0, 0, 65535)
    : undefined;
  // The injector never injects its own namespace, whatever the config says.
  const ownNamespace = Deno.env.get("POD_NAMESPACE");

  const metrics = new Metrics({ version: VERSION, deno: Deno.version.deno });
  let config: ConfigSource;
  try {
    config = await ConfigSource.open(configFile, {
      ownNamespace,
      onReload(result, error) {
        if (result === "unchanged") return;
        metrics.configReloads.inc({ result });
        if (result === "ok") log.info("config reloaded", { configFile });
        else {log.error("config reload rejected; keeping the last good config", {
            configFile,
            error,
          });}
      },
    });
  } catch (err) {
    log.error("invalid config; not starting", {
      error: err instanceof Error ? err.message : String(err),
    });
    exit(log, 2);
  }

  let stopping = false;
  const handler = createHandler({
    config: () => config.current,
    log,
    metrics,
    now: () => performance.now(),
    ready: () => !stopping,
    maxInFlight,
  });
  let server: TlsServer;
  try {
    server = await TlsServer.start({
      hostname,
      port,
      certFile,
      keyFile,
      handler,
      log,
      drainDelayMs,
      maxConnections,
      onCertReload: (ok) => metrics.certReloads.inc({ result: ok ? "ok" : "rejected" }),
    });
  } catch (err) {
    log.error("cannot start the TLS server", { error: String(err), certFile, keyFile });
    exit(log, 1);
  }

  // Optional plain-HTTP port for scrapers that do not speak the webhook's TLS: /metrics only.
  const metricsServer = metricsPort === undefined ? undefined : Deno.serve({
    hostname,
    port: metricsPort,
    onListen: (addr) =>
      log.info("metrics listening", { host: hostname, port: addr.port, tls: false }),
  }, (req) => {
    const path = new URL(req.url).pathname;
    return path === "/metrics" && req.method === "GET"
      ? handler(req)
      : Promise.resolve(new Response('{"error":"only GET /metrics here"}', { status: 404 }));
  });

  const certWatch = watchFiles([certFile, keyFile], () => void server.reload());
  const configWatch = configFile ? watchFiles([configFile], () => void config.reload()) : undefined;

  const stopped = Promise.withResolvers<void>();
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal, drainDelayMs });
    certWatch.close();
    configWatch?.close();
    await Promise.all([server.shutdown(), metricsServer?.shutdown()]);
    log.info("stopped");
    log.flush();
    stopped.resolve();
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => void stop(signal));
  }

  log.info("listening", {
    host: hostname,
    port: server.port,
    version: VERSION,
    config: configFile ?? "<defaults>",
    profile: config.current.defaultProfile,
  });
  // main() exits 0 once the drain is complete and the last log line is written.
  await stopped.promise;
}

async function injectCommand(flags: Map<string, string>): Promise<void> {
  const file = required(flags, "filename");
  const output = flags.get("output") ?? "yaml";
  if (output !== "yaml" && output !== "json") throw new UsageError("-o must be yaml or json");
  // Only the CLI needs these: loaded here, `serve` stays ~5 MB smaller.
  const [{ default: jsonpatch }, { dump, loadAll }] = await Promise.all([
    import("fast-json-patch"),
    import("js-yaml"),
  ]);
  const configFile = flags.get("config");
  const config = configFile ? await loadConfig(configFile) : defaultConfig();
  const text = file === "-"
    ? await new Response(Deno.stdin.readable).text()
    : await Deno.readTextFile(file);
  const docs = loadAll(text).flatMap((d) =>
    d !== null && typeof d === "object" && "kind" in d && d.kind === "List" && "items" in d &&
      Array.isArray(d.items)
      ? d.items
      : d === null || d === undefined
      ? []
      : [d]
  );
  const out: unknown[] = [];
  const err = (s: string) => writeAllSync(Deno.stderr, new TextEncoder().encode(s + "\n"));
  for (const doc of docs) {
    const result = injectWorkload(doc, config);
    for (const w of result.warnings) err(`Warning: ${w}`);
    if (result.decision === "skipped") err(`# not injected: ${result.reason}`);
    out.push(
      result.patch.length ? jsonpatch.applyPatch(doc, result.patch, true, false).newDocument : doc,
    );
  }
  const rendered = output === "json"
    ? JSON.stringify(
      out.length === 1 ? out[0] : { apiVersion: "v1", kind: "List", items: out },
      null,
      2,
    ) + "\n"
    : out.map((d) => dump(d, { noRefs: true, lineWidth: -1 })).join("---\n");
  writeAllSync(Deno.stdout, new TextEncoder().encode(rendered));
}

/** Runs the CLI; returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const write = (s: string) => writeAllSync(Deno.stderr, new TextEncoder().encode(s));
  try {
    const { command, flags } = parseArgs(args);
    if (flags.has("help") || command === "help") {
      writeAllSync(Deno.stdout, new TextEncoder().encode(USAGE));
      return 0;
    }
    if (command === "serve") await serve(flags);
    else if (command === "inject") await injectCommand(flags);
    else throw new UsageError(`unknown command ${command}`);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      write(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return err instanceof TypeError || err instanceof SyntaxError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
