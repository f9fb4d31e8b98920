/**
 * TLS material from the repo's own `k8s/gen-certs.sh` (openssl), as text,
 * for unit tests that need a real CA and leaf.
 * @module
 */
import { exec, REPO_ROOT } from "./process.ts";

/** PEM texts of a CA, a leaf it signed, and the leaf's key. */
export interface CertTexts {
  ca: string;
  cert: string;
  key: string;
}

/** Runs `k8s/gen-certs.sh ...args` in a temp dir, reads the PEMs, removes the dir. */
export async function genCertTexts(...args: string[]): Promise<CertTexts> {
  const dir = await Deno.makeTempDir({ prefix: "gen-certs-" });
  try {
    const r = await exec("bash", [`${REPO_ROOT}/k8s/gen-certs.sh`, "--out", dir, ...args]);
    if (r.code !== 0) throw new Error(`k8s/gen-certs.sh ${args.join(" ")} failed: ${r.stderr}`);
    const read = (f: string) => Deno.readTextFile(`${dir}/${f}`);
    return { ca: await read("ca.crt"), cert: await read("tls.crt"), key: await read("tls.key") };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
