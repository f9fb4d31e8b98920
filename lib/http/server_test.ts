import assert from "node:assert/strict";
import { genCertTexts } from "../../testing/certs.ts";
import { Http1Connection } from "../../testing/http1.ts";
import { memoryLogger } from "../../testing/memory_logger.ts";
import { defaultConfig } from "../config/mod.ts";
import { Metrics } from "../observe/mod.ts";
import { createRoutes } from "./handler.ts";
import { TlsServer, type TlsServerOptions } from "./server.ts";

const CAP = 64 * 1024;
const enc = new TextEncoder();
const certs = await genCertTexts("--san", "IP:127.0.0.1");

/** A TLS server in this process with a 64 KiB body cap; `fn` gets its port. */
async function withServer(
  fn: (port: number, log: ReturnType<typeof memoryLogger>) => Promise<void>,
  opts: Partial<TlsServerOptions> = {},
): Promise<void> {
  const log = memoryLogger();
  const routes = createRoutes({
    config: defaultConfig,
    log,
    metrics: new Metrics(),
    now: () => performance.now(),
    maxBodyBytes: CAP,
  });
  const server = await TlsServer.start({
    hostname: "127.0.0.1",
    port: 0,
    certFile: "cert",
    keyFile: "key",
    readFile: (path) => Promise.resolve(path === "cert" ? certs.cert : certs.key),
    routes,
    log,
    drainDelayMs: 0,
    ...opts,
  });
  try {
    await fn(server.port, log);
  } finally {
    await server.shutdown();
  }
}

const head = (port: number, length: number, extra = "") =>
  enc.encode(
    `POST /mutate?timeout=10s HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n` +
      `content-type: application/json\r\ncontent-length: ${length}\r\n${extra}\r\n`,
  );

/** The `lingering close` log lines, once there are `n` (the response ends before the log line). */
async function lingers(log: ReturnType<typeof memoryLogger>, n: number) {
  const lines = () => log.lines.filter((l) => l.msg === "lingering close");
  for (let i = 0; i < 200 && lines().length < n; i++) await new Promise((r) => setTimeout(r, 10));
  return lines();
}

Deno.test("TlsServer: Expect: 100-continue over the cap gets the final 413, never 100 Continue", async () => {
  await withServer(async (port, log) => {
    const c = await Http1Connection.connect(port, certs.ca);
    try {
      await c.write(head(port, CAP + 1, "expect: 100-continue\r\n"));
      const res = await c.readResponse();
      assert.equal(res.status, 413, res.body);
      assert.equal(res.headers.get("connection"), "close");
    } finally {
      c.close();
    }
    const [l] = await lingers(log, 1);
    assert.equal(l?.outcome, "closed", "the client left without sending the body");
    assert.equal(l?.discardedBytes, 0);
  });
});

Deno.test("TlsServer: Expect: 100-continue within the cap gets 100 Continue at the first read", async () => {
  await withServer(async (port) => {
    const c = await Http1Connection.connect(port, certs.ca);
    try {
      const body = enc.encode("{}");
      await c.write(head(port, body.byteLength, "expect: 100-continue\r\n"));
      assert.equal((await c.readResponse()).status, 100);
      await c.write(body);
      const res = await c.readResponse();
      assert.equal(res.status, 400, "read and refused as a review");
      assert.notEqual(res.headers.get("connection"), "close", "the body was read: kept alive");
    } finally {
      c.close();
    }
  });
});

Deno.test("TlsServer: after an early 413, a client that sends its whole body and then reads gets it", async () => {
  await withServer(async (port, log) => {
    const size = 16 * CAP;
    for (let i = 0; i < 3; i++) {
      const c = await Http1Connection.connect(port, certs.ca);
      try {
        await c.write(head(port, size));
        await c.write(new Uint8Array(size).fill(0x20));
        const res = await c.readResponse();
        assert.equal(res.status, 413, res.body);
      } finally {
        c.close();
      }
    }
    const seen = await lingers(log, 3);
    assert.deepEqual(seen.map((l) => [l.outcome, l.discardedBytes]), [
      ["ended", size],
      ["ended", size],
      ["ended", size],
    ]);
  });
});

Deno.test("TlsServer: the lingering close stops at its byte bound and at its time bound", async () => {
  await withServer(async (port, log) => {
    // Bytes: 4 MiB declared and sent, 256 KiB dropped at most, then the connection is cut.
    const c = await Http1Connection.connect(port, certs.ca);
    let writeError: unknown;
    try {
      await c.write(head(port, 4 * 1024 * 1024));
      const reading = c.readResponse();
      const writing = c.write(new Uint8Array(4 * 1024 * 1024)).catch((err) => writeError = err);
      assert.equal((await reading).status, 413);
      await writing;
    } finally {
      c.close();
    }
    assert.ok(writeError, "cut off before 4 MiB were sent");
    const [bytes] = await lingers(log, 1);
    assert.equal(bytes?.outcome, "bytes");

    // Time: a declared body that never comes; the connection closes after lingerMs.
    const idle = await Http1Connection.connect(port, certs.ca);
    try {
      await idle.write(head(port, CAP + 1));
      const t0 = performance.now();
      assert.equal((await idle.readResponse()).status, 413);
      await assert.rejects(idle.readResponse(), /connection closed by the server/);
      const ms = performance.now() - t0;
      assert.ok(ms >= 250 && ms < 2_000, `closed after ${Math.round(ms)} ms`);
    } finally {
      idle.close();
    }
    const [, time] = await lingers(log, 2);
    assert.equal(time?.outcome, "time");
  }, { lingerBytes: 256 * 1024, lingerMs: 300 });
});
