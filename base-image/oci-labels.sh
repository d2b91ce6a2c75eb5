# Sourced by the image build scripts: OCI_LABELS=(--label …) for `docker build`, one definition
# of the labels every image carries (title, description, version, revision, source, created).
# Usage: oci_labels <title> <description> <version>
oci_labels() {
  local root revision
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  revision="$(git -C "$root" rev-parse --verify -q HEAD 2>/dev/null || echo unknown)"
  OCI_LABELS=(
    --label "org.opencontainers.image.title=$1"
    --label "org.opencontainers.image.description=$2"
    --label "org.opencontainers.image.version=$3"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.source=${DK_IMAGE_SOURCE:-https://github.com/datakit-platform/datakit}"
    --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  )
}
