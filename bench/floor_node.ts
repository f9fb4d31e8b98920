/**
 * The `node:https` floor: the least this project's own server stack (node:https
 * inside Deno, HTTP/1.1, TCP_NODELAY) can do per review. It reads the body,
 * parses it, takes `request.uid` and answers the same fixed patch as
 * `bench/floor.ts`, so the server's ratio to it compares like with like.
 *
 * Usage: deno run --allow-net=127.0.0.1 --allow-read=CERTDIR bench/floor_node.ts \
 *          --cert C --key K [--host 127.0.0.1] [--port 0]
 * Prints one JSON line `{"msg":"listening","port":N}`; exits 0 on SIGTERM.
 * @module
 */
import https from "node:https";
import { FLOOR_PATCH, floorFlag } from "./floor.ts";

if (import.meta.main) {
  const encoder = new TextEncoder();
  const patch = btoa(JSON.stringify(FLOOR_PATCH));
  const head = '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":';
  const tail = `,"allowed":true,"patchType":"JSONPatch","patch":"${patch}"}}`;
  const ok = encoder.encode('{"status":"ok"}');

  const server = https.createServer({
    cert: Deno.readTextFileSync(floorFlag("cert")),
    key: Deno.readTextFileSync(floorFlag("key")),
    noDelay: true,
  }, (req, res) => {
    if (req.method !== "POST") {
      res.writeHead(200, { "content-type": "application/json", "content-length": ok.byteLength });
      res.end(ok);
      return;
    }
    const chunks: Uint8Array[] = [];
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", () => {
      const review = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const uid = JSON.stringify(String(review?.request?.uid ?? ""));
      const body = encoder.encode(head + uid + tail);
      res.writeHead(200, { "content-type": "application/json", "content-length": body.byteLength });
      res.end(body);
    });
  });
  server.listen(Number(floorFlag("port", "0")), floorFlag("host", "127.0.0.1"), () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    Deno.stdout.writeSync(encoder.encode(JSON.stringify({ msg: "listening", port }) + "\n"));
  });
  Deno.addSignalListener("SIGTERM", () => {
    server.close(() => Deno.exit(0));
    server.closeAllConnections();
  });
}
