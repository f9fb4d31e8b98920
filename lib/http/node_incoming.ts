/**
 * A `node:http` request as the handler's {@link Incoming}: headers from
 * Node's parsed record, the body pulled with `read()` in paused mode; no web
 * `Request` or stream is built per request.
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

/** The body of `req`; `cancelled()` says whether the handler stopped reading it. */
function bodyOf(req: IncomingMessage): BodySource & { cancelled: () => boolean } {
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
  return {
    async read() {
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
  };
}

/** `req` as an {@link Incoming}, and whether its body was left unread. */
export function incomingOfNode(
  req: IncomingMessage,
): { incoming: Incoming; bodyCancelled: () => boolean } {
  const method = req.method ?? "GET";
  const body = method === "GET" || method === "HEAD" ? undefined : bodyOf(req);
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
    bodyCancelled: body ? body.cancelled : () => false,
  };
}
