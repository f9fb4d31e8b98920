/**
 * A small read-only Kubernetes API client over `node:https`: GET and paged
 * LIST with a CA, client certificates, bearer tokens (fixed, re-read from a
 * file, or from an exec plugin). Everything it returns is `unknown`: callers
 * validate what they read.
 *
 * Why not `@kubernetes/client-node` (see docs/audit.md): under Deno it needs access to the whole environment at import time,
 * which the server's permission set does not grant.
 * @module
 */
import https from "node:https";
import type { IncomingMessage } from "node:http";
import { isRecord } from "../json/mod.ts";
import type { Credentials, ReadText } from "./credentials.ts";
import { type ExecResult, type RunCommand, runExecPlugin } from "./exec_credential.ts";

/** An API call failed: `status` is the HTTP status when there was an answer. */
export class KubeError extends Error {
  override name = "KubeError";
  constructor(message: string, readonly status?: number, options?: ErrorOptions) {
    super(message, options);
  }
}

/** How a {@link KubeClient} authenticates and how long it waits. */
export interface KubeClientOptions {
  read?: ReadText;
  runExec?: RunCommand;
  /** Per request, connect to last byte. */
  timeoutMs?: number;
  userAgent?: string;
  /** Epoch milliseconds, for exec credential expiry. */
  now?: () => number;
}

/** Largest answer accepted: a 500-pod page is a few MB. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** An exec credential is renewed this long before it expires. */
const EXPIRY_MARGIN_MS = 30_000;

/** The read-only API client; `close()` it when done. */
export class KubeClient {
  readonly #creds: Credentials;
  readonly #opts: KubeClientOptions;
  readonly #url: URL;
  #agent: https.Agent;
  #exec: ExecResult | undefined;

  constructor(credentials: Credentials, options: KubeClientOptions = {}) {
    this.#creds = credentials;
    this.#opts = options;
    this.#url = new URL(credentials.server);
    this.#agent = this.#newAgent(credentials.clientCert, credentials.clientKey);
  }

  /** The namespace of the kubeconfig context (or the pod's own, in the cluster). */
  get namespace(): string {
    return this.#creds.namespace;
  }

