/**
 * The TLS listener around the handler's routes, on `node:https` (Deno's Node
 * compatibility layer). Requests go to the routes as they are (see
 * `node_incoming.ts`): no web `Request` or `Response` per review.
 *
 * Why not `Deno.serve` (measured here, Deno 2.9.6, see docs/deviations.md):
 * it never sets TCP_NODELAY on TLS sockets and always offers HTTP/2, so Go's
 * client (kube-apiserver) waited ~44 ms per review over h2 (loopback webhook
 * URLs), whatever the response form; it has no header, handshake or idle
 * timeouts and no connection limit; and its certificate cannot be swapped.
 * `node:https` offers HTTP/1.1 only, sets TCP_NODELAY (`noDelay`), has all of
 * those, and `setSecureContext` for certificate reload.
 *
 * Refusals must reach clients that are still sending. `Expect: 100-continue`
 * is answered when the handler first reads the body, so a refusal before
 * that (413 on the declared length) is the final answer and the body is
 * never sent. An answer given before the body was read in full is followed
 * by a lingering close: the rest of the body is read and dropped, within a
 * bound of time and bytes, before the connection closes. Closing at once
 * with unread bytes makes the kernel send a reset, and a client that writes
 * its whole body before reading (Python's `http.client`, curl without
 * `Expect`) then never sees the answer.
 * @module
 */
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Logger, onceEvery } from "../observe/mod.ts";
import { toReply } from "./errors.ts";
import type { Incoming, Reply } from "./exchange.ts";
import { incomingOfNode } from "./node_incoming.ts";

/** Where the server listens, which files hold its pair, and its limits. */
export interface TlsServerOptions {
  hostname: string;
  port: number;
  certFile: string;
  keyFile: string;
  /** The handler (`createRoutes`); it answers every error itself. */
  routes: (req: Incoming) => Promise<Reply>;
  log: Logger;
  /** On shutdown: how long to keep answering (with `Connection: close`) before the listener closes. */
  drainDelayMs: number;
  readFile?: (path: string) => Promise<string>;
  /** Called after every reload attempt. */
  onCertReload?: (ok: boolean) => void;
  /** Called with the certificate PEM at start and after each successful swap. */
  onCertLoaded?: (cert: string) => void;
  /** Open connections at most; more are refused (and logged). */
  maxConnections?: number;
  /** Time to receive a request's headers (slow-loris bound). */
  headersTimeoutMs?: number;
  /** Time to receive a whole request. */
  requestTimeoutMs?: number;
  /** TLS handshake time limit. */
  handshakeTimeoutMs?: number;
  /** After an answer given before the body was read: time to keep reading and dropping it. */
  lingerMs?: number;
  /** After an answer given before the body was read: bytes read and dropped at most. */
  lingerBytes?: number;
}

/** Defaults: generous for kube-apiserver (whole request within its 30 s maximum), tight for stallers. */
export const SERVER_DEFAULTS = {
  maxConnections: 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  // Enough for a client to finish sending a body somewhat over the 7 MiB cap on any network
  // that delivers it in time at all; a connection holds no buffer while it lingers.
  lingerMs: 2_000,
  lingerBytes: 16 * 1024 * 1024,
} as const;

/** Idle kept-alive connection lifetime; must exceed the clients' idle timeout (Go: 90 s). */
export const IDLE_TIMEOUT_MS = 120_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Throws when `cert` and `key` are not a usable pair. `node:https` here would
 * accept a mismatched pair and fail every handshake later; rustls checks it
 * at listen time, so a throwaway listener validates before a swap.
 */
function validatePair(cert: string, key: string): void {
  const probe = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
  probe.close();
}

/** A running TLS server. */
export class TlsServer {
  readonly #opts: TlsServerOptions;
  readonly #server: https.Server;
  #cert: string;
  #key: string;
  #draining = false;
  #reloading: Promise<boolean> | undefined;
  port = 0;

