import assert from "node:assert/strict";
import { type CertTexts, genCertTexts } from "../../testing/certs.ts";
import { KubeClient, KubeError } from "./client.ts";
import type { Credentials } from "./credentials.ts";
import { parseExecCredential, runExecPlugin } from "./exec_credential.ts";

type Tls = CertTexts;
const tls = () => genCertTexts("--san", "IP:127.0.0.1");

/** A TLS server standing in for the apiserver's answers (the e2e tests use the real one). */
function apiServer(certs: Tls, handler: (req: Request) => Response | Promise<Response>) {
  const seen: Array<{ url: string; authorization: string | null }> = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: certs.cert, key: certs.key, onListen() {} },
    (req) => {
      seen.push({ url: req.url, authorization: req.headers.get("authorization") });
      return handler(req);
    },
  );
  return { server, seen, url: `https://127.0.0.1:${server.addr.port}` };
}

const creds = (url: string, certs: Tls, extra: Partial<Credentials> = {}): Credentials => ({
  server: url,
  ca: certs.ca,
  insecureSkipTlsVerify: false,
  namespace: "default",
  ...extra,
});

Deno.test("KubeClient: pages a list with limit/continue and maps a Status to KubeError", async () => {
  const certs = await tls();
  const api = apiServer(certs, (req) => {
    const u = new URL(req.url);
    if (u.pathname === "/api/v1/pods") {
      const page = u.searchParams.get("continue") ?? "";
      const next = page === "" ? "p2" : "";
      return Response.json({ items: [{ page }], metadata: { continue: next } });
    }
    return Response.json({ kind: "Status", message: 'pods "x" is forbidden', code: 403 }, {
      status: 403,
    });
  });
  const client = new KubeClient(creds(api.url, certs, { token: "tok" }));
  try {
    const pages = [];
    for await (const items of client.list("/api/v1/pods", { fieldSelector: "a!=b" }, 2)) {
      pages.push(items);
    }
    assert.deepEqual(pages, [[{ page: "" }], [{ page: "p2" }]]);
    const first = new URL(api.seen[0]!.url);
    assert.equal(first.searchParams.get("limit"), "2");
    assert.equal(first.searchParams.get("fieldSelector"), "a!=b");
    assert.equal(api.seen[0]!.authorization, "Bearer tok");
    await assert.rejects(client.get("/api/v1/secrets"), (err) => {
      assert.ok(err instanceof KubeError);
      assert.equal(err.status, 403);
      assert.equal(err.message, 'GET /api/v1/secrets: 403 pods "x" is forbidden');
      return true;
    });
  } finally {
    client.close();
    await api.server.shutdown();
  }
});

Deno.test("KubeClient: verifies the server with the CA; another CA is refused", async () => {
  const [certs, other] = await Promise.all([tls(), tls()]);
  const api = apiServer(certs, () => Response.json({}));
  const wrong = new KubeClient(creds(api.url, other));
  const insecure = new KubeClient(creds(api.url, other, { insecureSkipTlsVerify: true }));
  try {
    await assert.rejects(wrong.get("/version"), (err) => {
      assert.ok(err instanceof KubeError);
      assert.equal(err.status, undefined);
      assert.match(err.message, /^GET \/version on https:\/\/127\.0\.0\.1:\d+: /);
      return true;
    });
    assert.deepEqual(await insecure.get("/version"), {});
  } finally {
    wrong.close();
    insecure.close();
    await api.server.shutdown();
  }
});

Deno.test("KubeClient: a token file is re-read; getIfExists maps 404 to undefined", async () => {
  const certs = await tls();
  const api = apiServer(
    certs,
    (req) =>
      new URL(req.url).pathname === "/gone"
        ? Response.json({ message: "not found" }, { status: 404 })
        : Response.json({ auth: req.headers.get("authorization") }),
  );
  let token = "one\n";
  const client = new KubeClient(creds(api.url, certs, { tokenFile: "/t" }), {
    read: () => Promise.resolve(token),
  });
  try {
    assert.deepEqual(await client.get("/x"), { auth: "Bearer one" });
    token = "two";
    assert.deepEqual(await client.get("/x"), { auth: "Bearer two" });
    assert.equal(await client.getIfExists("/gone"), undefined);
  } finally {
    client.close();
    await api.server.shutdown();
  }
});

