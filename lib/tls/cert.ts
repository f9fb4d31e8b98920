/**
 * X.509 facts the injector reports: when a serving certificate expires, and
 * whether a CA bundle (a webhook's `caBundle`) verifies it. Pure: PEM text and
 * the time in, facts out.
 * @module
 */
import { X509Certificate } from "node:crypto";

/** A certificate (or bundle) could not be parsed. */
export class CertificateError extends Error {
  override name = "CertificateError";
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const DAY_MS = 86_400_000;

/** A serving certificate is reported (server log, `audit`) from this many days before it expires. */
export const CERT_WARN_DAYS = 30;

/** Every certificate in `pem`, in order. */
export function parseCertificates(pem: string, what = "certificate"): X509Certificate[] {
  const blocks = pem.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new CertificateError(`${what}: no PEM certificate`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new CertificateError(
        `${what}: certificate ${i + 1} unreadable: ${err instanceof Error ? err.message : err}`,
      );
    }
  });
}

/** The expiry of the first certificate of `pem` (the leaf of a chain). */
export function notAfter(pem: string): Date {
  const [leaf] = parseCertificates(pem);
  return new Date((leaf as X509Certificate).validTo);
}

/** Whole days from `now` to `date` (negative once past). */
export function daysUntil(date: Date, now: Date): number {
  return Math.floor((date.getTime() - now.getTime()) / DAY_MS);
}

/** The outcome of {@link verifyServingCert}. */
export interface ServingCertCheck {
  /** True when the bundle verifies the leaf and the leaf is valid now. */
  ok: boolean;
  /** For people: what was checked and what failed. */
  detail: string;
  notAfter: Date;
  daysLeft: number;
}

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

/**
 * Checks that `caBundle` verifies the chain `servingPem` (leaf first,
 * intermediates after it) as the apiserver will, and that the leaf is valid at `now`.
 *
 * @throws {CertificateError} when either PEM cannot be parsed.
 */
export function verifyServingCert(
  caBundle: string,
  servingPem: string,
  now: Date,
): ServingCertCheck {
  const anchors = parseCertificates(caBundle, "caBundle");
  const chain = parseCertificates(servingPem, "serving certificate");
  const leaf = chain[0] as X509Certificate;
  const expiry = new Date(leaf.validTo);
  const result = (ok: boolean, detail: string): ServingCertCheck => ({
    ok,
    detail,
    notAfter: expiry,
    daysLeft: daysUntil(expiry, now),
  });
  let current = leaf;
  const unused = chain.slice(1);
  for (;;) {
    if (anchors.some((a) => a.fingerprint256 === current.fingerprint256 || signedBy(current, a))) {
      break;
    }
    const i = unused.findIndex((c) => signedBy(current, c));
    if (i < 0) {
      return result(
        false,
        `caBundle does not verify the serving certificate (issuer ${
          current.issuer.replaceAll("\n", ", ")
        })`,
      );
    }
    current = unused.splice(i, 1)[0] as X509Certificate;
  }
  if (now < new Date(leaf.validFrom)) return result(false, `not valid before ${leaf.validFrom}`);
  if (now >= expiry) return result(false, `expired ${expiry.toISOString()}`);
  return result(true, "caBundle verifies the serving certificate");
}
