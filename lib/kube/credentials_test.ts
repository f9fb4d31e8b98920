import assert from "node:assert/strict";
import {
  defaultKubeconfigPaths,
  findCredentials,
  inClusterCredentials,
  KubeconfigError,
  loadKubeconfig,
} from "./credentials.ts";

/** An in-memory file system: path -> text; anything else is NotFound, as Deno.readTextFile says. */
function files(map: Record<string, string>) {
  return (path: string): Promise<string> =>
    Object.hasOwn(map, path)
      ? Promise.resolve(map[path]!)
      : Promise.reject(new Deno.errors.NotFound(`no ${path}`));
}

const CA = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";

const KUBECONFIG = `
apiVersion: v1
kind: Config
current-context: dev
clusters:
  - name: dev
    cluster:
      server: https://10.0.0.1:6443/
      certificate-authority: certs/ca.crt
  - name: prod
    cluster:
      server: https://prod.example.com
      certificate-authority-data: ${btoa(CA)}
      tls-server-name: api.internal
users:
  - name: dev-admin
    user:
      client-certificate: /abs/admin.crt
      client-key-data: ${btoa("KEY")}
  - name: prod-sso
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1
        command: kubelogin
        args: [get-token]
        env: [{ name: MODE, value: ci }]
        installHint: install kubelogin
contexts:
  - name: dev
    context: { cluster: dev, user: dev-admin }
  - name: prod
    context: { cluster: prod, user: prod-sso, namespace: shop }
`;

Deno.test("loadKubeconfig(): the current context with files relative to the kubeconfig", async () => {
  const read = files({
    "/home/u/.kube/config": KUBECONFIG,
    "/home/u/.kube/certs/ca.crt": CA,
    "/abs/admin.crt": "CERT",
  });
  const creds = await loadKubeconfig(["/home/u/.kube/config"], { read });
  assert.deepEqual(creds, {
    server: "https://10.0.0.1:6443",
    insecureSkipTlsVerify: false,
    namespace: "default",
    ca: CA,
    clientCert: "CERT",
    clientKey: "KEY",
  });
});

Deno.test("loadKubeconfig(): --context, base64 data, tls-server-name and an exec plugin", async () => {
  const read = files({ "/k": KUBECONFIG });
  const creds = await loadKubeconfig(["/k"], { context: "prod", read });
  assert.equal(creds.ca, CA);
  assert.equal(creds.tlsServerName, "api.internal");
  assert.equal(creds.namespace, "shop");
  assert.deepEqual(creds.exec, {
    apiVersion: "client.authentication.k8s.io/v1",
    command: "kubelogin",
    args: ["get-token"],
    env: { MODE: "ci" },
    installHint: "install kubelogin",
  });
});

Deno.test("loadKubeconfig(): files merge as kubectl merges them (first wins), missing ones skipped", async () => {
  const first = `
current-context: mine
contexts: [{ name: mine, context: { cluster: c, user: u } }]
users: [{ name: u, user: { token: first-token } }]
`;
  const second = `
current-context: theirs
clusters: [{ name: c, cluster: { server: "https://[::1]:6443" } }]
users: [{ name: u, user: { token: second-token } }, { name: v, user: { tokenFile: tok } }]
`;
  const read = files({ "/a/one": first, "/b/two": second });
  const creds = await loadKubeconfig(["/a/one", "/missing", "/b/two"], { read });
  assert.equal(creds.token, "first-token");
  assert.equal(creds.server, "https://[::1]:6443");
});

Deno.test("loadKubeconfig(): every unusable kubeconfig is a KubeconfigError naming why", async () => {
  const cases: Array<[string, RegExp]> = [
    ["current-context: x\n", /context x is not in the kubeconfig/],
    ["clusters: {}\n", /clusters must be a list/],
    [
      "contexts: [{ name: a, context: { cluster: nope } }]\ncurrent-context: a\n",
      /cluster nope not found/,
    ],
    [
      "clusters: [{ name: c, cluster: { server: 'http://x' } }]\ncontexts: [{ name: a, context: { cluster: c } }]\ncurrent-context: a\n",
      /only https is supported/,
    ],
    [
      "clusters: [{ name: c, cluster: { server: 'https://x' } }]\nusers: [{ name: u, user: { client-certificate-data: eA== } }]\ncontexts: [{ name: a, context: { cluster: c, user: u } }]\ncurrent-context: a\n",
      /a client certificate needs its key/,
    ],
    [
      "clusters: [{ name: c, cluster: { server: 'https://x' } }]\nusers: [{ name: u, user: { auth-provider: { name: gcp } } }]\ncontexts: [{ name: a, context: { cluster: c, user: u } }]\ncurrent-context: a\n",
      /auth-provider is not supported/,
    ],
    [
      "clusters: [{ name: c, cluster: { server: 'https://x', certificate-authority: /nope } }]\ncontexts: [{ name: a, context: { cluster: c } }]\ncurrent-context: a\n",
      /certificate-authority: cannot read \/nope/,
    ],
    ["a: [\n", /not valid YAML/],
  ];
  for (const [text, why] of cases) {
    await assert.rejects(loadKubeconfig(["/k"], { read: files({ "/k": text }) }), (err) => {
      assert.ok(err instanceof KubeconfigError, String(err));
      assert.match(err.message, why);
      return true;
    });
  }
  await assert.rejects(loadKubeconfig(["/none"], { read: files({}) }), /no kubeconfig found/);
});

Deno.test("inClusterCredentials(): the mounted token is re-read from its file", async () => {
  const dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  const read = files({
    [`${dir}/ca.crt`]: CA,
    [`${dir}/token`]: "t",
    [`${dir}/namespace`]: "ops\n",
  });
  assert.deepEqual(await inClusterCredentials({ read }), {
    server: "https://kubernetes.default.svc:443",
    ca: CA,
    insecureSkipTlsVerify: false,
    tokenFile: `${dir}/token`,
    namespace: "ops",
  });
  await assert.rejects(
    inClusterCredentials({ read: files({}) }),
    /automountServiceAccountToken off/,
  );
});

Deno.test("findCredentials(): --kubeconfig, then $KUBECONFIG or ~/.kube/config, then in-cluster", async () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.deepEqual(defaultKubeconfigPaths(env({ KUBECONFIG: "/a::/b", HOME: "/h" })), ["/a", "/b"]);
  assert.deepEqual(defaultKubeconfigPaths(env({ HOME: "/h" })), ["/h/.kube/config"]);
  assert.deepEqual(defaultKubeconfigPaths(env({})), []);

  const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
  const inCluster = { [`${sa}/ca.crt`]: CA, [`${sa}/token`]: "t" };
  const home = `clusters: [{ name: c, cluster: { server: "https://home" } }]
contexts: [{ name: a, context: { cluster: c } }]
current-context: a
`;
  const read = files({ "/h/.kube/config": home, ...inCluster });
  assert.equal((await findCredentials({ env: env({ HOME: "/h" }), read })).server, "https://home");
  assert.equal(
    (await findCredentials({ env: env({ HOME: "/elsewhere" }), read })).server,
    "https://kubernetes.default.svc:443",
  );
  await assert.rejects(
    findCredentials({ kubeconfig: "/given", env: env({ HOME: "/h" }), read }),
    /no kubeconfig found \(looked at \/given\)/,
  );
  await assert.rejects(
    findCredentials({ env: env({}), read: files({}) }),
    /no kubeconfig found .*; no in-cluster service-account token/,
  );
});
