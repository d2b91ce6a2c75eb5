#!/usr/bin/env bash
# Build etl/postgres-server:15, the PostgreSQL server image used by the demo, tests and benchmarks.
#
# Why a local image: no registry is reachable on CI, so it starts FROM etl/os-base:bookworm, which
# base-image/build-os-base.sh makes (pull or debootstrap) when it is missing. Mode for that step:
# --mode auto|upstream|airgapped or $DK_BASE_MODE.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
IMAGE="${DK_POSTGRES_IMAGE:-etl/postgres-server:15}"
OS_BASE="${DK_OS_BASE_IMAGE:-etl/os-base:bookworm}"

die() { echo "demo/postgres/build.sh: ERROR: $*" >&2; exit 1; }

"$REPO_ROOT/base-image/ensure-docker-engine.sh"
if ! docker image inspect "$OS_BASE" >/dev/null 2>&1; then
  DK_OS_BASE_IMAGE="$OS_BASE" "$REPO_ROOT/base-image/build-os-base.sh" "$@"
fi

start=$SECONDS
docker build --network host --build-arg "BASE=$OS_BASE" -t "$IMAGE" "$HERE" >&2 \
  || die "docker build of $IMAGE failed (output above); apt needs http://deb.debian.org to be reachable."
echo "demo/postgres/build.sh: built $IMAGE in $((SECONDS - start))s" >&2
