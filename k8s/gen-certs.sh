#!/usr/bin/env bash
# Generate (or refresh) the TLS material for the sidecar-injector webhook.
#
# Produces, in the output directory:
#   ca.crt / ca.key           self-signed CA (reused across runs unless --rotate-ca)
#   tls.crt / tls.key         server certificate for the webhook Service (always fresh)
#   secret.yaml               kubernetes.io/tls Secret "sidecar-injector-certs"
#   cabundle-patch.yaml       kustomize JSON6902 patch setting the webhook caBundle
#
# Requires only bash and openssl (>= 1.1.1). Every file is written to a temporary
# file in the output directory first and then renamed into place, so re-running
# never leaves a half-written or duplicated file behind.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"

NAMESPACE="sidecar-injector"
SERVICE="sidecar-injector"
OUT_DIR="${SCRIPT_DIR}/generated"
ROTATE_CA=0
LEAF_DAYS=365
CA_DAYS=3650
CA_MIN_REMAINING_DAYS=30
SECRET_NAME="sidecar-injector-certs"
WEBHOOK_CONFIG_NAME="sidecar-injector"
EXTRA_SANS=()

usage() {
  cat <<EOF
Usage: $(basename -- "$0") [options]

Generate a CA (reused when still valid) and a fresh webhook server certificate,
plus a Kubernetes TLS Secret and a kustomize caBundle patch.

Options:
  --namespace NS   Namespace of the webhook Service        (default: ${NAMESPACE})
  --service NAME   Name of the webhook Service             (default: ${SERVICE})
  --out DIR        Output directory                        (default: <script dir>/generated)
  --san SAN        Extra subjectAltName in openssl syntax, e.g. IP:127.0.0.1 or
                   DNS:localhost. Repeatable.
  --rotate-ca      Always create a new CA, even if a valid one exists in DIR.
  --days N         Validity of the server certificate in days (default: ${LEAF_DAYS})
  -h, --help       Show this help and exit.

Output files (in DIR): ca.crt ca.key tls.crt tls.key secret.yaml cabundle-patch.yaml
EOF
}

die() {
  printf 'gen-certs: error: %s\n' "$*" >&2
  exit 1
}

log() {
  printf 'gen-certs: %s\n' "$*" >&2
}

need_arg() {
  # $1 = flag name, $2 = number of remaining args (including the flag)
  if [[ "$2" -lt 2 ]]; then
    die "$1 requires an argument"
  fi
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --namespace)
      need_arg "$1" "$#"
      NAMESPACE="$2"
      shift 2
      ;;
    --namespace=*)
      NAMESPACE="${1#*=}"
      shift
      ;;
    --service)
      need_arg "$1" "$#"
      SERVICE="$2"
      shift 2
      ;;
    --service=*)
      SERVICE="${1#*=}"
      shift
      ;;
    --out)
      need_arg "$1" "$#"
      OUT_DIR="$2"
      shift 2
      ;;
    --out=*)
      OUT_DIR="${1#*=}"
      shift
      ;;
    --san)
      need_arg "$1" "$#"
      EXTRA_SANS+=("$2")
      shift 2
      ;;
    --san=*)
      EXTRA_SANS+=("${1#*=}")
      shift
      ;;
    --rotate-ca)
      ROTATE_CA=1
      shift
      ;;
    --days)
      need_arg "$1" "$#"
      LEAF_DAYS="$2"
      shift 2
      ;;
    --days=*)
      LEAF_DAYS="${1#*=}"
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      die "unknown argument: $1"
      ;;
  esac
done

# --- validation ---------------------------------------------------------------

command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"

dns_label_re='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'
[[ "${NAMESPACE}" =~ ${dns_label_re} ]] || die "invalid --namespace '${NAMESPACE}' (must be a DNS-1123 label)"
[[ "${SERVICE}" =~ ${dns_label_re} ]] || die "invalid --service '${SERVICE}' (must be a DNS-1123 label)"
[[ "${LEAF_DAYS}" =~ ^[1-9][0-9]*$ ]] || die "invalid --days '${LEAF_DAYS}' (must be a positive integer)"
[[ -n "${OUT_DIR}" ]] || die "--out must not be empty"

