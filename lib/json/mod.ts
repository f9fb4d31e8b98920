/**
 * Plain JSON values: the one type guard for parsed objects, and escaped JSON
 * Pointers, the only way patch paths are built.
 * @module
 */
export { isRecord } from "./record.ts";
export { escapeToken, pointer, prefixPaths } from "./pointer.ts";
