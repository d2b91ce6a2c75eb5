# Sourced by the image build scripts: OCI_LABELS=(--label …) for `docker build`, one definition
# of the labels every image carries (title, description, version, revision, source, created).
# `created` is the commit's time, not the clock's: an unchanged tree then builds an identical image
# and every image built FROM it keeps its layer cache (as with SOURCE_DATE_EPOCH).
# Usage: oci_labels <title> <description> <version>
oci_labels() {
  local root revision created
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  revision="$(git -C "$root" rev-parse --verify -q HEAD 2>/dev/null || echo unknown)"
  created="$(TZ=UTC git -C "$root" log -1 --date=format-local:%Y-%m-%dT%H:%M:%SZ --format=%cd 2>/dev/null \
    || date -u +%Y-%m-%dT%H:%M:%SZ)"
  OCI_LABELS=(
    --label "org.opencontainers.image.title=$1"
    --label "org.opencontainers.image.description=$2"
    --label "org.opencontainers.image.version=$3"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.source=${DK_IMAGE_SOURCE:-https://github.com/datakit-platform/datakit}"
    --label "org.opencontainers.image.created=$created"
  )
}
