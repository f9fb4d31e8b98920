/**
 * A Fluentd forward-protocol receiver for the agent conformance suite: it
 * records every event it receives, acknowledges chunks, and can go away and
 * come back on the same port to play an aggregator outage.
 * @module
 */
import { createServer as createTcpServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { gunzipSync } from "node:zlib";
import { decodeMulti, decodeMultiStream, encode } from "@msgpack/msgpack";

/** One event as received. */
export interface Received {
  tag: string;
  record: Record<string, unknown>;
  /** `performance.now()` when it arrived. */
  at: number;
}

/** Certificate and key (PEM) to serve TLS with. */
export interface TlsIdentity {
  cert: string;
  key: string;
}

type Entry = [unknown, Record<string, unknown>];

/** A forward receiver on 127.0.0.1. */
export class Aggregator {
  readonly received: Received[] = [];
  readonly #bad = { strings: 0 };
  /** How many strings received (tags, keys, values) were not valid UTF-8. */
  get invalidUtf8(): number {
    return this.#bad.strings;
  }
  #server: Server | undefined;
  #sockets = new Set<Socket>();
  #port: number;
  #tls: TlsIdentity | undefined;

  private constructor(port: number, tls: TlsIdentity | undefined) {
    this.#port = port;
    this.#tls = tls;
  }

  /** Starts listening on `port` (a free one when 0). */
  static async start(port = 0, tls?: TlsIdentity): Promise<Aggregator> {
    const a = new Aggregator(port, tls);
    await a.up();
    return a;
  }

  /** The port it listens on (kept across outages). */
  get port(): number {
    return this.#port;
  }

  /** Listens again after `down()`. */
  async up(): Promise<void> {
    if (this.#server) return;
    const onSocket = (socket: Socket) => this.#serve(socket);
    const server = this.#tls
      ? createTlsServer({ cert: this.#tls.cert, key: this.#tls.key }, onSocket)
      : createTcpServer(onSocket);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#port, "127.0.0.1", () => resolve());
    });
    const addr = server.address();
    if (addr && typeof addr === "object") this.#port = addr.port;
    this.#server = server;
  }

  /** Stops listening and drops every connection: an outage. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The `log` field of every record received, in order. */
  lines(): string[] {
    return this.received.map((r) => String(r.record.log));
  }

  async #serve(socket: Socket): Promise<void> {
    this.#sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => this.#sockets.delete(socket));
    try {
      // Fluentd packs entries as msgpack str: keep strings as bytes, decode what is text.
      for await (
        const message of decodeMultiStream<undefined>(socket, { rawStrings: true })
      ) {
        const ack = this.#accept(message);
        if (ack !== undefined && !socket.destroyed) socket.write(encode({ ack }));
      }
    } catch {
      socket.destroy(); // a connection cut mid-message: the sender retries the chunk
    }
  }

  /** Stores the events of one message; returns the chunk id to acknowledge. */
  #accept(message: unknown): string | undefined {
    if (!Array.isArray(message) || !(message[0] instanceof Uint8Array)) return undefined;
    const tag = text(message[0], this.#bad);
    const second = message[1];
    let entries: Entry[];
    let option: unknown;
    if (Array.isArray(second)) { // Forward mode
      entries = second as Entry[];
      option = message[2];
    } else if (second instanceof Uint8Array) { // PackedForward
      option = message[2];
      let bytes = second;
      if (isOption(option) && text(option.compressed, this.#bad) === "gzip") {
        bytes = gunzipSync(bytes);
      }
      entries = [...decodeMulti(bytes, { rawStrings: true })] as Entry[];
    } else { // Message mode: [tag, time, record, option]
      entries = [[second, message[2] as Record<string, unknown>]];
      option = message[3];
    }
    const at = performance.now();
    for (const [, record] of entries) {
      this.received.push({ tag, record: texts(record, this.#bad) as Record<string, unknown>, at });
    }
    return isOption(option) && option.chunk instanceof Uint8Array
      ? text(option.chunk, this.#bad)
      : undefined;
  }
}

const decoder = new TextDecoder();
const strict = new TextDecoder("utf-8", { fatal: true });
/** Decodes a msgpack str; one that is not valid UTF-8 is counted in `bad` and decoded lossily. */
function text(v: unknown, bad: { strings: number }): string {
  if (!(v instanceof Uint8Array)) return String(v);
  try {
    return strict.decode(v);
  } catch {
    bad.strings++;
    return decoder.decode(v);
  }
}

/** A value with every string in it decoded, keys included, at any depth. */
function texts(value: unknown, bad: { strings: number }): unknown {
  if (value instanceof Uint8Array) return text(value, bad);
  if (Array.isArray(value)) return value.map((v) => texts(v, bad));
  if (value instanceof Map) {
    return Object.fromEntries([...value].map(([k, v]) => [text(k, bad), texts(v, bad)]));
  }
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, texts(v, bad)]));
  }
  return value;
}

function isOption(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
