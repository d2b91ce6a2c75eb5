#!/usr/bin/env bash
# Stage what the Astro image needs from outside astro/ (the Astro CLI builds with astro/ as its
# context): `make astro`, or `astro/stage.sh [PROJECT_DIR]` (default: this folder).
#
#   include/tenants/*.yaml    copies of orchestration/tenants/ (the source of truth; edit there)
#   dags/<tenant>.py          one thin DAG file per tenant, written by datakit_orchestration.dagfiles
#                             (the same generator as orchestration/dags/), reading ../include/tenants/
#   include/wheels/*.whl      the datakit-orchestration package and the runner contract it uses
#                             (datakit-contract), installed by the Dockerfile
#
# Rerun it after changing a tenant file or either package. Building the wheels needs setuptools
# from PyPI (pip's isolated build).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
PROJECT="$(realpath -m "${1:-$HERE}")"

die() { echo "astro/stage.sh: ERROR: $*" >&2; exit 1; }

[[ -x "$PY" ]] || die "no Python at \`$PY\`; run \`make setup\` first (or set PY=<python with datakit-orchestration>)."
[[ -f "$PROJECT/Dockerfile" ]] || die "\`$PROJECT\` is not the Astro project (no Dockerfile); pass the astro/ folder or a copy of it."

# Tenant files: replace the staged set, so a tenant deleted from orchestration/ disappears here too.
rm -rf "$PROJECT/include/tenants"
mkdir -p "$PROJECT/include/tenants" "$PROJECT/dags"
cp "$ROOT"/orchestration/tenants/*.yaml "$PROJECT/include/tenants/"
# A tenant's own dbt project sits beside its file (`dbt.project`), which reads its version on load.
for folder in "$ROOT"/orchestration/tenants/*/; do
  if [[ -d "$folder" ]]; then cp -r "$folder" "$PROJECT/include/tenants/"; fi
done
# The tenant files name their schema as ../tenant.schema.json (editor completion only).
cp "$ROOT/orchestration/tenant.schema.json" "$PROJECT/include/"

# DAG files: written (and orphans dropped) by the project's own generator.
"$PY" -m datakit_orchestration.dagfiles --tenants "$PROJECT/include/tenants" --dags "$PROJECT/dags"

# Each package as a wheel, built from a clean copy of its sources so nothing is written into the
# checkout (no build/ or egg-info left behind).
rm -rf "$PROJECT/include/wheels"
build_wheel() {
  local package="$1" build
  build="$(mktemp -d)"
  cp "$package/pyproject.toml" "$build/"
  [[ -f "$package/README.md" ]] && cp "$package/README.md" "$build/"
  cp -r "$package/src" "$build/src"
  rm -rf "$build"/src/*.egg-info
  find "$build/src" -name __pycache__ -prune -exec rm -rf {} +
  "$PY" -m pip wheel --quiet --no-deps --wheel-dir "$PROJECT/include/wheels" "$build" >&2 \
    || die "building the wheel of \`$package\` failed (output above); pip needs PyPI for setuptools."
  rm -rf "$build"
}
build_wheel "$ROOT/datakits/contract"
build_wheel "$ROOT/orchestration"

echo "astro/stage.sh: staged $(ls "$PROJECT/include/tenants" | wc -l) tenant file(s)," \
  "$(ls "$PROJECT"/dags/*.py | wc -l) DAG file(s) and $(ls "$PROJECT"/include/wheels | tr '\n' ' ')into $PROJECT" >&2
