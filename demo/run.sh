#!/usr/bin/env bash
# `make demo`: start the demo databases, seed the ERP source with TPC-H (DEMO_SCALE, default 0.1),
# then Airflow (`airflow dags test`, SQLite under demo/data/airflow) runs the demo tenant's DAG
# (orchestration/tenants/acme.yaml) with DockerOperator launching the runner images: Bronze,
# Silver, Gold and the quality gate. Then a change batch hits the source (new, changed and deleted
# orders, moved customers) and the DAG runs again: incremental in Bronze, Silver and Gold. A
# report follows each run. Rerunning it reseeds the source and starts over with a fresh warehouse.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
SCALE="${DEMO_SCALE:-0.1}"
# The demo databases listen where the acme tenant file says.
export DK_DEMO_SOURCE_PORT=54321 DK_DEMO_WAREHOUSE_PORT=54322
# Demo-only credentials, the same defaults as demo/docker-compose.yml.
export DK_SOURCE__PASSWORD="${DK_DEMO_SOURCE_PASSWORD:-erp-demo-password}"
export DK_WAREHOUSE__PASSWORD="${DK_DEMO_WAREHOUSE_PASSWORD:-warehouse-demo-password}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }

step "Starting the demo databases (source :$DK_DEMO_SOURCE_PORT, warehouse :$DK_DEMO_WAREHOUSE_PORT)"
demo/databases.sh dk-demo

step "Seeding the ERP source with TPC-H at scale factor $SCALE"
PGPASSWORD="$DK_SOURCE__PASSWORD" "$PY" demo/seed_tpch.py --scale "$SCALE" \
  --host 127.0.0.1 --port "$DK_DEMO_SOURCE_PORT" --dbname erp --user erp >/dev/null

# A fresh seed starts a fresh history: drop what an earlier demo left in the warehouse.
PGPASSWORD="$DK_WAREHOUSE__PASSWORD" psql -q -h 127.0.0.1 -p "$DK_DEMO_WAREHOUSE_PORT" \
  -U warehouse warehouse -c 'set client_min_messages = warning' \
  -c 'drop schema if exists bronze_erp, silver, snapshots, gold, datakit cascade' \
  >&2

# Airflow runs the acme tenant's DAG (DockerOperator → the runner images), twice: before and after
# a change batch on the source. The report prints after each run.
"$PY" -m demo.airflow_demo
