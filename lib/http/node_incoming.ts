/**
 * A `node:http` request as the handler's {@link Incoming}: headers from
 * Node's parsed record, the body pulled with `read()` in paused mode; no web
 * `Request` or stream is built per request. With `Expect: 100-continue`, the
 * interim `100 Continue` goes out at the body's first read, so a request
 * refused before its body is read (413 on its declared length, 405, 503)
 * gets the final answer instead and the client never sends the body.
 *
 * Deno's `node:tls` keeps reading the TCP socket whatever its consumer does
 * (measured: a paused request, a paused TLS socket and a stopped TLS handle
 * each still had the whole 400 KB body read into memory), so a review waiting
 * for memory budget stops reads on the TCP handle under the TLS socket; its
 * bytes then stay in the kernel (~64 KB read per connection instead of all).
 * @module
 */
import type { IncomingMessage } from "node:http";
import { ClientClosedError } from "./errors.ts";
import type { BodySource, Incoming } from "./exchange.ts";

interface StreamHandle {
  readStop(): unknown;
  readStart(): unknown;
}

function isStreamHandle(v: unknown): v is StreamHandle {
  return typeof v === "object" && v !== null && "readStop" in v && "readStart" in v &&
    typeof v.readStop === "function" && typeof v.readStart === "function";
}

/**
 * The handle that reads the connection's TCP socket: under a TLS socket its
 * `_parent`'s handle (internal, hence checked; absent, pausing does nothing).
 */
function tcpHandle(req: IncomingMessage): StreamHandle | undefined {
  const socket: unknown = req.socket;
  if (typeof socket !== "object" || socket === null) return undefined;
  const parent = "_parent" in socket ? socket._parent : undefined;
  const under = typeof parent === "object" && parent !== null ? parent : socket;
  const handle = "_handle" in under ? under._handle : undefined;
  return isStreamHandle(handle) ? handle : undefined;
}

/** Bounds of {@link NodeBody.discard}. */
export interface DiscardLimits {
  /** Bytes discarded at most. */
  maxBytes: number;
  /** Time at most, in milliseconds. */
  maxMs: number;
}

/**
 * How a discard ended: `ended` (the client sent its whole body), `closed`
 * (it went away), `bytes` or `time` (a bound was reached first).
 */
export interface DiscardOutcome {
  outcome: "ended" | "closed" | "bytes" | "time";
  /** Body bytes read and dropped. */
  bytes: number;
}

/** A request body from `node:http`, with what the server needs after the handler. */
interface NodeBody extends BodySource {
  /** Whether the handler stopped reading it. */
  cancelled(): boolean;
  /**
   * Reads and drops the rest of the body, chunk by chunk (nothing is kept),
   * until it ends, the client goes away, or a bound of `limits` is reached.
   */
  discard(limits: DiscardLimits): Promise<DiscardOutcome>;
}

/**
 * The body of `req`; `sendContinue` (the `100 Continue` the client waits
 * for) runs once, before the first read.
 */
function bodyOf(req: IncomingMessage, sendContinue: (() => void) | undefined): NodeBody {
  let ended = false;
  let cancelled = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  let listening = false;
  let paused: StreamHandle | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const listen = () => {
    listening = true;
    req.on("readable", notify);
    req.on("end", () => {
      ended = true;
      notify();
    });
    // A client that goes away mid-body: "aborted"/ECONNRESET, or a close before the end.
    req.on("error", (err: Error) => {
      failure ??= new ClientClosedError("client closed the connection mid-request", {
        cause: err,
      });
      notify();
    });
    req.on("close", () => {
      if (!ended) failure ??= new ClientClosedError("client closed the connection mid-request");
      notify();
    });
    // Gone before anyone listened: the events above have already fired.
    if (req.destroyed || req.socket.destroyed) {
      failure ??= new ClientClosedError("client closed the connection mid-request");
    }
  };
  let pendingContinue = sendContinue;
  return {
    async read() {
      if (pendingContinue) {
        pendingContinue();
        pendingContinue = undefined;
      }
      if (paused) {
        paused.readStart();
        paused = undefined;
      }
      for (let yielded = false;;) {
        if (cancelled) return undefined;
        const chunk: Uint8Array | null = req.read();
        if (chunk !== null) return chunk;
        // The parser has seen the whole message and nothing is left: that is the end,
        // without listeners or the 'end' event (most reviews arrive in one chunk).
        if (ended || (req.complete && req.readableLength === 0)) return undefined;
        if (failure) throw failure;
        if (!yielded) {
          // Called from the 'request' event, inside the parser: the rest of the chunk it is
          // parsing is pushed before the next microtask.
          yielded = true;
          await undefined;
          continue;
        }
        if (!listening) listen();
        await new Promise<void>((resolve) => wake = resolve);
      }
    },
    cancel() {
      // Stop reading; the answer closes the connection, so the rest is never read.
      cancelled = true;
      req.removeAllListeners("readable");
      req.pause();
      notify();
    },
    pause() {
      if (paused || cancelled) return;
      paused = tcpHandle(req);
      paused?.readStop();
    },
    cancelled: () => cancelled,
    discard(limits) {
      cancelled = true;
      req.removeAllListeners("readable");
      if (paused) {
        paused.readStart();
        paused = undefined;
      }
      const { promise, resolve } = Promise.withResolvers<DiscardOutcome>();
      let bytes = 0;
      const done = (outcome: DiscardOutcome["outcome"]) => {
        clearTimeout(timer);
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("close", onClose);
        req.pause();
        resolve({ outcome, bytes });
      };
      const onData = (chunk: Uint8Array) => {
        bytes += chunk.byteLength;
        if (bytes > limits.maxBytes) done("bytes");
      };
      const onEnd = () => done("ended");
      const onClose = () => done(ended || req.complete ? "ended" : "closed");
      const timer = setTimeout(() => done("time"), limits.maxMs);
      if (ended || (req.complete && req.readableLength === 0)) done("ended");
      else if (req.destroyed || req.socket.destroyed) done("closed");
      else {
        // Flowing mode with a counting listener: each chunk is dropped once counted.
        req.on("data", onData);
        req.on("end", onEnd);
        req.on("close", onClose);
        req.resume();
      }
      return promise;
    },
  };
}

/**
 * `req` as an {@link Incoming}, and its body for the server (undefined for
 * GET and HEAD). `sendContinue` answers `Expect: 100-continue` when the
 * handler first reads the body.
 */
export function incomingOfNode(
  req: IncomingMessage,
  sendContinue?: () => void,
): { incoming: Incoming; body: NodeBody | undefined } {
  const method = req.method ?? "GET";
  const body = method === "GET" || method === "HEAD" ? undefined : bodyOf(req, sendContinue);
  const headers = req.headers;
  return {
    incoming: {
      method,
      target: req.url ?? "/",
      header(name) {
        const v = headers[name];
        return Array.isArray(v) ? v.join(", ") : v;
      },
      body,
    },
    body,
  };
}
