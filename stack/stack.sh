#!/usr/bin/env bash
# The local stack behind `make up` / `make down`: stack/stack.sh up|down|status
#
# Everything runs on this machine, air-gapped, bound to 127.0.0.1:
#   registry     registry/serve.sh (127.0.0.1:5000)
#   databases    the demo source and warehouse PostgreSQL (demo/databases.sh, ports 54321/54322)
#   airflow      api-server (UI and REST API, 127.0.0.1:8080), scheduler, dag-processor and
#                triggerer from .venv, AIRFLOW_HOME under stack/data/, DAG folder
#                orchestration/dags, DATAKIT_RUNTIME=docker, the tenants' pools, the demo tenant's
#                Variables (demo passwords), the runner images tagged as the tenants pin them
#
# `up` starts what is not running (twice is harmless) and records what it started; `down` stops
# exactly that, and says so. Processes run in the background with pid files and logs in
# stack/data/. Settings (environment):
#   DK_STACK_DIR            state, AIRFLOW_HOME, logs, pid files   (default stack/data)
#   DK_STACK_AIRFLOW_PORT   Airflow API server and UI port          (default 8080)
#   DK_STACK_DB_PROJECT     compose project of the databases       (default dk-demo, as make demo)
#   DK_STACK_WAIT_SECONDS   how long `up` waits for Airflow health (default 240)
#   DK_STACK_PARALLELISM    task slots of the LocalExecutor         (default 4)
#   DK_DEMO_SOURCE_PORT, DK_DEMO_WAREHOUSE_PORT   the databases' ports (54321, 54322)
#   DK_REGISTRY_ADDR, DK_REGISTRY_DIR             the registry's address and storage (registry/README.md)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
AIRFLOW="$(dirname "$PY")/airflow"
STATE="$(realpath -m "${DK_STACK_DIR:-$ROOT/stack/data}")"
PORT="${DK_STACK_AIRFLOW_PORT:-8080}"
DB_PROJECT="${DK_STACK_DB_PROJECT:-dk-demo}"
WAIT_SECONDS="${DK_STACK_WAIT_SECONDS:-240}"
export DK_DEMO_SOURCE_PORT="${DK_DEMO_SOURCE_PORT:-54321}"
export DK_DEMO_WAREHOUSE_PORT="${DK_DEMO_WAREHOUSE_PORT:-54322}"
export DK_REGISTRY_ADDR="${DK_REGISTRY_ADDR:-127.0.0.1:5000}"
RUN="$STATE/run"    # pid files, and one file per thing `up` started
LOGS="$STATE/logs"
COMPONENTS=(api-server scheduler dag-processor triggerer)
COMPOSE=(docker-compose -f "$ROOT/demo/docker-compose.yml" -p "$DB_PROJECT")
URL="http://127.0.0.1:$PORT"

die() { echo "stack: ERROR: $*" >&2; exit 1; }
say() { echo "stack: $*" >&2; }

# Airflow's configuration for every process and CLI call of the stack. No secrets: the JWT secret
# and Fernet key are generated into $AIRFLOW_HOME/airflow.cfg by the first `airflow` command.
airflow_env() {
  export AIRFLOW_HOME="$STATE/airflow"
  export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/orchestration/dags"
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor
  export AIRFLOW__CORE__PARALLELISM="${DK_STACK_PARALLELISM:-4}"  # worker processes; a laptop's share
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
  export AIRFLOW__API__HOST=127.0.0.1
  export AIRFLOW__API__PORT="$PORT"
  export AIRFLOW__API__WORKERS=1
  export AIRFLOW__API__BASE_URL="$URL"
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="$URL/execution/"
  # Simple auth manager with one admin user; its password is generated into this file.
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  export DATAKIT_RUNTIME=docker
  # The runners read their passwords from Variables in the metadata database, not the environment.
  unset "${!AIRFLOW_VAR_@}" 2>/dev/null || true
}

running_pid() {  # pid of a component `up` started, if it still runs
  local file="$RUN/$1.pid" pid
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -qa airflow "/proc/$pid/cmdline" 2>/dev/null \
    && echo "$pid"
}

databases_running() {
  local service container
  for service in source-db warehouse-db; do
    container="$("${COMPOSE[@]}" ps -q "$service" 2>/dev/null || true)"
    [[ -n "$container" && "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" == true ]] \
      || return 1
  done
}

start_registry() {
  if "$ROOT/registry/serve.sh" status >/dev/null 2>&1; then
    say "registry: already running on http://$DK_REGISTRY_ADDR"
  else
    "$ROOT/registry/serve.sh" start
    # Where it runs, so `down` stops this one even when called with other settings.
    printf '%s\n%s\n' "$DK_REGISTRY_ADDR" "${DK_REGISTRY_DIR:-$ROOT/registry/data}" >"$RUN/started-registry"
  fi
}

start_databases() {
  if databases_running; then
    say "databases: already running (compose project $DB_PROJECT)"
    return
  fi
  if ! docker image inspect etl/postgres-server:15 >/dev/null 2>&1; then
    say "databases: building etl/postgres-server:15 (demo/postgres/build.sh)"
    "$ROOT/demo/postgres/build.sh"
  fi
  "$ROOT/demo/databases.sh" "$DB_PROJECT"
  echo "$DB_PROJECT" >"$RUN/started-databases"
  say "databases: source on 127.0.0.1:$DK_DEMO_SOURCE_PORT, warehouse on 127.0.0.1:$DK_DEMO_WAREHOUSE_PORT (compose project $DB_PROJECT)"
}