  private constructor(opts: TlsServerOptions, cert: string, key: string) {
    this.#opts = opts;
    this.#cert = cert;
    this.#key = key;
    const d = { ...SERVER_DEFAULTS, ...opts };
    this.#server = https.createServer({
      cert,
      key,
      minVersion: "TLSv1.2",
      noDelay: true,
      headersTimeout: d.headersTimeoutMs,
      requestTimeout: d.requestTimeoutMs,
      handshakeTimeout: d.handshakeTimeoutMs,
      // How often the header/request timeouts are enforced (Node's default is 30 s).
      connectionsCheckingInterval: 1000,
      // Idle kept-alive connections close after 120 s: longer than kube-apiserver's own idle
      // timeout (Go's 90 s), so the client always closes first and never sends a POST on a
      // connection the server is closing (it does not retry those); abandoned ones are reclaimed.
      keepAliveTimeout: IDLE_TIMEOUT_MS,
    }, (req, res) => void this.#serve(req, res));
    // With a listener, Node leaves `Expect: 100-continue` to us: the body's first read sends it.
    this.#server.on(
      "checkContinue",
      (req: IncomingMessage, res: ServerResponse) =>
        void this.#serve(req, res, () => res.writeContinue()),
    );
    // Counted here rather than with `maxConnections`, whose 'drop' event Deno does not emit:
    // the refusal must be visible in the log (at most once a second).
    let open = 0;
    const limitLog = onceEvery(1000);
    this.#server.on(
      "connection",
      (socket: { destroy(): void; once(e: "close", f: () => void): void }) => {
        if (open >= d.maxConnections) {
          if (limitLog()) {
            opts.log.warn("connection limit reached; refusing a connection", {
              maxConnections: d.maxConnections,
            });
          }
          socket.destroy();
          return;
        }
        open++;
        socket.once("close", () => open--);
      },
    );
    this.#server.on("tlsClientError", (err: Error) => {
      opts.log.debug("TLS handshake failed", { error: err.message });
    });
  }

  /** Reads the pair and starts listening; throws when the pair is unusable or the port taken. */
  static async start(opts: TlsServerOptions): Promise<TlsServer> {
    const read = opts.readFile ?? Deno.readTextFile;
    const [cert, key] = await Promise.all([read(opts.certFile), read(opts.keyFile)]);
    validatePair(cert, key);
    const self = new TlsServer(opts, cert, key);
    await new Promise<void>((resolve, reject) => {
      self.#server.once("error", reject);
      self.#server.listen(opts.port, opts.hostname, () => {
        self.#server.off("error", reject);
        resolve();
      });
    });
    const address = self.#server.address();
    self.port = typeof address === "object" && address ? address.port : opts.port;
    opts.onCertLoaded?.(cert);
    return self;
  }

  async #serve(
    req: IncomingMessage,
    res: ServerResponse,
    sendContinue?: () => void,
  ): Promise<void> {
    const { incoming, body: requestBody } = incomingOfNode(req, sendContinue);
    let reply: Reply;
    try {
      reply = await this.#opts.routes(incoming);
    } catch (err) {
      // The routes map their own errors; reaching here is a bug, still answered in one place.
      this.#opts.log.error("unhandled handler error", { error: String(err) });
      reply = toReply(err);
    }
    try {
      const { status, headers, body } = reply;
      for (const name in headers) res.setHeader(name, headers[name]!);
      res.setHeader("content-length", body.byteLength);
      // An unread body (413, 408, 503) or a drain: the client must reconnect.
      const early = requestBody !== undefined && (requestBody.cancelled() || !req.complete);
      if (this.#draining || early) res.setHeader("connection", "close");
      res.writeHead(status);
      if (!early) {
        res.end(body);
        return;
      }
      // The answer goes out now; the response ends (and Node closes) only after the linger.
      const t0 = performance.now();
      const maxMs = this.#opts.lingerMs ?? SERVER_DEFAULTS.lingerMs;
      const written = new Promise<boolean>((resolve) => res.write(body, () => resolve(true)));
      const { outcome, bytes } = await requestBody.discard({
        maxMs,
        maxBytes: this.#opts.lingerBytes ?? SERVER_DEFAULTS.lingerBytes,
      });
      // End only once the answer is flushed: Deno's TLS socket never calls back an empty write,
      // which is what ending with bytes still queued issues, and the connection would stay open.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const flushed = await Promise.race([
        written,
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), Math.max(0, maxMs - (performance.now() - t0)));
        }),
      ]);
      clearTimeout(timer);
      this.#opts.log.debug("lingering close", {
        status,
        outcome,
        discardedBytes: bytes,
        ms: Math.round(performance.now() - t0),
      });
      if (flushed) res.end();
      else res.destroy();
    } catch (err) {
      this.#opts.log.error("cannot write the response", { error: String(err) });
      res.destroy();
    }
  }

  /** True once `shutdown` began: answers carry `Connection: close`. */
  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Re-reads the cert and key; when they changed and form a valid pair, new
   * connections get them. Returns false when the new pair was rejected.
   */
  reload(): Promise<boolean> {
    // Serialise: a burst of file events must not interleave reads and swaps.
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
      if (cert === this.#cert && key === this.#key) return true;
      try {
        validatePair(cert, key);
        this.#server.setSecureContext({ cert, key, minVersion: "TLSv1.2" });
      } catch (err) {
        log.error("certificate reload rejected; keeping the current pair", { error: String(err) });
        return false;
      }
      this.#cert = cert;
      this.#key = key;
      log.info("certificate reloaded", { certFile: this.#opts.certFile });
      this.#opts.onCertLoaded?.(cert);
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

  /**
   * Drains and stops: `Connection: close` on every answer for the drain
   * delay (clients on kept-alive connections leave on their own), then the
   * listener closes, in-flight requests finish and idle connections close.
   */
  async shutdown(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    await this.#reloading?.catch(() => {});
    await sleep(this.#opts.drainDelayMs);
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    await closed;
  }
}
