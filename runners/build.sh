#!/usr/bin/env bash
# Build a runner image: runners/build.sh <tech>  →  etl/<tech>-runner:$(cat runners/<tech>/VERSION)
# (`runners/build.sh dbt-<tenant>`: the tenant's own dbt image, `make tenant-image TENANT=<tenant>`)
#
# The runner base (etl/runner-base, base-image/VERSION) is built first, so the image always
# carries the current datakit-core. Labels carry version, git revision, source and build time.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO_ROOT="$(cd "$HERE/.." && pwd)"
TECH="${1:?usage: runners/build.sh <tech>   (one of: $(ls -d "$HERE"/*/ | xargs -n1 basename | tr '\n' ' '))}"
# A tenant's own dbt image (`dbt-<tenant>`, etl/dbt-<tenant>) is built from its tenant file.
if [[ "$TECH" == dbt-* && ! -d "$HERE/$TECH" ]]; then
  exec "${PY:-$REPO_ROOT/.venv/bin/python}" -m datakit_orchestration.tenant_image "${TECH#dbt-}"
fi
[[ -f "$HERE/$TECH/Dockerfile" ]] || { echo "runners/build.sh: no runner '$TECH' (runners/$TECH/Dockerfile is missing)" >&2; exit 2; }

VERSION="$(tr -d '[:space:]' <"$HERE/$TECH/VERSION")"
BASE_IMAGE="etl/runner-base:$(tr -d '[:space:]' <"$REPO_ROOT/base-image/VERSION")"
IMAGE="etl/$TECH-runner:$VERSION"

# Always (re)build the base: datakit-core lives in it, and the layer cache makes an unchanged
# base a matter of seconds.
"$REPO_ROOT/base-image/build.sh"

source "$REPO_ROOT/base-image/oci-labels.sh"
oci_labels "etl/$TECH-runner" "$(head -n1 "$HERE/$TECH/DESCRIPTION")" "$VERSION"
echo "runners/build.sh: building $IMAGE on $BASE_IMAGE" >&2
docker build --network host -f "$HERE/$TECH/Dockerfile" -t "$IMAGE" "${OCI_LABELS[@]}" \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$VERSION" \
  "$REPO_ROOT" >&2
echo "$IMAGE"
