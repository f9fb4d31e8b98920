/**
 * `serve`: the webhook over TLS until SIGTERM/SIGINT, then a drain. Returns the exit code.
 * @module
 */
import {
  auditCluster,
  ByteBudget,
  certExpiryMonitor,
  ConfigSource,
  createLogger,
  createRoutes,
  type Credentials,
  inClusterCredentials,
  INJECTOR_DEFAULTS,
  KubeClient,
  loadKubeconfig,
  type Logger,
  Metrics,
  metricsOnly,
  type PeriodicAudit,
  readRegistration,
  startPeriodicAudit,
  TlsServer,
  watchFiles,
  webHandler,
  writeAllSync,
} from "../lib/mod.ts";
import type { ServeOptions } from "./options.ts";
import { VERSION } from "./version.ts";

/** Exit code for a config that cannot be used: the same as a usage error. */
const EXIT_INVALID_CONFIG = 2;
/** Exit code when the listener cannot start (cert files, port). */
const EXIT_CANNOT_LISTEN = 1;

function stdoutLogger(options: ServeOptions): Logger {
  return createLogger({
    write: (bytes) => writeAllSync(Deno.stdout, bytes),
    level: options.logLevel,
  });
}

/** Runs the server; resolves with the exit code once it has stopped. */
export async function serve(options: ServeOptions): Promise<number> {
  const { certFile, keyFile, configFile, hostname, drainDelayMs } = options;
  const log = stdoutLogger(options);
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
    log.flush();
    return EXIT_INVALID_CONFIG;
  }

  // Off unless asked for: auditing needs API credentials, which the base deployment does not mount.
  let audit: { client: KubeClient; periodic?: PeriodicAudit } | undefined;
  if (options.auditIntervalMs !== undefined) {
    let credentials: Credentials;
    try {
      credentials = options.kubeconfig
        ? await loadKubeconfig([options.kubeconfig])
        : await inClusterCredentials();
    } catch (err) {
      log.error("cannot audit: no API credentials; not starting", {
        error: err instanceof Error ? err.message : String(err),
      });
      log.flush();
      return EXIT_INVALID_CONFIG;
    }
    audit = {
      client: new KubeClient(credentials, { userAgent: `sidecar-injector/${VERSION}` }),
    };
  }

  let stopping = false;
  const routes = createRoutes({
    config: () => config.current,
    log,
    metrics,
    now: () => performance.now(),
    ready: () => !stopping,
    maxInFlight: options.maxInFlight,
    budget: new ByteBudget(options.memoryBudgetBytes),
  });
  const certExpiry = certExpiryMonitor({ metrics, log });
  let server: TlsServer;
  try {
    server = await TlsServer.start({
      hostname,
      port: options.port,
      certFile,
      keyFile,
      routes,
      log,
      drainDelayMs,
      maxConnections: options.maxConnections,
      onCertReload: (ok) => metrics.certReloads.inc({ result: ok ? "ok" : "rejected" }),
      onCertLoaded: (cert) => certExpiry.update(cert),
    });
  } catch (err) {
    log.error("cannot start the TLS server", { error: String(err), certFile, keyFile });
    log.flush();
    certExpiry.stop();
    audit?.client.close();
    return EXIT_CANNOT_LISTEN;
  }

  // Optional plain-HTTP port for scrapers that do not speak the webhook's TLS: /metrics only.
  const metricsServer = options.metricsPort === undefined ? undefined : Deno.serve({
    hostname,
    port: options.metricsPort,
    onListen: (addr) =>
      log.info("metrics listening", { host: hostname, port: addr.port, tls: false }),
  }, metricsOnly(webHandler(routes)));

  const certWatch = watchFiles([certFile, keyFile], () => void server.reload(), { log });
  const configWatch = configFile
    ? watchFiles([configFile], () => void config.reload(), { log })
    : undefined;

  if (audit) {
    const { client } = audit;
    audit.periodic = startPeriodicAudit({
      intervalMs: options.auditIntervalMs ?? 0,
      metrics,
      log,
      run: async () =>
        await auditCluster({
          client,
          config: config.current,
          webhook: INJECTOR_DEFAULTS.webhook,
          registration: await readRegistration(client, INJECTOR_DEFAULTS.webhook),
        }),
    });
  }

  const stopped = Promise.withResolvers<void>();
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal, drainDelayMs });
    certWatch.close();
    configWatch?.close();
    certExpiry.stop();
    audit?.periodic?.stop();
    audit?.client.close();
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
    auditIntervalMs: options.auditIntervalMs ?? null,
  });
  await stopped.promise;
  return 0;
}
