#!/usr/bin/env bash
# Start the local source and warehouse PostgreSQL servers of demo/docker-compose.yml as compose
# project $1 and wait until both report healthy. Ports come from DK_DEMO_SOURCE_PORT and
# DK_DEMO_WAREHOUSE_PORT. Used by `make demo` and `make bench`.
set -euo pipefail

PROJECT="${1:?usage: demo/databases.sh <compose project>}"
COMPOSE=(docker-compose -f "$(dirname "$0")/docker-compose.yml" -p "$PROJECT")

"${COMPOSE[@]}" up -d >&2
for service in source-db warehouse-db; do
  container="$("${COMPOSE[@]}" ps -q "$service")"
  for _ in $(seq 90); do
    [[ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" == healthy ]] && continue 2
    sleep 1
  done
  echo "demo/databases.sh: $service of project $PROJECT is not healthy after 90 s; see" \
       "'${COMPOSE[*]} logs $service'." >&2
  exit 1
done
