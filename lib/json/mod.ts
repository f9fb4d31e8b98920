/**
 * Parsed JSON and YAML values: the one type guard for plain objects.
 * @module
 */
export { isRecord } from "./record.ts";