prepare_airflow() {
  mkdir -p "$AIRFLOW_HOME" "$LOGS"
  "$AIRFLOW" db migrate >"$LOGS/db-migrate.log" 2>&1 \
    || die "\`airflow db migrate\` failed; see $LOGS/db-migrate.log."
  "$PY" "$ROOT/stack/prepare.py" pools "$STATE/pools.json"
  "$AIRFLOW" pools import "$STATE/pools.json" >"$LOGS/pools-import.log" 2>&1 \
    || die "\`airflow pools import\` failed; see $LOGS/pools-import.log."
  local variables="$STATE/variables.json"
  "$PY" "$ROOT/stack/prepare.py" variables "$variables"
  if ! "$AIRFLOW" variables import "$variables" >"$LOGS/variables-import.log" 2>&1; then
    rm -f "$variables"
    die "\`airflow variables import\` failed; see $LOGS/variables-import.log."
  fi
  rm -f "$variables"  # the demo passwords now live only in the metadata database
  say "airflow: pools of every tenant and the demo tenant's Variables are set"
}

start_component() {
  local name="$1" pid
  if pid="$(running_pid "$name")"; then
    say "airflow $name: already running (pid $pid)"
    return
  fi
  # setsid: its own process group, so `down` stops it with every child (workers, executors),
  # and it outlives the shell (make) that started it.
  local args=("$name")
  # Their log servers would listen on every interface (8793/8794); the API server reads the task
  # logs from $AIRFLOW_HOME/logs on this machine instead.
  [[ "$name" == scheduler || "$name" == triggerer ]] && args+=(--skip-serve-logs)
  setsid nohup "$AIRFLOW" "${args[@]}" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  say "airflow $name: started (pid $!, log $LOGS/$name.log)"
}

up() {
  command -v docker >/dev/null && docker info >/dev/null 2>&1 \
    || die "no Docker engine answers; run \`make engine\` (base-image/ensure-docker-engine.sh)."
  [[ -x "$AIRFLOW" ]] || die "no Airflow at \`$AIRFLOW\`; run \`make setup\`."
  mkdir -p "$RUN" "$LOGS"
  airflow_env
  start_registry
  start_databases
  "$PY" "$ROOT/stack/prepare.py" tag-images
  prepare_airflow
  local name
  for name in "${COMPONENTS[@]}"; do start_component "$name"; done
  say "waiting for $URL/api/v2/monitor/health (up to ${WAIT_SECONDS} s)"
  "$PY" "$ROOT/stack/prepare.py" wait "$URL/api/v2/monitor/health" "$WAIT_SECONDS" \
    || die "see the logs in $LOGS/ (api-server.log, scheduler.log, dag-processor.log, triggerer.log)."
  cat >&2 <<EOF

The local stack is up.
  Airflow UI   $URL   (DAGs: orchestration/dags, runtime docker; new DAGs start paused)
  login        user \`admin\`; its password is generated into
               $AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE
               (show it: cat '$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE')
  registry     http://$DK_REGISTRY_ADDR
  databases    source 127.0.0.1:$DK_DEMO_SOURCE_PORT, warehouse 127.0.0.1:$DK_DEMO_WAREHOUSE_PORT
  logs         $LOGS/
Stop it with: make down
EOF
}

stop_component() {
  local name="$1" pid
  if pid="$(running_pid "$name")"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    say "stopped airflow $name (pid $pid)"
  fi
  # Children that outlived their leader (a LocalExecutor worker) are still in its process group.
  if [[ -f "$RUN/$name.pid" ]]; then
    kill -KILL -- "-$(cat "$RUN/$name.pid")" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

down() {
  airflow_env
  local name
  for name in "${COMPONENTS[@]}"; do stop_component "$name"; done
  if [[ -f "$RUN/started-databases" ]]; then
    local project
    project="$(cat "$RUN/started-databases")"
    docker-compose -f "$ROOT/demo/docker-compose.yml" -p "$project" stop >&2
    rm -f "$RUN/started-databases"
    say "stopped the databases (compose project $project; data kept: \`docker-compose -f demo/docker-compose.yml -p $project down -v\` removes it)"
  fi
  if [[ -f "$RUN/started-registry" ]]; then
    local addr dir
    { read -r addr; read -r dir; } <"$RUN/started-registry"
    DK_REGISTRY_ADDR="$addr" DK_REGISTRY_DIR="$dir" "$ROOT/registry/serve.sh" stop
    rm -f "$RUN/started-registry"
  fi
  say "the local stack is down (anything it found already running was left as it was)"
}

status() {
  airflow_env
  local name pid
  for name in "${COMPONENTS[@]}"; do
    if pid="$(running_pid "$name")"; then echo "airflow $name: running (pid $pid)"; else echo "airflow $name: stopped"; fi
  done
  if databases_running; then echo "databases: running (compose project $DB_PROJECT)"; else echo "databases: stopped"; fi
  echo "registry: $("$ROOT/registry/serve.sh" status 2>&1 || true)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: stack/stack.sh up|down|status" >&2; exit 2 ;;
esac