  #tls(cert: string | undefined, key: string | undefined): https.AgentOptions {
    const c = this.#creds;
    return {
      ...(c.ca !== undefined ? { ca: c.ca } : {}),
      ...(cert !== undefined && key !== undefined ? { cert, key } : {}),
      ...(c.tlsServerName !== undefined ? { servername: c.tlsServerName } : {}),
      rejectUnauthorized: !c.insecureSkipTlsVerify,
    };
  }

  #newAgent(cert: string | undefined, key: string | undefined): https.Agent {
    return new https.Agent({ keepAlive: true, maxSockets: 4, ...this.#tls(cert, key) });
  }

  /** The exec plugin's credential, run again when it is missing or about to expire. */
  async #execCredential(): Promise<ExecResult | undefined> {
    const exec = this.#creds.exec;
    if (!exec) return undefined;
    const now = (this.#opts.now ?? Date.now)();
    const cached = this.#exec;
    if (cached && (cached.expiresAt === undefined || cached.expiresAt - EXPIRY_MARGIN_MS > now)) {
      return cached;
    }
    const fresh = await runExecPlugin(exec, this.#opts.runExec);
    if (fresh.clientCert !== cached?.clientCert || fresh.clientKey !== cached?.clientKey) {
      this.#agent.destroy();
      this.#agent = this.#newAgent(
        fresh.clientCert ?? this.#creds.clientCert,
        fresh.clientKey ?? this.#creds.clientKey,
      );
    }
    this.#exec = fresh;
    return fresh;
  }

  async #authorization(): Promise<string | undefined> {
    const exec = await this.#execCredential();
    if (exec?.token) return `Bearer ${exec.token}`;
    const c = this.#creds;
    if (c.tokenFile !== undefined) {
      const read = this.#opts.read ?? Deno.readTextFile;
      return `Bearer ${(await read(c.tokenFile)).trim()}`;
    }
    return c.token !== undefined ? `Bearer ${c.token}` : undefined;
  }

  /**
   * GETs `path` (with `query`) and returns the parsed JSON.
   *
   * @throws {KubeError} on a refused connection, a timeout or a status >= 400.
   */
  async get(path: string, query: Record<string, string> = {}): Promise<unknown> {
    try {
      return await this.#get(path, query);
    } catch (err) {
      // An exec credential the server no longer accepts: run the plugin once more.
      if (err instanceof KubeError && err.status === 401 && this.#exec) {
        this.#exec = undefined;
        return await this.#get(path, query);
      }
      throw err;
    }
  }

  /** Like {@link get}, but `undefined` when the object does not exist (404). */
  async getIfExists(path: string): Promise<unknown> {
    try {
      return await this.get(path);
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return undefined;
      throw err;
    }
  }

  /**
   * LISTs `path` page by page (`limit`, `continue`), yielding each page's
   * items, so a large cluster is never held in memory at once. Pages of 100
   * pods, not 500: in the server, ten audits of 1,000 pods grew RSS by ~34 MB
   * with 100, ~57 MB with 500, for ~50 ms more per audit.
   */
  async *list(
    path: string,
    query: Record<string, string> = {},
    limit = 100,
  ): AsyncGenerator<unknown[]> {
    let token: string | undefined;
    do {
      const page = await this.get(path, {
        ...query,
        limit: String(limit),
        ...(token ? { continue: token } : {}),
      });
      if (!isRecord(page) || !Array.isArray(page.items)) {
        throw new KubeError(`GET ${path}: not a list`);
      }
      yield page.items;
      const meta = page.metadata;
      token = isRecord(meta) && typeof meta.continue === "string" && meta.continue !== ""
        ? meta.continue
        : undefined;
    } while (token);
  }

  async #get(path: string, query: Record<string, string>): Promise<unknown> {
    const authorization = await this.#authorization();
    const search = new URLSearchParams(query).toString();
    const base = this.#url.pathname.replace(/\/+$/, "");
    const fullPath = `${base}${path}${search ? `?${search}` : ""}`;
    const timeoutMs = this.#opts.timeoutMs ?? 30_000;
    const what = `GET ${path}`;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = https.request({
        protocol: "https:",
        hostname: this.#url.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: this.#url.port || 443,
        path: fullPath,
        method: "GET",
        agent: this.#agent,
        headers: {
          accept: "application/json",
          "user-agent": this.#opts.userAgent ?? "sidecar-injector",
          ...(authorization ? { authorization } : {}),
        },
        ...this.#tls(
          this.#exec?.clientCert ?? this.#creds.clientCert,
          this.#exec?.clientKey ?? this.#creds.clientKey,
        ),
      }, (msg: IncomingMessage) => {
        // Decoded as it arrives: no second copy of a page in bytes.
        const decoder = new TextDecoder();
        let body = "";
        let size = 0;
        msg.on("data", (chunk: Uint8Array) => {
          size += chunk.byteLength;
          if (size > MAX_BODY_BYTES) {
            req.destroy(new KubeError(`${what}: answer larger than ${MAX_BODY_BYTES} bytes`));
            return;
          }
          body += decoder.decode(chunk, { stream: true });
        });
        msg.on("end", () => {
          resolve({ status: msg.statusCode ?? 0, body: body + decoder.decode() });
        });
        msg.on("error", reject);
      });
      req.setTimeout(timeoutMs, () => {
        req.destroy(new KubeError(`${what}: no answer within ${timeoutMs} ms`));
      });
      req.on("error", reject);
      req.end();
    }).catch((err: unknown) => {
      if (err instanceof KubeError) throw err;
      throw new KubeError(
        `${what} on ${this.#creds.server}: ${err instanceof Error ? err.message : err}`,
        undefined,
        { cause: err },
      );
    });
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      body = undefined;
    }
    if (res.status >= 400) {
      // The apiserver's Status object says why; anything else is shown as it came.
      const message = isRecord(body) && typeof body.message === "string"
        ? body.message
        : res.body.slice(0, 300);
      throw new KubeError(`${what}: ${res.status} ${message}`, res.status);
    }
    if (body === undefined) throw new KubeError(`${what}: the answer is not JSON`, res.status);
    return body;
  }

  /** Closes kept-alive connections. */
  close(): void {
    this.#agent.destroy();
  }
}
