# Sourced by the image build scripts: `copy_extra_ca` refreshes base-image/ca-certificates/, the
# CA files an image build trusts before it uses the network (a TLS-intercepting proxy), so every
# image that copies that folder trusts the same set. Paths come from $EXTRA_CA_CERTS
# (colon-separated); unset means the host bundle /etc/ssl/certs/ca-certificates.crt if present,
# empty means none. Only what this run asks for ends up in the image. Needs the caller's die and log.
copy_extra_ca() {
  local dir ca files=()
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ca-certificates"
  find "$dir" -maxdepth 1 -name '*.crt' -delete
  if [[ -z "${EXTRA_CA_CERTS+set}" && -f /etc/ssl/certs/ca-certificates.crt ]]; then
    files=(/etc/ssl/certs/ca-certificates.crt)
  else
    IFS=':' read -r -a files <<<"${EXTRA_CA_CERTS:-}"
  fi
  for ca in "${files[@]}"; do
    [[ -n "$ca" ]] || continue
    [[ -f "$ca" ]] || die "EXTRA_CA_CERTS lists '$ca', which is not a file; fix the path or unset EXTRA_CA_CERTS."
    grep -q 'BEGIN CERTIFICATE' "$ca" || die "'$ca' (from EXTRA_CA_CERTS) holds no PEM certificate."
    # Unique .crt name per source path, so two files called ca.crt do not overwrite each other.
    cp "$ca" "$dir/extra-$(printf '%s' "$ca" | sha256sum | cut -c1-12)-$(basename "${ca%.*}").crt"
    log "adding CA file $ca"
  done
}
