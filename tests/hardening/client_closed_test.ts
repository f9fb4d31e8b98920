/**
 * A client that goes away mid-request is not a server error: the real server
 * counts it and logs one debug line without a stack, never an error line.
 * @module
 */
import assert from "node:assert/strict";
import { buildRequest, Http1Connection } from "../../testing/http1.ts";
import { makeCerts, spawnServer } from "./_server.ts";

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("a client closing mid-body is counted as client_closed and logged at debug, not error", async () => {
  const certs = await makeCerts("closed");
  const server = await spawnServer(certs, {
    drainDelayMs: 0,
    extraArgs: ["--log-level", "debug"],
  });
  try {
    for (let i = 0; i < 3; i++) {
      const c = await Http1Connection.connect(server.port, certs.caPem);
      await c.write(enc.encode(
        `POST /mutate?timeout=10s HTTP/1.1\r\nhost: 127.0.0.1\r\n` +
          `content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"apiVersion":`,
      ));
      await sleep(50);
      c.close();
    }
    // The server keeps serving, and its metrics say what happened.
    let metrics = "";
    for (let tries = 0; tries < 50; tries++) {
      await sleep(100);
      const c = await Http1Connection.connect(server.port, certs.caPem);
      try {
        metrics = (await c.send(buildRequest("GET", "/metrics", "127.0.0.1"))).body;
      } finally {
        c.close();
      }
      if (/reason="client_closed"\} 3$/m.test(metrics)) break;
    }
    assert.match(metrics, /^sidecar_injector_errors_total\{reason="client_closed"\} 3$/m);
    assert.doesNotMatch(metrics, /reason="internal"/);
  } finally {
    await server.close();
  }
  const lines = server.logText().split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l)
  );
  const closed = lines.filter((l) => l.msg === "client closed the connection mid-request");
  assert.equal(closed.length, 3, "one debug line per closed request");
  for (const l of closed) {
    assert.equal(l.level, "debug");
    assert.equal(l.stack, undefined);
  }
  assert.deepEqual(lines.filter((l) => l.level === "error"), [], "no error lines");
  await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
});
