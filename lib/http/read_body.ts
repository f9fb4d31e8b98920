/**
 * Reads a request body with a size cap, without buffering past the cap.
 * @module
 */
import { HttpError } from "./errors.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

function decode(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (err) {
    throw new HttpError(400, "request body is not valid UTF-8", { cause: err });
  }
}

/**
 * Returns the body as text, or throws `HttpError` 413 once it exceeds `max` bytes.
 * A declared `content-length` over the cap is refused before reading; a body
 * without one is counted chunk by chunk and the stream cancelled at the cap.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCapped } from "./read_body.ts";
 * assert.equal(await readCapped(new Request("http://x/", { method: "POST", body: "hi" }), 10), "hi");
 * await assert.rejects(readCapped(new Request("http://x/", { method: "POST", body: "x".repeat(11) }), 10), { status: 413 });
 * ```
 */
export async function readCapped(req: Request, max: number): Promise<string> {
  const body = req.body;
  if (body === null) return "";
  const declared = req.headers.get("content-length");
  if (declared !== null && !req.headers.has("transfer-encoding")) {
    const n = Number(declared);
    if (!/^\d+$/.test(declared) || !Number.isSafeInteger(n)) {
      await body.cancel();
      throw new HttpError(400, "invalid content-length");
    }
    if (n > max) {
      await body.cancel();
      throw new HttpError(413, `request body of ${n} bytes exceeds the ${max}-byte limit`);
    }
    // The HTTP layer enforces the declared length, so one read is both safe and fastest.
    return decode(await req.bytes());
  }
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw new HttpError(413, `request body exceeds the ${max}-byte limit`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1 && chunks[0]) return decode(chunks[0]);
  const all = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return decode(all);
}
