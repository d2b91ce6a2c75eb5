#!/usr/bin/env bash
# `make bench-dbt`: start dedicated benchmark databases (compose project dk-bench, ports
# 56431/56432), then time a full `dbt build` against incremental ones after change batches
# touching 1% of the orders, with the built images (benchmarks/bench_dbt.py), and record the
# results in benchmarks/RESULTS.md. The databases are removed afterwards.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export DK_DEMO_SOURCE_PORT=56431 DK_DEMO_WAREHOUSE_PORT=56432
export DK_SOURCE__PASSWORD="${DK_DEMO_SOURCE_PASSWORD:-erp-demo-password}"
export DK_WAREHOUSE__PASSWORD="${DK_DEMO_WAREHOUSE_PASSWORD:-warehouse-demo-password}"
COMPOSE=(docker-compose -f demo/docker-compose.yml -p dk-bench)

demo/databases.sh dk-bench
trap '"${COMPOSE[@]}" down -v >&2' EXIT

.venv/bin/python benchmarks/bench_dbt.py \
  --postgres-image "etl/postgres-runner:$(tr -d '[:space:]' < runners/postgres/VERSION)" \
  --dbt-image "etl/dbt-runner:$(tr -d '[:space:]' < runners/dbt/VERSION)" \
  --scale "${BENCH_SCALE:-1}" --batches "${BENCH_BATCHES:-2}" "$@"
