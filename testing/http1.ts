/**
 * A minimal raw HTTP/1.1 client over one kept-alive TLS connection, as
 * kube-apiserver calls a webhook through a Service: ALPN `http/1.1` only
 * (`fetch` would negotiate HTTP/2, which hides the response-size stall this
 * protocol can show) and TCP_NODELAY, as Go's client sets it. Shared by the
 * tests and the benchmark (bench/load.ts builds its loads on it).
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const latin1 = new TextDecoder("latin1");
const CRLF = [13, 10];
const CRLFCRLF = [13, 10, 13, 10];

/** One parsed response. */
export interface Http1Response {
  status: number;
  /** Lower-cased names. */
  headers: Map<string, string>;
  /** The body as received. */
  bytes: Uint8Array;
  /** The body decoded as UTF-8 (on each read). */
  readonly body: string;
}

/**
 * Serialises a request: `host`, then `headers`, then `content-length` when
 * there is a `body` (even an empty one). Build once, send the same bytes many times.
 */
export function buildRequest(
  method: string,
  path: string,
  host: string,
  body?: string | Uint8Array,
  headers: Record<string, string> = {},
): Uint8Array {
  const payload = typeof body === "string" ? encoder.encode(body) : body;
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${host}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (payload) head += `content-length: ${payload.byteLength}\r\n`;
  head += "\r\n";
  const h = encoder.encode(head);
  const out = new Uint8Array(h.byteLength + (payload?.byteLength ?? 0));
  out.set(h);
  if (payload) out.set(payload, h.byteLength);
  return out;
}

function indexOf(buf: Uint8Array, from: number, to: number, pattern: readonly number[]): number {
  outer: for (let i = from; i + pattern.length <= to; i++) {
    for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1 && parts[0]) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

/** One kept-alive HTTP/1.1 TLS connection; one request at a time. */
export class Http1Connection {
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  /** True once {@link close} was called. */
  closed = false;

  private constructor(
    /** The TLS connection itself, for tests that read or write around the client. */
    readonly conn: Deno.TlsConn,
    /** The `host` header {@link request} sends. */
    readonly host: string,
  ) {}

  /**
   * Connects to `hostname`:`port` (TCP_NODELAY), trusting only `caPem`, and
   * completes the TLS handshake; refuses anything but ALPN `http/1.1`.
   */
  static async connect(
    port: number,
    caPem: string,
    hostname = "127.0.0.1",
  ): Promise<Http1Connection> {
    // TCP first, to set TCP_NODELAY as Go's client (kube-apiserver) does; TlsConn has no setNoDelay.
    const tcp = await Deno.connect({ hostname, port });
    tcp.setNoDelay(true);
    const conn = await Deno.startTls(tcp, {
      hostname,
      caCerts: [caPem],
      alpnProtocols: ["http/1.1"],
    });
    try {
      const hs = await conn.handshake();
      if (hs.alpnProtocol !== null && hs.alpnProtocol !== "http/1.1") {
        throw new Error(`server chose ALPN ${hs.alpnProtocol}`);
      }
    } catch (err) {
      try {
        conn.close();
      } catch { /* already closed */ }
      throw err;
    }
    return new Http1Connection(conn, `${hostname}:${port}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  /** Writes all of `bytes`. */
  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.byteLength) off += await this.conn.write(bytes.subarray(off));
  }

  /** Writes request bytes (e.g. from {@link buildRequest}) and reads the response. */
  async send(bytes: Uint8Array): Promise<Http1Response> {
    await this.write(bytes);
    return await this.readResponse();
  }

  /** Sends a JSON request (`content-type` and `accept` JSON, plus `headers`) and reads the response. */
  request(
    method: string,
    path: string,
    body = "",
    headers: Record<string, string> = {},
  ): Promise<Http1Response> {
    return this.send(
      buildRequest(method, path, this.host, body, {
        "content-type": "application/json",
        accept: "application/json",
        ...headers,
      }),
    );
  }

  /** Reads more bytes into the buffer; throws on EOF. */
  async #fill(): Promise<void> {
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.byteLength) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const next = new Uint8Array(this.#buf.byteLength * 2);
        next.set(this.#buf);
        this.#buf = next;
      }
    }
    const n = await this.conn.read(this.#buf.subarray(this.#end));
    if (n === null) {
      throw new Error(`connection closed by the server (${this.#end - this.#start} bytes unread)`);
    }
    this.#end += n;
  }

  async #until(pattern: readonly number[]): Promise<string> {
    for (;;) {
      const i = indexOf(this.#buf, this.#start, this.#end, pattern);
      if (i >= 0) {
        const s = latin1.decode(this.#buf.subarray(this.#start, i));
        this.#start = i + pattern.length;
        return s;
      }
      await this.#fill();
    }
  }

  async #take(n: number): Promise<Uint8Array> {
    while (this.#end - this.#start < n) await this.#fill();
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    return out;
  }

  /**
   * Reads one response (content-length, chunked, or until EOF); the request
   * must be written. An interim `1xx` is returned as a response of its own.
   */
  async readResponse(): Promise<Http1Response> {
    const [statusLine = "", ...lines] = (await this.#until(CRLFCRLF)).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const status = Number(m[1]);
    const headers = new Map<string, string>();
    for (const l of lines) {
      const c = l.indexOf(":");
      if (c > 0) headers.set(l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim());
    }
    let bytes: Uint8Array;
    if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
      const parts: Uint8Array[] = [];
      for (;;) {
        const size = parseInt((await this.#until(CRLF)).split(";")[0] ?? "", 16);
        if (!Number.isInteger(size) || size < 0) throw new Error("bad chunk size");
        if (size === 0) {
          while ((await this.#until(CRLF)) !== "") { /* trailers */ }
          break;
        }
        parts.push(await this.#take(size));
        if ((await this.#until(CRLF)) !== "") throw new Error("chunk not followed by CRLF");
      }
      bytes = concat(parts);
    } else if (headers.has("content-length")) {
      bytes = await this.#take(Number(headers.get("content-length")));
    } else if (status === 204 || status === 304 || status < 200) {
      // 1xx (`100 Continue`) are interim and have no body: the final response follows.
      bytes = new Uint8Array(0);
    } else {
      const parts: Uint8Array[] = [];
      try {
        for (;;) {
          await this.#fill();
          parts.push(this.#buf.slice(this.#start, this.#end));
          this.#start = this.#end;
        }
      } catch { /* EOF ends the body */ }
      bytes = concat(parts);
    }
    return {
      status,
      headers,
      bytes,
      get body() {
        return decoder.decode(bytes);
      },
    };
  }
}

/** Percentile (nearest rank) of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/** Median of the finite numbers in `values` (any order; not mutated); NaN if none. */
export function median(values: readonly number[]): number {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