for san in "${EXTRA_SANS[@]+"${EXTRA_SANS[@]}"}"; do
  # Commas or newlines would inject extra entries / config lines into openssl's config.
  if [[ "${san}" == *,* || "${san}" == *$'\n'* || "${san}" == *' '* ]]; then
    die "invalid --san '${san}' (no commas, spaces or newlines; repeat --san instead)"
  fi
  [[ "${san}" =~ ^(DNS|IP|URI|email|RID):.+$ ]] ||
    die "invalid --san '${san}' (expected openssl syntax like DNS:example.com or IP:127.0.0.1)"
done

# --- setup --------------------------------------------------------------------

umask 077
mkdir -p -- "${OUT_DIR}"
OUT_DIR="$(cd -- "${OUT_DIR}" && pwd)"

# Temp dir inside OUT_DIR so the final mv is a same-filesystem atomic rename.
WORK_DIR="$(mktemp -d "${OUT_DIR}/.gen-certs.XXXXXX")"
cleanup() {
  rm -rf -- "${WORK_DIR}"
}
trap cleanup EXIT

b64() {
  # Single-line base64 of a file, using openssl only (portable to macOS).
  openssl base64 -A -in "$1"
}

# --- CA -------------------------------------------------------------------------

ca_is_reusable() {
  local crt="${OUT_DIR}/ca.crt" key="${OUT_DIR}/ca.key"
  [[ -f "${crt}" && -f "${key}" ]] || return 1
  openssl x509 -in "${crt}" -noout >/dev/null 2>&1 || {
    log "existing ca.crt is not a readable certificate"
    return 1
  }
  openssl pkey -in "${key}" -noout >/dev/null 2>&1 || {
    log "existing ca.key is not a readable private key"
    return 1
  }
  local crt_pub key_pub
  crt_pub="$(openssl x509 -in "${crt}" -noout -pubkey 2>/dev/null)" || return 1
  key_pub="$(openssl pkey -in "${key}" -pubout 2>/dev/null)" || return 1
  if [[ "${crt_pub}" != "${key_pub}" ]]; then
    log "existing ca.crt and ca.key do not match"
    return 1
  fi
  local constraints
  constraints="$(openssl x509 -in "${crt}" -noout -ext basicConstraints 2>/dev/null)" || constraints=""
  if [[ "${constraints}" != *CA:TRUE* ]]; then
    log "existing ca.crt is not a CA certificate"
    return 1
  fi
  if ! openssl x509 -in "${crt}" -noout -checkend "$((CA_MIN_REMAINING_DAYS * 86400))" >/dev/null; then
    log "existing CA expires within ${CA_MIN_REMAINING_DAYS} days"
    return 1
  fi
  return 0
}

CA_REUSED=0
# shellcheck disable=SC2310 # ca_is_reusable is a predicate; set -e must not apply inside it.
if [[ "${ROTATE_CA}" -eq 0 ]] && ca_is_reusable; then
  CA_REUSED=1
  log "reusing existing CA in ${OUT_DIR}"
  cp -- "${OUT_DIR}/ca.crt" "${WORK_DIR}/ca.crt"
  cp -- "${OUT_DIR}/ca.key" "${WORK_DIR}/ca.key"
else
  if [[ "${ROTATE_CA}" -eq 1 ]]; then
    log "rotating CA (--rotate-ca)"
  else
    log "creating new CA"
  fi
  cat >"${WORK_DIR}/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca

[dn]
CN = ${SERVICE}-ca.${NAMESPACE}

