/**
 * The floor: the least a Deno TLS webhook can do per review. It reads the body
 * with `req.text()`, parses it, takes `request.uid`, and answers a FIXED ~1 KB
 * JSON patch (base64-encoded once at startup) as a one-chunk stream without
 * content-length: over TLS `Deno.serve` leaves Nagle on, and a length-delimited body over
 * ~300 bytes then waits for the client's delayed ACK (~44 ms a request); chunked does not.
 *
 * Usage: deno run --allow-net=127.0.0.1 --allow-read=CERTDIR bench/floor.ts \
 *          --cert C --key K [--host 127.0.0.1] [--port 0]
 * Prints one JSON line `{"msg":"listening","port":N}`; exits 0 on SIGTERM.
 * @module
 */

/** The fixed patch: a native fluentd sidecar, its emptyDir, a mount on container 0, a status annotation. */
export const FLOOR_PATCH = [
  {
    op: "add",
    path: "/metadata/annotations/sidecar-injector.io~1status",
    value: '{"version":1,"profile":"fluentd","sidecar":"fluentd","volume":"app-logs"}',
  },
  { op: "add", path: "/spec/volumes/-", value: { name: "app-logs", emptyDir: {} } },
  {
    op: "add",
    path: "/spec/containers/0/volumeMounts/-",
    value: { name: "app-logs", mountPath: "/var/log/app" },
  },
  {
    op: "add",
    path: "/spec/initContainers",
    value: [{
      name: "fluentd",
      restartPolicy: "Always",
      image: "fluent/fluentd:v1.17-1",
      imagePullPolicy: "IfNotPresent",
      env: [
        { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
      ],
      resources: {
        requests: { cpu: "20m", memory: "64Mi" },
        limits: { cpu: "200m", memory: "256Mi" },
      },
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 65534,
        runAsGroup: 65534,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      },
      volumeMounts: [{ name: "app-logs", mountPath: "/var/log/app" }],
    }],
  },
];

/** The value of `--name` in the command line, or `fallback`; throws when neither exists. */
export function floorFlag(name: string, fallback?: string): string {
  const i = Deno.args.indexOf(`--${name}`);
  const v = i >= 0 ? Deno.args[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

if (import.meta.main) {
  const cert = Deno.readTextFileSync(floorFlag("cert"));
  const key = Deno.readTextFileSync(floorFlag("key"));
  const encoder = new TextEncoder();
  const patch = btoa(JSON.stringify(FLOOR_PATCH));
  const head = '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":';
  const tail = `,"allowed":true,"patchType":"JSONPatch","patch":"${patch}"}}`;
  const headers = { "content-type": "application/json" };

  const oneChunk = (bytes: Uint8Array) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      },
    });

  const server = Deno.serve({
    hostname: floorFlag("host", "127.0.0.1"),
    port: Number(floorFlag("port", "0")),
    cert,
    key,
    onListen: ({ port }) => {
      Deno.stdout.writeSync(encoder.encode(JSON.stringify({ msg: "listening", port }) + "\n"));
    },
  }, async (req) => {
    if (req.method !== "POST") return new Response(oneChunk(encoder.encode('{"status":"ok"}')));
    const review = JSON.parse(await req.text());
    const uid = JSON.stringify(String(review?.request?.uid ?? ""));
    return new Response(oneChunk(encoder.encode(head + uid + tail)), { headers });
  });
  Deno.addSignalListener("SIGTERM", () => {
    server.shutdown().then(() => Deno.exit(0));
  });
  await server.finished;
}
