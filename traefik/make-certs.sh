#!/usr/bin/env bash
# Local TLS for Traefik: traefik/make-certs.sh [DIR]   (DIR defaults to traefik/certs, git-ignored)
#
# Writes a local certificate authority (ca.crt, ca.key) and a server certificate signed by it
# (localhost.crt, localhost.key) for the host names of traefik/dynamic/routes.yml (subjectAltName).
# An existing CA is kept, so clients that already trust it keep working; the server certificate is
# issued anew on every run. DK_TLS_NEW_CA=1 replaces the CA too. DK_TLS_NAMES (space-separated)
# changes the host names.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="${1:-$HERE/certs}"
NAMES="${DK_TLS_NAMES:-airflow.localhost registry.localhost docs.localhost prometheus.localhost}"
CA_DAYS=3650
# 397 days: the longest validity browsers accept for a server certificate.
LEAF_DAYS=397

die() { echo "traefik/make-certs.sh: ERROR: $*" >&2; exit 1; }
log() { echo "traefik/make-certs.sh: $*" >&2; }

command -v openssl >/dev/null 2>&1 || die "openssl is not installed; install it (sudo apt-get install -y openssl)."
read -r -a names <<<"$NAMES"
((${#names[@]} > 0)) || die "DK_TLS_NAMES is empty; give at least one host name."
san=""
for name in "${names[@]}"; do
  [[ "$name" =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || die "\`$name\` is not a host name (DK_TLS_NAMES)."
  san+="${san:+,}DNS:$name"
done

mkdir -p "$DIR"
umask 077  # keys readable by their owner only
work="$(mktemp -d "$DIR/.make-certs.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [[ "${DK_TLS_NEW_CA:-0}" == 1 || ! -s "$DIR/ca.crt" || ! -s "$DIR/ca.key" ]]; then
  log "creating the local CA in $DIR/ca.crt"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$work/ca.key" -out "$work/ca.crt" -days "$CA_DAYS" -sha256 \
    -subj "/O=datakit/CN=datakit local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
  mv "$work/ca.key" "$DIR/ca.key"
  mv "$work/ca.crt" "$DIR/ca.crt"
fi

cat >"$work/leaf.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout "$work/localhost.key" -out "$work/localhost.csr" -subj "/O=datakit/CN=${names[0]}" 2>/dev/null
openssl x509 -req -in "$work/localhost.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$LEAF_DAYS" -sha256 \
  -extfile "$work/leaf.ext" -out "$work/localhost.crt" 2>/dev/null
openssl verify -CAfile "$DIR/ca.crt" "$work/localhost.crt" >/dev/null \
  || die "the new certificate does not verify against $DIR/ca.crt; rerun with DK_TLS_NEW_CA=1."
chmod 644 "$work/localhost.crt" "$DIR/ca.crt"
mv "$work/localhost.key" "$DIR/localhost.key"
mv "$work/localhost.crt" "$DIR/localhost.crt"

log "wrote $DIR/localhost.crt for ${names[*]} (signed by $DIR/ca.crt)"
log "trust the CA where clients run, e.g. Docker for the registry:"
log "  mkdir -p /etc/docker/certs.d/registry.localhost && cp $DIR/ca.crt /etc/docker/certs.d/registry.localhost/ca.crt"
