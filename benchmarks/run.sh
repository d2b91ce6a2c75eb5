#!/usr/bin/env bash
# `make bench` / `make bench-dbt`: start dedicated benchmark databases (compose project dk-bench,
# ports 26431/26432, the same server image and settings as the demo), run one benchmark against
# them with the built images, and record its results in benchmarks/RESULTS.md. The databases are
# removed afterwards.
#   benchmarks/run.sh runner   the Postgres runner image against a raw psql COPY pipe on TPC-H
#                              lineitem (bench_postgres_runner.py)
#   benchmarks/run.sh dbt      a full `dbt build` against incremental ones after 1% change
#                              batches (bench_dbt.py)
#   benchmarks/run.sh spark    the Spark runner image against the Postgres runner image on TPC-H
#                              lineitem, alternating (bench_spark.py)
#   benchmarks/run.sh cdc      full, cursor-incremental and cdc-incremental Bronze loads and full
#                              and incremental dbt builds after a 1% change batch (bench_cdc.py)
#   benchmarks/run.sh http     the HTTP runner image against dlt's rest_api source from a local
#                              API (bench_http.py; BENCH_RECORDS, default 1000000), on databases
#                              of its own (compose project dk-bench-http, ports 26441/26442)
# Further arguments go to the benchmark script; BENCH_SCALE (default 1) sets the TPC-H scale.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BENCH="${1:-}"
if [[ "$BENCH" != runner && "$BENCH" != dbt && "$BENCH" != spark && "$BENCH" != cdc \
  && "$BENCH" != http ]]; then
  echo "usage: benchmarks/run.sh runner|dbt|spark|cdc|http [options] (got \`$BENCH\`)" >&2
  exit 2
fi
shift
PROJECT=dk-bench STACK_DIR=benchmarks/data/stack
export DK_DEMO_SOURCE_PORT=26431 DK_DEMO_WAREHOUSE_PORT=26432
if [[ "$BENCH" == http ]]; then  # runs beside the others
  PROJECT=dk-bench-http STACK_DIR=benchmarks/data/stack-http
  export DK_DEMO_SOURCE_PORT=26441 DK_DEMO_WAREHOUSE_PORT=26442
fi
export DK_SOURCE__PASSWORD="${DK_DEMO_SOURCE_PASSWORD:-erp-demo-password}"
export DK_WAREHOUSE__PASSWORD="${DK_DEMO_WAREHOUSE_PASSWORD:-warehouse-demo-password}"
COMPOSE=(docker-compose -f stack/docker-compose.yml -p "$PROJECT")
image() { echo "etl/$1-runner:$(tr -d '[:space:]' < "runners/$1/VERSION")"; }

command -v psql >/dev/null || { apt-get update -q && apt-get install -y -q postgresql-client; } >&2
# The stack's databases as a compose project of their own, started and recorded in a stack folder
# of their own, so `make down` never touches them.
DK_STACK_DB_PROJECT="$PROJECT" DK_STACK_DIR="$STACK_DIR" \
  .venv/bin/python -m stack up databases
trap '"${COMPOSE[@]}" down -v >&2' EXIT

case "$BENCH" in
  runner)
    .venv/bin/python -m benchmarks.bench_postgres_runner --image "$(image postgres)" \
      --scale "${BENCH_SCALE:-1}" --repeat "${BENCH_REPEAT:-3}" "$@" ;;
  dbt)
    .venv/bin/python -m benchmarks.bench_dbt --postgres-image "$(image postgres)" \
      --dbt-image "$(image dbt)" --scale "${BENCH_SCALE:-1}" --batches "${BENCH_BATCHES:-2}" "$@" ;;
  cdc)
    .venv/bin/python -m benchmarks.bench_cdc --postgres-image "$(image postgres)" \
      --dbt-image "$(image dbt)" --scale "${BENCH_SCALE:-1}" "$@" ;;
  http)
    .venv/bin/python -m benchmarks.bench_http --image "$(image http)" \
      --records "${BENCH_RECORDS:-1000000}" --warehouse-port "$DK_DEMO_WAREHOUSE_PORT" "$@" ;;
  spark)
    .venv/bin/python -m benchmarks.bench_spark --postgres-image "$(image postgres)" \
      --spark-image "$(image spark)" --scale "${BENCH_SCALE:-1}" --repeat "${BENCH_REPEAT:-2}" "$@" ;;
esac
