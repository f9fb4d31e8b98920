/**
 * Spawning the real server (`main.ts serve` under `-P=serve`) and talking raw
 * HTTP/1.1 over TLS to it.
 * @module
 */
import { serveArgs } from "../support/serve_command.ts";

export const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Writes a line to stderr (lint forbids console.*). */
export function note(text: string): void {
  Deno.stderr.writeSync(enc.encode(text + "\n"));
}

/** Generates a CA and a server pair for IP:127.0.0.1 under `<repo>/.tmp/`. */
export async function makeCerts(
  label: string,
): Promise<{ dir: string; ca: string; cert: string; key: string }> {
  const dir = `${REPO}/.tmp/hardening-${label}-${crypto.randomUUID().slice(0, 8)}`;
  const out = await new Deno.Command("bash", {
    args: [`${REPO}/k8s/gen-certs.sh`, "--out", dir, "--san", "IP:127.0.0.1"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`gen-certs failed: ${dec.decode(out.stderr)}`);
  return {
    dir,
    ca: await Deno.readTextFile(`${dir}/ca.crt`),
    cert: `${dir}/tls.crt`,
    key: `${dir}/tls.key`,
  };
}

/** A running server process and its (growing) output. */
export interface ServerProcess {
  child: Deno.ChildProcess;
  port: number;
  stdout: () => string;
  stderr: () => string;
  status: Promise<Deno.CommandStatus>;
  /** Kills the child (SIGKILL) if it still runs, and waits for its pipes. */
  close: () => Promise<void>;
}

function collect(stream: ReadableStream<Uint8Array>, sink: { text: string }): Promise<void> {
  return (async () => {
    const d = new TextDecoder();
    for await (const chunk of stream) sink.text += d.decode(chunk, { stream: true });
  })();
}

/** Spawns `main.ts serve` with `args`; resolves once it logs `listening` (or exits). */
export async function spawnServer(
  args: string[],
  opts: { waitListening?: boolean; timeoutMs?: number } = {},
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: serveArgs(args),
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const out = { text: "" }, err = { text: "" };
  const pipes = Promise.all([collect(child.stdout, out), collect(child.stderr, err)]);
  const status = child.status;
  let exited = false;
  status.then(() => exited = true);
  const close = async () => {
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    await status;
    await pipes;
  };
  let port = 0;
  if (opts.waitListening ?? true) {
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    while (Date.now() < deadline && !exited) {
      const line = out.text.split("\n").find((l) => l.includes('"msg":"listening"'));
      if (line) {
        port = JSON.parse(line).port;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    if (!port) {
      await close();
      throw new Error(`server did not start:\nstdout: ${out.text}\nstderr: ${err.text}`);
    }
  }
  return { child, port, stdout: () => out.text, stderr: () => err.text, status, close };
}

/** A parsed HTTP/1.1 response. */
export interface RawResponse {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** A minimal HTTP/1.1 client on one TLS connection (keep-alive, chunked, content-length). */
export class RawClient {
  #buf = new Uint8Array(0);
  closed = false;
  private constructor(readonly conn: Deno.TlsConn) {}

  /** Connects and completes the TLS handshake. */
  static async connect(port: number, ca: string): Promise<RawClient> {
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port,
      caCerts: [ca],
      alpnProtocols: ["http/1.1"],
    });
    try {
      await conn.handshake();
    } catch (err) {
      try {
        conn.close();
      } catch { /* ignore */ }
      throw err;
    }
    return new RawClient(conn);
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
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }

  async #readUntil(sep: string): Promise<string> {
    const s = enc.encode(sep);
    for (;;) {
      const i = indexOf(this.#buf, s);
      if (i >= 0) {
        const out = dec.decode(this.#buf.subarray(0, i));
        this.#buf = this.#buf.subarray(i + s.length);
        return out;
      }
      if (!(await this.#fill())) {
        throw new Error(`connection closed (waiting for ${JSON.stringify(sep)})`);
      }
    }
  }

  async #readExact(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#fill())) {
        throw new Error(`connection closed (${this.#buf.length}/${n} bytes)`);
      }
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Reads one response (the request must already be written). */
  async readResponse(): Promise<RawResponse> {
    const head = await this.#readUntil("\r\n\r\n");
    const [statusLine = "", ...lines] = head.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const headers = new Map<string, string>();
    for (const l of lines) {
      const i = l.indexOf(":");
      headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    let body = "";
    if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
      const parts: Uint8Array[] = [];
      for (;;) {
        const size = parseInt((await this.#readUntil("\r\n")).split(";")[0]!, 16);
        if (!(size >= 0)) throw new Error("bad chunk size");
        if (size === 0) {
          while ((await this.#readUntil("\r\n")) !== "");
          break;
        }
        parts.push(await this.#readExact(size));
        await this.#readUntil("\r\n");
      }
      body = parts.map((p) => dec.decode(p)).join("");
    } else if (headers.has("content-length")) {
      body = dec.decode(await this.#readExact(Number(headers.get("content-length"))));
    } else if (!["204", "304"].includes(m[1]!)) {
      while (await this.#fill());
      body = dec.decode(this.#buf);
      this.#buf = new Uint8Array(0);
    }
    return { status: Number(m[1]), headers, body };
  }
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The bytes of an HTTP/1.1 request. */
export function rawRequest(
  method: string,
  path: string,
  port: number,
  body = "",
  headers: Record<string, string> = {},
): Uint8Array {
  const b = enc.encode(body);
  const h = {
    host: `127.0.0.1:${port}`,
    ...(method === "POST"
      ? { "content-type": "application/json", "content-length": String(b.length) }
      : {}),
    ...headers,
  };
  const head = `${method} ${path} HTTP/1.1\r\n${
    Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join("")
  }\r\n`;
  const out = new Uint8Array(enc.encode(head).length + b.length);
  out.set(enc.encode(head));
  out.set(b, out.length - b.length);
  return out;
}

/** Rejects after `ms` (and runs `onTimeout`) unless `p` settles first. */
export async function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          onTimeout();
          reject(new Error(`timed out after ${ms} ms`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
