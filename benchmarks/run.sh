#!/usr/bin/env bash
# `make bench`: start dedicated benchmark databases (compose project dk-bench, ports 56431/56432,
# the same server image and settings as the demo), then time the Postgres runner image against
# the raw psql COPY pipe on TPC-H lineitem (BENCH_SCALE, default 1) and record the results in
# benchmarks/RESULTS.md. The databases are removed afterwards.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export DK_DEMO_SOURCE_PORT=56431 DK_DEMO_WAREHOUSE_PORT=56432
export DK_SOURCE__PASSWORD="${DK_DEMO_SOURCE_PASSWORD:-erp-demo-password}"
export DK_WAREHOUSE__PASSWORD="${DK_DEMO_WAREHOUSE_PASSWORD:-warehouse-demo-password}"
COMPOSE=(docker-compose -f demo/docker-compose.yml -p dk-bench)

command -v psql >/dev/null || { apt-get update -q && apt-get install -y -q postgresql-client; } >&2
demo/databases.sh dk-bench
trap '"${COMPOSE[@]}" down -v >&2' EXIT

.venv/bin/python benchmarks/bench_postgres_runner.py \
  --image "etl/postgres-runner:$(tr -d '[:space:]' < runners/postgres/VERSION)" \
  --scale "${BENCH_SCALE:-1}" --repeat "${BENCH_REPEAT:-3}" "$@"
