import assert from "node:assert/strict";
import { genCertTexts as genCerts } from "../../testing/certs.ts";
import { exec } from "../../testing/process.ts";
import { CertificateError, daysUntil, notAfter, verifyServingCert } from "./cert.ts";

async function enddate(pem: string): Promise<Date> {
  const r = await exec("openssl", ["x509", "-noout", "-enddate"], { stdin: pem });
  return new Date(r.stdout.trim().replace(/^notAfter=/, ""));
}

Deno.test("verifyServingCert(): the right CA verifies, another CA with the same name does not", async () => {
  const [a, b] = await Promise.all([genCerts("--days", "40"), genCerts()]);
  const now = new Date();
  const ok = verifyServingCert(a.ca, a.cert, now);
  assert.equal(ok.ok, true, ok.detail);
  assert.equal(ok.notAfter.getTime(), (await enddate(a.cert)).getTime());
  assert.ok(ok.daysLeft === 39 || ok.daysLeft === 40, `${ok.daysLeft} days`);
  // Same subject (gen-certs names every CA alike), other key: must not verify.
  const bad = verifyServingCert(b.ca, a.cert, now);
  assert.equal(bad.ok, false);
  assert.match(
    bad.detail,
    /caBundle does not verify the serving certificate \(issuer CN=sidecar-injector-ca/,
  );
  // A bundle holding both CAs verifies: what a CA rotation leaves in caBundle.
  assert.equal(verifyServingCert(b.ca + a.ca, a.cert, now).ok, true);
});

Deno.test("verifyServingCert(): expired and not-yet-valid leaves fail; junk throws", async () => {
  const { ca, cert: leaf } = await genCerts("--days", "2");
  const expired = verifyServingCert(ca, leaf, new Date(Date.now() + 3 * 86_400_000));
  assert.equal(expired.ok, false);
  assert.match(expired.detail, /^expired /);
  assert.ok(expired.daysLeft < 0);
  assert.match(verifyServingCert(ca, leaf, new Date(0)).detail, /not valid before/);
  assert.throws(() => verifyServingCert("nothing", leaf, new Date()), CertificateError);
  assert.throws(
    () =>
      verifyServingCert(
        ca,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        new Date(),
      ),
    /serving certificate: certificate 1 unreadable/,
  );
});

Deno.test("notAfter() and daysUntil()", async () => {
  const { cert: leaf } = await genCerts("--days", "10");
  assert.equal(notAfter(leaf).getTime(), (await enddate(leaf)).getTime());
  assert.equal(daysUntil(new Date(86_400_000 * 3), new Date(0)), 3);
  assert.equal(daysUntil(new Date(0), new Date(1)), -1);
});
