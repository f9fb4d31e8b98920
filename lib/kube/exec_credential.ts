/**
 * `users[].user.exec` credential plugins, as kubectl runs them: the command
 * prints an `ExecCredential` whose `status` carries a token or a client
 * certificate, valid until `expirationTimestamp`.
 * @module
 */
import { isRecord } from "../json/mod.ts";
import { type ExecConfig, KubeconfigError } from "./credentials.ts";

/** What a plugin returned. */
export interface ExecResult {
  token?: string;
  clientCert?: string;
  clientKey?: string;
  /** Epoch milliseconds; absent means "until the server refuses it". */
  expiresAt?: number;
}

/** Runs the command; a seam for tests. Returns its exit code and output. */
export type RunCommand = (
  command: string,
  args: string[],
  env: Record<string, string>,
) => Promise<{ code: number; stdout: string; stderr: string }>;

const decoder = new TextDecoder();

const runCommand: RunCommand = async (command, args, env) => {
  const out = await new Deno.Command(command, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
};

/** Parses a plugin's stdout (`unknown` until checked). */
export function parseExecCredential(text: string, apiVersion: string): ExecResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new KubeconfigError("exec plugin did not print JSON");
  }
  if (!isRecord(doc) || doc.kind !== "ExecCredential") {
    throw new KubeconfigError("exec plugin did not print an ExecCredential");
  }
  if (doc.apiVersion !== apiVersion) {
    throw new KubeconfigError(`exec plugin answered ${doc.apiVersion}, expected ${apiVersion}`);
  }
  const status = doc.status;
  if (!isRecord(status)) throw new KubeconfigError("exec plugin's ExecCredential has no status");
  const result: ExecResult = {};
  if (typeof status.token === "string" && status.token !== "") result.token = status.token;
  const cert = status.clientCertificateData;
  const key = status.clientKeyData;
  if (typeof cert === "string" && typeof key === "string" && cert !== "" && key !== "") {
    result.clientCert = cert;
    result.clientKey = key;
  }
  if (result.token === undefined && result.clientCert === undefined) {
    throw new KubeconfigError("exec plugin returned neither a token nor a client certificate");
  }
  if (typeof status.expirationTimestamp === "string") {
    const t = Date.parse(status.expirationTimestamp);
    if (Number.isNaN(t)) {
      throw new KubeconfigError("exec plugin's expirationTimestamp is not a time");
    }
    result.expiresAt = t;
  }
  return result;
}

/**
 * Runs the plugin non-interactively (its stdin is closed) with
 * `KUBERNETES_EXEC_INFO` set, as client-go does.
 *
 * @throws {KubeconfigError} when the command fails or prints no credential.
 */
export async function runExecPlugin(
  exec: ExecConfig,
  run: RunCommand = runCommand,
): Promise<ExecResult> {
  const info = {
    apiVersion: exec.apiVersion,
    kind: "ExecCredential",
    spec: { interactive: false },
  };
  let out;
  try {
    out = await run(exec.command, exec.args, {
      ...exec.env,
      KUBERNETES_EXEC_INFO: JSON.stringify(info),
    });
  } catch (err) {
    const hint = exec.installHint ? `\n${exec.installHint}` : "";
    throw new KubeconfigError(
      `exec plugin ${exec.command}: ${err instanceof Error ? err.message : err}${hint}`,
    );
  }
  if (out.code !== 0) {
    throw new KubeconfigError(
      `exec plugin ${exec.command} exited ${out.code}: ${out.stderr.trim().slice(0, 500)}`,
    );
  }
  return parseExecCredential(out.stdout, exec.apiVersion);
}