Deno.test("KubeClient: an exec plugin's token is cached, and renewed after a 401", async () => {
  const certs = await tls();
  let accepted = "";
  const api = apiServer(
    certs,
    (req) =>
      req.headers.get("authorization") === `Bearer ${accepted}`
        ? Response.json({ ok: true })
        : Response.json({ message: "Unauthorized" }, { status: 401 }),
  );
  const dir = await Deno.makeTempDir({ prefix: "exec-plugin-" });
  // A real plugin process: prints a new token each run (a counter in a file).
  const script = `n=$(( $(cat ${dir}/n 2>/dev/null || echo 0) + 1 )); echo $n > ${dir}/n; ` +
    `printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",` +
    `"status":{"token":"t%s"}}' $n`;
  const client = new KubeClient(
    creds(api.url, certs, {
      exec: {
        apiVersion: "client.authentication.k8s.io/v1",
        command: "bash",
        args: ["-c", script],
        env: {},
      },
    }),
  );
  try {
    accepted = "t1";
    assert.deepEqual(await client.get("/a"), { ok: true });
    assert.deepEqual(await client.get("/a"), { ok: true });
    assert.equal((await Deno.readTextFile(`${dir}/n`)).trim(), "1", "cached: one run");
    accepted = "t2";
    assert.deepEqual(await client.get("/a"), { ok: true }, "401, plugin run again, retried");
    assert.equal((await Deno.readTextFile(`${dir}/n`)).trim(), "2");
  } finally {
    client.close();
    await api.server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec plugins: KUBERNETES_EXEC_INFO, expiry, failures", async () => {
  const v1 = "client.authentication.k8s.io/v1";
  const echoInfo = await runExecPlugin({
    apiVersion: v1,
    command: "bash",
    args: [
      "-c",
      `printf '{"apiVersion":"${v1}","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"2030-01-01T00:00:00Z"}}' "$MODE:$(echo "$KUBERNETES_EXEC_INFO" | tr -d '"{}: ')"`,
    ],
    env: { MODE: "ci" },
  });
  assert.equal(
    echoInfo.token,
    `ci:apiVersion${v1.replaceAll(":", "")},kindExecCredential,specinteractivefalse`,
  );
  assert.equal(echoInfo.expiresAt, Date.parse("2030-01-01T00:00:00Z"));
  await assert.rejects(
    runExecPlugin({
      apiVersion: v1,
      command: "bash",
      args: ["-c", "echo no >&2; exit 3"],
      env: {},
    }),
    /exec plugin bash exited 3: no/,
  );
  await assert.rejects(
    runExecPlugin({
      apiVersion: v1,
      command: "/nonexistent/kubelogin",
      args: [],
      env: {},
      installHint: "install kubelogin",
    }),
    /exec plugin \/nonexistent\/kubelogin: .*\ninstall kubelogin/,
  );
  const certs = parseExecCredential(
    JSON.stringify({
      apiVersion: v1,
      kind: "ExecCredential",
      status: { clientCertificateData: "C", clientKeyData: "K" },
    }),
    v1,
  );
  assert.deepEqual(certs, { clientCert: "C", clientKey: "K" });
  assert.throws(() => parseExecCredential("{}", v1), /did not print an ExecCredential/);
  assert.throws(
    () => parseExecCredential(JSON.stringify({ apiVersion: "x", kind: "ExecCredential" }), v1),
    /answered x, expected/,
  );
  assert.throws(
    () =>
      parseExecCredential(
        JSON.stringify({ apiVersion: v1, kind: "ExecCredential", status: {} }),
        v1,
      ),
    /neither a token nor a client certificate/,
  );
});
