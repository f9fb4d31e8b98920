/**
 * The webhook's HTTP side: the routes (`/mutate`, health, metrics) over a
 * transport-neutral request and reply, body reading under a size cap, a
 * deadline and a memory budget, the one place errors become statuses, and
 * the TLS server (node:https, HTTP/1.1) that feeds them.
 * @module
 */
export {
  createHandler,
  createRoutes,
  DEFAULT_MAX_IN_FLIGHT,
  type HandlerDeps,
  MAX_BODY_BYTES,
  metricsOnly,
  type Routes,
} from "./handler.ts";
export { ByteBudget, DEFAULT_MEMORY_BUDGET_BYTES } from "./budget.ts";
export type { BodySource, Incoming, Reply } from "./exchange.ts";
export { webHandler } from "./web.ts";
export { SERVER_DEFAULTS, TlsServer, type TlsServerOptions } from "./server.ts";
