/**
 * Serving certificates: parsing, the checks the audit runs, and the expiry
 * gauge and warning.
 * @module
 */
export {
  CERT_WARN_DAYS,
  CertificateError,
  daysUntil,
  notAfter,
  parseCertificates,
  type ServingCertCheck,
  verifyServingCert,
} from "./cert.ts";
export {
  type CertExpiryMonitor,
  certExpiryMonitor,
  type CertExpiryOptions,
} from "./cert_expiry.ts";
