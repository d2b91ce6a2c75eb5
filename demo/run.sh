#!/usr/bin/env bash
# `make demo`: start the demo databases, seed the ERP source with TPC-H (DEMO_SCALE, default 0.1),
# load it into Bronze with the Postgres runner image and build Silver and Gold with the dbt runner
# image, each exactly as a user would `docker run` it, and print what each layer holds. Then apply
# a change batch to the source (new, changed and deleted orders, moved customers) and run the
# pipeline again: the second run is incremental in Bronze, Silver and Gold.
# Rerunning it reseeds the source and starts over with a fresh warehouse's worth of changes.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SCALE="${DEMO_SCALE:-0.1}"
IMAGE="etl/postgres-runner:$(tr -d '[:space:]' < runners/postgres/VERSION)"
DBT_IMAGE="etl/dbt-runner:$(tr -d '[:space:]' < runners/dbt/VERSION)"
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

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# One pipeline run: Bronze with the Postgres runner, then Silver and Gold with the dbt runner
# (`dbt-runner build` plus any further arguments).
run_pipeline() {
  local run="$1" code dbt_code
  shift
  step "$run: loading Bronze: docker run $IMAGE extract (config demo/erp.yaml)"
  set +e
  docker run --rm --network host \
    -v "$ROOT/demo/erp.yaml:/etc/datakit/erp.yaml:ro" -e DK_CONFIG=/etc/datakit/erp.yaml \
    -e DK_SOURCE__PORT="$DK_DEMO_SOURCE_PORT" -e DK_WAREHOUSE__PORT="$DK_DEMO_WAREHOUSE_PORT" \
    -e DK_SOURCE__PASSWORD -e DK_WAREHOUSE__PASSWORD -e DK_LOG_FORMAT=text \
    "$IMAGE" extract > "$WORK/$run.bronze.json"
  code=$?
  set -e
  if [[ $code -ne 0 && $code -ne 99 ]]; then
    echo "The Postgres runner exited $code; see its log above." >&2
    exit "$code"
  fi

  step "$run: building Silver and Gold: docker run $DBT_IMAGE build $*"
  set +e
  docker run --rm --network host \
    -e DK_WAREHOUSE__HOST=127.0.0.1 -e DK_WAREHOUSE__PORT="$DK_DEMO_WAREHOUSE_PORT" \
    -e DK_WAREHOUSE__DBNAME=warehouse -e DK_WAREHOUSE__USER=warehouse -e DK_WAREHOUSE__PASSWORD \
    -e DK_LOG_FORMAT=text "$DBT_IMAGE" build "$@" > "$WORK/$run.dbt.json"
  dbt_code=$?
  set -e

  step "$run: result"
  "$PY" demo/report.py "$WORK/$run.bronze.json" --dbt-result "$WORK/$run.dbt.json" \
    --port "$DK_DEMO_WAREHOUSE_PORT"
  if [[ $dbt_code -ne 0 ]]; then
    echo "The dbt runner exited $dbt_code; see its log above." >&2
    exit "$dbt_code"
  fi
}

# A fresh seed starts a fresh history: drop what an earlier demo left in the warehouse.
PGPASSWORD="$DK_WAREHOUSE__PASSWORD" psql -q -h 127.0.0.1 -p "$DK_DEMO_WAREHOUSE_PORT" \
  -U warehouse warehouse -c 'set client_min_messages = warning' \
  -c 'drop schema if exists bronze_erp, silver, snapshots, gold, datakit cascade' \
  >&2

run_pipeline "First run"

step "Applying a change batch to the source: 1% of orders new, changed or deleted; 1% of customers moved"
PGPASSWORD="$DK_SOURCE__PASSWORD" "$PY" demo/change_batch.py --fraction 0.01 \
  --host 127.0.0.1 --port "$DK_DEMO_SOURCE_PORT" --dbname erp --user erp >/dev/null

# Incremental all the way; the big models' tests check only the rows this build wrote.
run_pipeline "Second run (incremental)" --test-scope changed
