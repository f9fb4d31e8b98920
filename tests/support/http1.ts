/**
 * A minimal HTTP/1.1 client over one kept-alive TLS connection, as
 * kube-apiserver calls a webhook through a Service. `fetch` would negotiate
 * HTTP/2, which hides the response-size stall this protocol can show.
 * @module
 */

/** One parsed response. */
export interface Http1Response {
  status: number;
  headers: Map<string, string>;
  body: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One TLS connection speaking HTTP/1.1 only. */
export class Http1Connection {
  #buf = new Uint8Array(0);
  private constructor(readonly conn: Deno.TlsConn) {}

  /** Connects to 127.0.0.1:`port` trusting only `caPem`, offering only http/1.1. */
  static async open(port: number, caPem: string, hostname = "127.0.0.1"): Promise<Http1Connection> {
    const conn = await Deno.connectTls({
      hostname,
      port,
      caCerts: [caPem],
      alpnProtocols: ["http/1.1"],
    });
    return new Http1Connection(conn);
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  async #line(): Promise<string> {
    for (;;) {
      const i = this.#buf.findIndex((b, j) => b === 13 && this.#buf[j + 1] === 10);
      if (i >= 0) {
        const line = decoder.decode(this.#take(i));
        this.#take(2);
        return line;
      }
      if (!(await this.#fill())) throw new Error("connection closed mid-response");
    }
  }

  async #bytes(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#fill())) throw new Error("connection closed mid-body");
    }
    return this.#take(n);
  }

  /** Sends one request and reads its response (content-length or chunked). */
  async request(
    method: string,
    path: string,
    body = "",
    headers: Record<string, string> = {},
  ): Promise<Http1Response> {
    const payload = encoder.encode(body);
    const head = [
      `${method} ${path} HTTP/1.1`,
      "host: 127.0.0.1",
      "content-type: application/json",
      "accept: application/json",
      `content-length: ${payload.length}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      "",
      "",
    ].join("\r\n");
    const msg = new Uint8Array([...encoder.encode(head), ...payload]);
    let off = 0;
    while (off < msg.length) off += await this.conn.write(msg.subarray(off));

    const statusLine = await this.#line();
    const status = Number(statusLine.split(" ")[1]);
    const h = new Map<string, string>();
    for (let line = await this.#line(); line !== ""; line = await this.#line()) {
      const i = line.indexOf(":");
      h.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    let bytes: Uint8Array;
    if (h.get("transfer-encoding")?.includes("chunked")) {
      const parts: Uint8Array[] = [];
      for (;;) {
        const size = parseInt(await this.#line(), 16);
        if (size === 0) {
          while ((await this.#line()) !== "") { /* trailers */ }
          break;
        }
        parts.push(await this.#bytes(size));
        await this.#bytes(2);
      }
      bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        bytes.set(p, at);
        at += p.length;
      }
    } else {
      bytes = await this.#bytes(Number(h.get("content-length") ?? 0));
    }
    return { status, headers: h, body: decoder.decode(bytes) };
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** The median of `values` (not mutated). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] ?? NaN : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}