[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
  # EC P-256 CA key (PKCS#8 PEM).
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "${WORK_DIR}/ca.key" 2>/dev/null
  CA_SERIAL_HEX="$(openssl rand -hex 16)"
  openssl req -new -x509 -sha256 \
    -key "${WORK_DIR}/ca.key" \
    -config "${WORK_DIR}/ca.cnf" \
    -days "${CA_DAYS}" \
    -set_serial "0x${CA_SERIAL_HEX}" \
    -out "${WORK_DIR}/ca.crt"
fi

# --- leaf ---------------------------------------------------------------------

CN="${SERVICE}.${NAMESPACE}.svc"
SAN_LIST="DNS:${SERVICE},DNS:${SERVICE}.${NAMESPACE},DNS:${SERVICE}.${NAMESPACE}.svc,DNS:${SERVICE}.${NAMESPACE}.svc.cluster.local"
for san in "${EXTRA_SANS[@]+"${EXTRA_SANS[@]}"}"; do
  SAN_LIST="${SAN_LIST},${san}"
done

cat >"${WORK_DIR}/leaf.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no

[dn]
CN = ${CN}

[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = ${SAN_LIST}
EOF

# RSA 2048 leaf key, PKCS#8 PEM ("BEGIN PRIVATE KEY"): loadable by rustls (Deno.serve),
# Go, OpenSSL and Java alike.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
  -out "${WORK_DIR}/tls.key" 2>/dev/null
openssl req -new -sha256 \
  -key "${WORK_DIR}/tls.key" \
  -config "${WORK_DIR}/leaf.cnf" \
  -out "${WORK_DIR}/tls.csr"

# Random 128-bit serial (openssl treats the hex value as a positive integer).
SERIAL_HEX="$(openssl rand -hex 16)"

openssl x509 -req -sha256 \
  -in "${WORK_DIR}/tls.csr" \
  -CA "${WORK_DIR}/ca.crt" \
  -CAkey "${WORK_DIR}/ca.key" \
  -set_serial "0x${SERIAL_HEX}" \
  -days "${LEAF_DAYS}" \
  -extfile "${WORK_DIR}/leaf.cnf" \
  -extensions v3_leaf \
  -out "${WORK_DIR}/tls.crt" 2>/dev/null

openssl verify -CAfile "${WORK_DIR}/ca.crt" "${WORK_DIR}/tls.crt" >/dev/null ||
  die "generated server certificate does not verify against the CA"

if ! openssl x509 -in "${WORK_DIR}/ca.crt" -noout -checkend "$((LEAF_DAYS * 86400))" >/dev/null; then
  log "warning: the CA expires before the server certificate (lower --days, or --rotate-ca if the CA was reused)"
fi

# --- Kubernetes manifests -----------------------------------------------------

CA_B64="$(b64 "${WORK_DIR}/ca.crt")"
TLS_CRT_B64="$(b64 "${WORK_DIR}/tls.crt")"
TLS_KEY_B64="$(b64 "${WORK_DIR}/tls.key")"

cat >"${WORK_DIR}/secret.yaml" <<EOF
# Generated by k8s/gen-certs.sh. Do not edit; re-run the script instead.
apiVersion: v1
kind: Secret
metadata:
  name: ${SECRET_NAME}
  namespace: ${NAMESPACE}
  labels:
    app.kubernetes.io/name: sidecar-injector
type: kubernetes.io/tls
data:
  tls.crt: ${TLS_CRT_B64}
  tls.key: ${TLS_KEY_B64}
  ca.crt: ${CA_B64}
EOF

cat >"${WORK_DIR}/cabundle-patch.yaml" <<EOF
# Generated by k8s/gen-certs.sh. Do not edit; re-run the script instead.
# JSON6902 patch for MutatingWebhookConfiguration ${WEBHOOK_CONFIG_NAME}: sets the CA
# bundle the API server uses to verify the webhook's serving certificate.
- op: add
  path: /webhooks/0/clientConfig/caBundle
  value: ${CA_B64}
EOF

# --- install atomically -------------------------------------------------------

chmod 0600 "${WORK_DIR}/ca.key" "${WORK_DIR}/tls.key" "${WORK_DIR}/secret.yaml"
chmod 0644 "${WORK_DIR}/ca.crt" "${WORK_DIR}/tls.crt" "${WORK_DIR}/cabundle-patch.yaml"

# Each file is replaced by an atomic rename (same directory), so no file is ever
# seen half-written; the files are independent renames, not one transaction.
for f in ca.key ca.crt tls.key tls.crt secret.yaml cabundle-patch.yaml; do
  mv -f -- "${WORK_DIR}/${f}" "${OUT_DIR}/${f}"
done

# --- summary ------------------------------------------------------------------

CA_NOT_AFTER="$(openssl x509 -in "${OUT_DIR}/ca.crt" -noout -enddate)"
LEAF_NOT_AFTER="$(openssl x509 -in "${OUT_DIR}/tls.crt" -noout -enddate)"
LEAF_SERIAL="$(openssl x509 -in "${OUT_DIR}/tls.crt" -noout -serial)"

if [[ "${CA_REUSED}" -eq 1 ]]; then
  log "CA:   reused   ${CA_NOT_AFTER}"
else
  log "CA:   new      ${CA_NOT_AFTER}"
fi
log "leaf: ${CN} ${LEAF_NOT_AFTER} ${LEAF_SERIAL}"
log "leaf SANs: ${SAN_LIST}"
log "wrote ${OUT_DIR}/{ca.crt,ca.key,tls.crt,tls.key,secret.yaml,cabundle-patch.yaml}"
