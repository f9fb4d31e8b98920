/**
 * The real `main.ts serve` process over TLS: a CA-pinned client, the
 * HTTP/1.1 keep-alive path kube-apiserver uses through a Service, certificate
 * rotation, and SIGTERM.
 */
import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { REPO_ROOT } from "./control_plane/harness.ts";
import {
  fileSerial,
  genWebhookCerts,
  servedSerial,
  startWebhook,
  type Webhook,
  type WebhookCerts,
} from "./control_plane/webhook.ts";
import { Http1Connection, median } from "../../testing/http1.ts";

const review = Deno.readTextFileSync(`${REPO_ROOT}/testdata/reviews/nginx-v1.json`);
const opts = { sanitizeOps: false, sanitizeResources: false };

async function withServer(
  fn: (w: Webhook, certs: WebhookCerts, dir: string) => Promise<void>,
  extraArgs: string[] = [],
) {
  await Deno.mkdir(`${REPO_ROOT}/.tmp`, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: `${REPO_ROOT}/.tmp`, prefix: "serve-" });
  const certs = await genWebhookCerts(`${dir}/certs`);
  const webhook = await startWebhook({
    certs,
    logPath: `${dir}/webhook.log`,
    timeoutMs: 60_000,
    extraArgs,
  });
  try {
    await fn(webhook, certs, dir);
  } finally {
    webhook.kill();
    await webhook.proc.status;
    await webhook.proc.drained;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test(
  "serve answers /mutate over HTTPS to a CA-pinned client with a patch that applies",
  opts,
  async () => {
    await withServer(async (w, certs) => {
      const client = Deno.createHttpClient({ caCerts: [certs.caPem] });
      try {
        const res = await fetch(`https://127.0.0.1:${w.port}/mutate?timeout=10s`, {
          method: "POST",
          body: review,
          headers: { "content-type": "application/json" },
          client,
        });
        assert.equal(res.status, 200);
        const body = await res.json();
        assert.equal(body.response.uid, JSON.parse(review).request.uid);
        const patch = JSON.parse(atob(body.response.patch));
        const pod =
          jsonpatch.applyPatch(JSON.parse(review).request.object, patch, true).newDocument;
        assert.deepEqual(pod.spec.containers.map((c: { name: string }) => c.name), ["nginx"]);
        assert.deepEqual(pod.spec.initContainers.map((c: { name: string }) => c.name), ["fluentd"]);
        assert.deepEqual(pod.spec.containers[0].volumeMounts, [{
          name: "app-logs",
          mountPath: "/var/log/app",
        }]);
      } finally {
        client.close();
      }
    });
  },
);

Deno.test(
  "serve answers sequential HTTP/1.1 keep-alive reviews far below the 40 ms TLS stall",
  opts,
  async () => {
    await withServer(async (w, certs) => {
      const conn = await Http1Connection.connect(w.port, certs.caPem);
      try {
        const times: number[] = [];
        for (let i = 0; i < 25; i++) {
          const t0 = performance.now();
          const res = await conn.request("POST", "/mutate?timeout=10s", review);
          times.push(performance.now() - t0);
          assert.equal(res.status, 200);
          assert.ok(res.body.length > 300, "a realistic patch-carrying answer");
          assert.match(res.body, /"patchType":"JSONPatch"/);
        }
        const m = median(times.slice(5));
        // Length-delimited bodies over ~300 bytes take ~44 ms each here (Nagle + delayed ACK).
        assert.ok(m < 10, `median ${m.toFixed(2)} ms over one kept-alive HTTP/1.1 connection`);
      } finally {
        conn.close();
      }
    });
  },
);

Deno.test(
  "serve rotates to a new certificate without dropping requests and rejects a bad pair",
  opts,
  async () => {
    await withServer(async (w, certs) => {
      const before = await servedSerial(w.port, certs.caCrt);
      assert.equal(before, await fileSerial(certs.tlsCrt));

      // Load on a kept-alive connection while the pair is replaced (gen-certs.sh reuses the CA, new leaf).
      const conn = await Http1Connection.connect(w.port, certs.caPem);
      let stop = false;
      let ok = 0;
      const failures: string[] = [];
      const load = (async () => {
        let c = conn;
        while (!stop) {
          try {
            const res = await c.request("POST", "/mutate", review);
            if (res.status === 200) ok++;
            else failures.push(`status ${res.status}`);
            if (res.headers.get("connection") === "close") {
              c.close();
              c = await Http1Connection.connect(w.port, certs.caPem);
            }
          } catch (err) {
            failures.push(String(err));
            break;
          }
        }
        c.close();
      })();
      const rotated = await genWebhookCerts(certs.dir);
      const after = await fileSerial(rotated.tlsCrt);
      assert.notEqual(after, before);
      let served = before;
      for (let i = 0; i < 50 && served !== after; i++) {
        await new Promise((r) => setTimeout(r, 100));
        served = await servedSerial(w.port, certs.caCrt);
      }
      await new Promise((r) => setTimeout(r, 500)); // let the old listener drain and close
      stop = true;
      await load;
      assert.equal(served, after, "new connections get the new certificate");
      assert.deepEqual(failures, [], `requests failed during rotation (ok: ${ok})`);
      assert.ok(ok > 20, `requests during rotation: ${ok}`);
      assert.match(w.logText(), /"msg":"certificate reloaded"/);

      // A half-written pair is rejected and the current one keeps serving.
      const good = await Deno.readTextFile(certs.tlsCrt);
      await Deno.writeTextFile(certs.tlsCrt, good.slice(0, 300));
      for (let i = 0; i < 50 && !/certificate reload rejected/.test(w.logText()); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(
        w.logText(),
        /"level":"error","msg":"certificate reload rejected; keeping the current pair"/,
      );
      assert.equal(await servedSerial(w.port, certs.caCrt), after);
    });
  },
);

Deno.test(
  "serve drains on SIGTERM: readiness fails, in-flight work finishes, exit 0",
  opts,
  async () => {
    await withServer(async (w, certs) => {
      const conn = await Http1Connection.connect(w.port, certs.caPem);
      try {
        assert.equal((await conn.request("GET", "/readyz")).status, 200);
        w.proc.child.kill("SIGTERM");
        await new Promise((r) => setTimeout(r, 50));
        const during = await conn.request("GET", "/readyz");
        assert.equal(during.status, 503, "not ready while draining");
        assert.equal(during.headers.get("connection"), "close", "clients are told to leave");
        const status = await w.proc.status;
        assert.equal(status.code, 0);
        assert.match(w.logText(), /"msg":"shutting down","signal":"SIGTERM"/);
        assert.match(w.logText(), /"msg":"stopped"/);
      } finally {
        conn.close();
      }
    });
  },
);

Deno.test("serve refuses connections beyond --max-connections and logs it", opts, async () => {
  await withServer(async (w, certs) => {
    const held = [
      await Http1Connection.connect(w.port, certs.caPem),
      await Http1Connection.connect(w.port, certs.caPem),
    ];
    try {
      for (const c of held) assert.equal((await c.request("GET", "/healthz")).status, 200);
      let refused = false;
      try {
        const extra = await Http1Connection.connect(w.port, certs.caPem);
        try {
          await extra.request("GET", "/healthz");
        } finally {
          extra.close();
        }
      } catch {
        refused = true;
      }
      assert.ok(refused, "a third connection must not be served");
      for (let i = 0; i < 20 && !/connection limit reached/.test(w.logText()); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(
        w.logText(),
        /"level":"warn","msg":"connection limit reached; refusing a connection","maxConnections":2/,
      );
      held[0]?.close();
      await new Promise((r) => setTimeout(r, 100));
      const again = await Http1Connection.connect(w.port, certs.caPem);
      try {
        assert.equal((await again.request("GET", "/healthz")).status, 200, "capacity is released");
      } finally {
        again.close();
      }
    } finally {
      for (const c of held) c.close();
    }
  }, ["--max-connections", "2"]);
});

Deno.test(
  "serve speaks only HTTP/1.1 (no h2 offered), so Go clients never hit the h2 Nagle stall",
  opts,
  async () => {
    await withServer(async (w, certs) => {
      const conn = await Deno.connectTls({
        hostname: "127.0.0.1",
        port: w.port,
        caCerts: [certs.caPem],
        alpnProtocols: ["h2", "http/1.1"],
      });
      try {
        const { alpnProtocol } = await conn.handshake();
        assert.equal(alpnProtocol, "http/1.1");
      } finally {
        conn.close();
      }
    });
  },
);

Deno.test(
  "serve reloads its config file when it changes, and keeps the last good one on a bad edit",
  opts,
  async () => {
    await Deno.mkdir(`${REPO_ROOT}/.tmp`, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: `${REPO_ROOT}/.tmp`, prefix: "cfg-" });
    const certs = await genWebhookCerts(`${dir}/certs`);
    const configFile = `${dir}/config/config.yaml`;
    await Deno.mkdir(`${dir}/config`);
    await Deno.writeTextFile(configFile, "defaultProfile: fluentd\n");
    const w = await startWebhook({ certs, logPath: `${dir}/webhook.log`, configFile });
    const conn = await Http1Connection.connect(w.port, certs.caPem);
    const sidecarName = async () => {
      const res = await conn.request("POST", "/mutate", review);
      assert.equal(res.status, 200);
      const patch = JSON.parse(atob(JSON.parse(res.body).response.patch));
      // The agent is the last op: a whole initContainers array, or one element appended.
      const last = patch.at(-1).value;
      return (Array.isArray(last) ? last[0] : last).name as string;
    };
    // Kubernetes swaps a ConfigMap volume's ..data symlink; a rename into place is the same event shape.
    const replace = async (text: string) => {
      await Deno.writeTextFile(`${configFile}.new`, text);
      await Deno.rename(`${configFile}.new`, configFile);
    };
    const waitFor = async (re: RegExp) => {
      for (let i = 0; i < 100 && !re.test(w.logText()); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(w.logText(), re);
    };
    try {
      assert.equal(await sidecarName(), "fluentd");
      await replace("defaultProfile: fluent-bit\n");
      await waitFor(/"msg":"config reloaded"/);
      assert.equal(await sidecarName(), "fluent-bit");

      await replace("defaultProfile: [broken\n");
      await waitFor(/"level":"error","msg":"config reload rejected; keeping the last good config"/);
      assert.equal(await sidecarName(), "fluent-bit", "the last good config keeps serving");
      assert.equal((await conn.request("GET", "/readyz")).status, 200, "still ready");

      await replace("defaultProfile: fluentd\n");
      for (
        let i = 0;
        i < 100 && (w.logText().match(/"msg":"config reloaded"/g) ?? []).length < 2;
        i++
      ) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(await sidecarName(), "fluentd");
      const metrics = await conn.request("GET", "/metrics");
      assert.match(metrics.body, /sidecar_injector_config_reloads_total\{result="ok"\} 2/);
      assert.match(metrics.body, /sidecar_injector_config_reloads_total\{result="rejected"\} 1/);
    } finally {
      conn.close();
      w.kill();
      await w.proc.status;
      await w.proc.drained;
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "serve refuses to start with an invalid config file, naming file, path and reason",
  opts,
  async () => {
    await Deno.mkdir(`${REPO_ROOT}/.tmp`, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: `${REPO_ROOT}/.tmp`, prefix: "badcfg-" });
    try {
      const certs = await genWebhookCerts(`${dir}/certs`);
      await Deno.writeTextFile(
        `${dir}/config.yaml`,
        "profiles:\n  fluentd:\n    logDir: relative\n",
      );
      const w = await startWebhook({
        certs,
        logPath: `${dir}/webhook.log`,
        configFile: `${dir}/config.yaml`,
        waitReady: false,
      });
      const status = await w.proc.status;
      await w.proc.drained;
      assert.equal(status.code, 2);
      assert.match(
        w.logText(),
        /invalid config; not starting.*config\.yaml: profiles\.fluentd\.logDir: must be an absolute path/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test(
  "serve exposes /metrics on a separate plain-HTTP port with --metrics-port",
  opts,
  async () => {
    await withServer(async (w, certs) => {
      let port = 0;
      for (let i = 0; i < 100 && !port; i++) {
        const line = w.logText().split("\n").find((l) => l.includes('"msg":"metrics listening"'));
        if (line) port = JSON.parse(line).port;
        else await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(port > 0, "metrics port logged");
      const conn = await Http1Connection.connect(w.port, certs.caPem);
      try {
        assert.equal((await conn.request("POST", "/mutate", review)).status, 200);
      } finally {
        conn.close();
      }
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      assert.match(
        await res.text(),
        /sidecar_injector_admissions_total\{decision="injected",profile="fluentd"\} 1/,
      );
      const other = await fetch(`http://127.0.0.1:${port}/mutate`, {
        method: "POST",
        body: review,
      });
      assert.equal(other.status, 404, "only /metrics on the plain port");
      await other.body?.cancel();
    }, ["--metrics-port", "0"]);
  },
);

Deno.test(
  "serve rejects a bad flag value as a usage error before starting anything",
  opts,
  async () => {
    await Deno.mkdir(`${REPO_ROOT}/.tmp`, { recursive: true });
    const dir = await Deno.makeTempDir({ dir: `${REPO_ROOT}/.tmp`, prefix: "badflag-" });
    try {
      const certs = await genWebhookCerts(`${dir}/certs`);
      for (const flag of ["--max-connections", "--max-in-flight", "--metrics-port"]) {
        const w = await startWebhook({
          certs,
          logPath: `${dir}/${flag.slice(2)}.log`,
          waitReady: false,
          extraArgs: [flag, "lots"],
        });
        const status = await w.proc.status;
        await w.proc.drained;
        assert.equal(status.code, 2, `${flag}: ${w.output()}`);
        assert.match(w.output(), new RegExp(`error: ${flag} must be an integer`));
        assert.doesNotMatch(w.output(), /"msg":"listening"/, `${flag}: nothing started`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
