/**
 * The handler as a web `(Request) => Promise<Response>`: for in-process
 * tests and the plain-HTTP metrics port (`Deno.serve`). The TLS server does
 * not come through here; it hands its requests to the handler directly.
 * @module
 */
import type { BodySource, Incoming, Reply } from "./exchange.ts";

/** A web body stream as a {@link BodySource}. */
function bodyOf(stream: ReadableStream<Uint8Array>): BodySource {
  const reader = stream.getReader();
  let cancelled = false;
  return {
    async read() {
      if (cancelled) return undefined;
      const { done, value } = await reader.read();
      return done ? undefined : value;
    },
    cancel() {
      if (cancelled) return;
      cancelled = true;
      reader.cancel().catch(() => {});
    },
    // A web stream is pulled only when read: nothing to stop.
    pause() {},
  };
}

/**
 * A web `Request` as the handler's {@link Incoming}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { incomingOf } from "./web.ts";
 * const req = incomingOf(new Request("https://x/mutate?timeout=10s", { method: "POST", body: "{}" }));
 * assert.equal(req.target, "/mutate?timeout=10s");
 * assert.equal(req.header("content-type"), "text/plain;charset=UTF-8");
 * assert.deepEqual(await req.body?.read(), new TextEncoder().encode("{}"));
 * ```
 */
export function incomingOf(req: Request): Incoming {
  const url = new URL(req.url);
  return {
    method: req.method,
    target: url.pathname + url.search,
    header: (name) => req.headers.get(name) ?? undefined,
    body: req.body === null ? undefined : bodyOf(req.body),
  };
}

/** A {@link Reply} as a web `Response`. */
export function responseOf(reply: Reply): Response {
  return new Response(reply.body, { status: reply.status, headers: reply.headers });
}

/**
 * `routes` as a web handler.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonReply } from "./exchange.ts";
 * import { webHandler } from "./web.ts";
 * const handler = webHandler((req) => Promise.resolve(jsonReply(200, JSON.stringify(req.target))));
 * assert.equal(await (await handler(new Request("https://x/a?b=1"))).json(), "/a?b=1");
 * ```
 */
export function webHandler(
  routes: (req: Incoming) => Promise<Reply>,
): (req: Request) => Promise<Response> {
  return async (req) => responseOf(await routes(incomingOf(req)));
}
