/**
 * What the server tells operators: structured JSON logs and Prometheus metrics.
 * @module
 */
export {
  createLogger,
  type Fields,
  type Level,
  type Logger,
  type LoggerOptions,
  onceEvery,
  writeAllSync,
} from "./log.ts";
export { Metrics } from "./metrics.ts";
