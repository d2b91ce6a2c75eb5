#!/usr/bin/env bash
# Build etl/runner-base:$(cat base-image/VERSION), the base of every datakit runner image.
#
# Why two paths: where a registry is reachable we start FROM python:3.11-slim-bookworm (upstream);
# where none is (CI here, air-gapped sites) we start FROM etl/os-base:bookworm made by
# build-os-base.sh from a Debian mirror (airgapped). Both give the same contract: /opt/venv with
# Python 3.11 + datakit-core, tini, user 10001. Mode: --mode auto|upstream|airgapped, or
# $DK_BASE_MODE; auto tries a short pull and falls back to airgapped.
# Extra CAs: paths in $EXTRA_CA_CERTS (colon-separated) are copied into base-image/ca-certificates/;
# unset means "the host bundle /etc/ssl/certs/ca-certificates.crt if present", empty means none.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
VERSION="$(tr -d '[:space:]' <"$HERE/VERSION")"
IMAGE="${DK_RUNNER_BASE_IMAGE:-etl/runner-base}:$VERSION"
UPSTREAM_BASE="python:3.11-slim-bookworm"
OS_BASE="${DK_OS_BASE_IMAGE:-etl/os-base:bookworm}"
PULL_TIMEOUT="${DK_PULL_TIMEOUT:-20}"
MODE="${DK_BASE_MODE:-auto}"

die() { echo "build.sh: ERROR: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --mode) MODE="${2:?--mode needs a value: auto, upstream or airgapped}"; shift 2 ;;
    --mode=*) MODE="${1#--mode=}"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (usage: $0 [--mode auto|upstream|airgapped])" ;;
  esac
done
case "$MODE" in auto|upstream|airgapped) ;; *) die "invalid mode '$MODE': use auto, upstream or airgapped" ;; esac

"$HERE/ensure-docker-engine.sh"

pull_upstream() {
  docker image inspect "$UPSTREAM_BASE" >/dev/null 2>&1 && return 0
  log "pulling $UPSTREAM_BASE (timeout ${PULL_TIMEOUT}s)"
  timeout "$PULL_TIMEOUT" docker pull -q "$UPSTREAM_BASE" >/dev/null
}

case "$MODE" in
  upstream)
    pull_upstream || die "cannot pull $UPSTREAM_BASE (no container registry reachable?). Use --mode airgapped (or DK_BASE_MODE=airgapped) to build from a Debian mirror instead." ;;
  auto)
    if pull_upstream; then MODE=upstream; else log "pull failed, using the airgapped base"; MODE=airgapped; fi ;;
esac
if [[ "$MODE" == upstream ]]; then
  BUILD_ARGS=(--build-arg "BASE=$UPSTREAM_BASE" --build-arg PYTHON=/usr/local/bin/python3)
else
  DK_OS_BASE_IMAGE="$OS_BASE" "$HERE/build-os-base.sh" --mode airgapped
  BUILD_ARGS=(--build-arg "BASE=$OS_BASE" --build-arg PYTHON=/usr/bin/python3)
fi
echo "runner-base mode: $MODE" >&2

# Refresh the extra CA files: only what this run asks for ends up in the image.
source "$HERE/extra-ca.sh"
copy_extra_ca

source "$HERE/oci-labels.sh"
oci_labels etl/runner-base "Python 3.11 + datakit-core base for datakit runner images" "$VERSION"
log "building $IMAGE"
start=$SECONDS
docker build --network host -f "$HERE/Dockerfile" -t "$IMAGE" "${BUILD_ARGS[@]}" "${OCI_LABELS[@]}" \
  "$REPO_ROOT" >&2 || die "docker build of $IMAGE failed (output above)."
log "built $IMAGE in $((SECONDS - start))s"
