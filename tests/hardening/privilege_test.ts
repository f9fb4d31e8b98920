/**
 * The `serve` permission set is narrow, and the listener speaks only TLS >= 1.2.
 * @module
 */
import assert from "node:assert/strict";
import { makeCerts, note, REPO, spawnServer } from "./_server.ts";

const dec = new TextDecoder();

Deno.test("deno.json: the serve permission set grants no run/write/ffi/sys and only lists", async () => {
  const cfg = JSON.parse(await Deno.readTextFile(`${REPO}/deno.json`));
  const serve = cfg.permissions?.serve;
  assert.ok(serve && typeof serve === "object", "no serve permission set");
  for (const k of ["run", "write", "ffi", "sys", "all", "import"]) {
    assert.ok(
      serve[k] === undefined || serve[k] === false,
      `serve grants ${k}: ${JSON.stringify(serve[k])}`,
    );
  }
  for (const k of ["net", "read", "env"]) {
    assert.ok(
      Array.isArray(serve[k]),
      `serve.${k} must be a list, got ${JSON.stringify(serve[k])}`,
    );
    assert.ok(serve[k].length > 0, `serve.${k} is empty`);
    for (const v of serve[k]) {
      assert.equal(typeof v, "string");
      assert.notEqual(v, "", `serve.${k} has an empty entry (would mean everything)`);
      assert.notEqual(v, "/", `serve.${k} lists /`);
    }
  }
  assert.deepEqual(
    Object.keys(serve).sort(),
    ["env", "net", "read"],
    `unexpected keys in the serve set: ${Object.keys(serve)}`,
  );
});

Deno.test({
  name: "serve refuses cert/key paths outside its read allow-list (NotCapable, non-zero exit)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const certs = await makeCerts("priv");
    const outside = await Deno.makeTempDir({ prefix: "x-" }); // under /tmp
    try {
      await Deno.copyFile(certs.tlsCrt, `${outside}/tls.crt`);
      await Deno.copyFile(certs.tlsKey, `${outside}/tls.key`);
      const cases: Array<[string, string]> = [
        [`${outside}/tls.crt`, `${outside}/tls.key`],
        ["/etc/hostname", certs.tlsKey],
        [certs.tlsCrt, "/etc/hostname"],
        // A path that starts inside the allow-list and climbs out of it.
        [`${REPO}/.tmp/../../../${outside}/tls.crt`, `${outside}/tls.key`],
      ];
      for (const [i, [cert, key]] of cases.entries()) {
        const server = await spawnServer(certs, { name: `case-${i}`, cert, key, waitReady: false });
        try {
          const status = await server.proc.status;
          await server.close();
          const output = server.output();
          assert.notEqual(status.code, 0, `started with --cert ${cert} --key ${key}:\n${output}`);
          assert.match(output, /NotCapable/, `no NotCapable for ${cert} / ${key}:\n${output}`);
          assert.doesNotMatch(output, /"msg":"listening"/);
        } finally {
          await server.close();
        }
      }
    } finally {
      await Deno.remove(outside, { recursive: true }).catch(() => {});
      await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
    }
  },
});

async function sClient(port: number, flag: string): Promise<{ ok: boolean; text: string }> {
  const out = await new Deno.Command("openssl", {
    args: [
      "s_client",
      "-connect",
      `127.0.0.1:${port}`,
      flag,
      "-cipher",
      "DEFAULT@SECLEVEL=0",
      "-servername",
      "localhost",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = dec.decode(out.stdout) + dec.decode(out.stderr);
  const proto = /Protocol\s*:\s*(\S+)/.exec(text)?.[1] ?? /New, (TLSv[\d.]+)/.exec(text)?.[1];
  const negotiated = proto !== undefined && !/Cipher is \(NONE\)/.test(text);
  return { ok: out.success && negotiated, text };
}

Deno.test({
  name: "the listener refuses plaintext HTTP and negotiates only TLS >= 1.2",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const certs = await makeCerts("tls");
    const server = await spawnServer(certs, { drainDelayMs: 0 });
    try {
      const { port } = server;
      // Plain HTTP on the TLS port.
      let plainStatus: number | string;
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
          signal: AbortSignal.timeout(5000),
        });
        plainStatus = res.status;
        await res.body?.cancel();
      } catch (err) {
        plainStatus = err instanceof Error ? err.name : String(err);
      }
      note(`plaintext fetch: ${plainStatus}`);
      assert.notEqual(plainStatus, 200, "plain HTTP got a 200 on the TLS port");

      // The raw bytes: nothing that looks like an HTTP answer comes back.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(new TextEncoder().encode("GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"));
        const buf = new Uint8Array(4096);
        const n = await Promise.race([
          conn.read(buf).catch(() => null),
          new Promise<null>((r) => setTimeout(() => r(null), 3000)),
        ]);
        const text = n ? dec.decode(buf.subarray(0, n)) : "";
        assert.doesNotMatch(text, /^HTTP\/1\.\d 200/, `plaintext answer: ${JSON.stringify(text)}`);
      } finally {
        conn.close();
      }

      const v12 = await sClient(port, "-tls1_2");
      assert.ok(v12.ok, `TLS 1.2 handshake failed:\n${v12.text.slice(-1500)}`);
      const v13 = await sClient(port, "-tls1_3");
      assert.ok(v13.ok, `TLS 1.3 handshake failed:\n${v13.text.slice(-1500)}`);
      for (const flag of ["-tls1_1", "-tls1"]) {
        const old = await sClient(port, flag);
        if (
          /no protocols available|unsupported protocol.*client|wrong ssl version/i.test(old.text) &&
          !/alert protocol version|tlsv1 alert/i.test(old.text)
        ) {
          note(`openssl ${flag}: the local openssl refused to offer it; not checked`);
          continue;
        }
        note(
          `openssl ${flag}: ${
            old.ok ? "NEGOTIATED" : "refused"
          } (${(/(alert[^\n:]*|no protocols available|wrong version number)/i.exec(old.text)?.[1] ??
            "")})`,
        );
        assert.ok(!old.ok, `${flag} negotiated:\n${old.text.slice(-1500)}`);
      }
    } finally {
      await server.close();
      await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
    }
  },
});
