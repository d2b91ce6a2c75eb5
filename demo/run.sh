#!/usr/bin/env bash
# `make demo`: start the demo databases, seed the ERP source with TPC-H (DEMO_SCALE, default 0.1),
# load it into Bronze with the Postgres runner image exactly as a user would `docker run` it, and
# print what was loaded. Rerunning it reseeds the source and loads it again.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SCALE="${DEMO_SCALE:-0.1}"
IMAGE="etl/postgres-runner:$(tr -d '[:space:]' < runners/postgres/VERSION)"
export DK_DEMO_SOURCE_PORT="${DK_DEMO_SOURCE_PORT:-54321}"
export DK_DEMO_WAREHOUSE_PORT="${DK_DEMO_WAREHOUSE_PORT:-54322}"
# Demo-only credentials, the same defaults as demo/docker-compose.yml.
export DK_SOURCE__PASSWORD="${DK_DEMO_SOURCE_PASSWORD:-erp-demo-password}"
export DK_WAREHOUSE__PASSWORD="${DK_DEMO_WAREHOUSE_PASSWORD:-warehouse-demo-password}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

step "Starting the demo databases (source :$DK_DEMO_SOURCE_PORT, warehouse :$DK_DEMO_WAREHOUSE_PORT)"
demo/databases.sh dk-demo

step "Seeding the ERP source with TPC-H at scale factor $SCALE"
PGPASSWORD="$DK_SOURCE__PASSWORD" "$PY" demo/seed_tpch.py --scale "$SCALE" \
  --host 127.0.0.1 --port "$DK_DEMO_SOURCE_PORT" --dbname erp --user erp >/dev/null

step "Loading Bronze: docker run $IMAGE extract (config demo/erp.yaml)"
result="$(mktemp)"
trap 'rm -f "$result"' EXIT
set +e
docker run --rm --network host \
  -v "$ROOT/demo/erp.yaml:/etc/datakit/erp.yaml:ro" -e DK_CONFIG=/etc/datakit/erp.yaml \
  -e DK_SOURCE__PORT="$DK_DEMO_SOURCE_PORT" -e DK_WAREHOUSE__PORT="$DK_DEMO_WAREHOUSE_PORT" \
  -e DK_SOURCE__PASSWORD -e DK_WAREHOUSE__PASSWORD -e DK_LOG_FORMAT=text \
  "$IMAGE" extract > "$result"
code=$?
set -e

step "Result"
"$PY" demo/report.py "$result" --port "$DK_DEMO_WAREHOUSE_PORT"
if [[ $code -ne 0 && $code -ne 99 ]]; then
  echo "The runner exited $code; see its log above." >&2
  exit "$code"
fi
