/**
 * The TLS listener around the handler: certificate reload without a restart,
 * and a drain that lets kept-alive clients leave before the listener closes.
 *
 * Reload starts a second `Deno.serve` on the same port (`reusePort`) with the
 * new pair, then retires the old one: it answers with `Connection: close` for
 * a drain delay, then shuts down gracefully, finishing in-flight requests.
 * rustls refuses a mismatched or half-written pair at listen time, so a bad
 * pair never replaces a good one.
 * @module
 */
import type { Logger } from "../log.ts";

/** Where the server listens and which files hold its pair. */
export interface TlsServerOptions {
  hostname: string;
  port: number;
  certFile: string;
  keyFile: string;
  handler: (req: Request) => Promise<Response>;
  log: Logger;
  /** How long a retiring listener keeps answering (with `Connection: close`) before it closes. */
  drainDelayMs: number;
  readFile?: (path: string) => Promise<string>;
  /** Called after every reload attempt. */
  onCertReload?: (ok: boolean) => void;
}

interface Generation {
  server: Deno.HttpServer<Deno.NetAddr>;
  cert: string;
  key: string;
  retiring: boolean;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A running TLS server. */
export class TlsServer {
  #current: Generation;
  #retired = new Set<Promise<void>>();
  #draining = false;
  #reloading: Promise<boolean> | undefined;
  readonly #stopped = Promise.withResolvers<void>();
  readonly #opts: TlsServerOptions;
  readonly port: number;

  private constructor(opts: TlsServerOptions, cert: string, key: string) {
    this.#opts = opts;
    this.#current = listen(opts, opts.port, cert, key, this);
    this.port = this.#current.server.addr.port;
  }

  /** Reads the pair and starts listening; throws when the pair is unusable. */
  static async start(opts: TlsServerOptions): Promise<TlsServer> {
    const read = opts.readFile ?? Deno.readTextFile;
    const [cert, key] = await Promise.all([read(opts.certFile), read(opts.keyFile)]);
    return new TlsServer(opts, cert, key);
  }

  /** True once `shutdown` began: responses carry `Connection: close`. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Re-reads the cert and key; when they changed and form a valid pair, new
   * connections get them. Returns false when the new pair was rejected.
   */
  reload(): Promise<boolean> {
    // Serialise: a burst of file events must not start several listeners.
    const run = async () => {
      const read = this.#opts.readFile ?? Deno.readTextFile;
      const { log } = this.#opts;
      let cert: string, key: string;
      try {
        [cert, key] = await Promise.all([read(this.#opts.certFile), read(this.#opts.keyFile)]);
      } catch (err) {
        log.error("certificate reload failed: cannot read files; keeping the current pair", {
          error: String(err),
        });
        return false;
      }
      const old = this.#current;
      if (cert === old.cert && key === old.key) return true;
      let next: Generation;
      try {
        next = listen(this.#opts, this.port, cert, key, this);
      } catch (err) {
        log.error("certificate reload rejected; keeping the current pair", { error: String(err) });
        return false;
      }
      this.#current = next;
      this.#retire(old);
      log.info("certificate reloaded", { certFile: this.#opts.certFile });
      return true;
    };
    const previous = this.#reloading ?? Promise.resolve(true);
    const p = previous.then(run).then((ok) => {
      this.#opts.onCertReload?.(ok);
      return ok;
    });
    this.#reloading = p;
    return p;
  }

  #retire(gen: Generation): void {
    gen.retiring = true;
    const done = sleep(this.#opts.drainDelayMs).then(() => gen.server.shutdown());
    this.#retired.add(done);
    done.finally(() => this.#retired.delete(done));
  }

  /**
   * Drains and stops: `Connection: close` on every answer for the drain
   * delay (clients on kept-alive connections leave on their own), then the
   * listeners close and in-flight requests finish.
   */
  async shutdown(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    await this.#reloading?.catch(() => {});
    await sleep(this.#opts.drainDelayMs);
    await Promise.all([this.#current.server.shutdown(), ...this.#retired]);
    this.#stopped.resolve();
  }

  /**
   * Resolves once `shutdown` has closed every listener. A listener retired by
   * a certificate reload does not resolve it: the server goes on with the new one.
   */
  get finished(): Promise<void> {
    return this.#stopped.promise;
  }
}

function listen(
  opts: TlsServerOptions,
  port: number,
  cert: string,
  key: string,
  owner: TlsServer,
): Generation {
  const state = { cert, key, retiring: false };
  const server = Deno.serve({
    hostname: opts.hostname,
    port,
    cert,
    key,
    reusePort: true,
    onListen: () => {},
    onError: (err) => {
      opts.log.error("unhandled handler error", { error: String(err) });
      return new Response('{"error":"internal error"}', { status: 500 });
    },
  }, async (req) => {
    const res = await opts.handler(req);
    if (state.retiring || owner.draining) res.headers.set("connection", "close");
    return res;
  });
  return Object.assign(state, { server });
}
