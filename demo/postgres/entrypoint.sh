#!/usr/bin/env bash
# Entrypoint of etl/postgres-server: initialise the cluster on first start, then exec postgres.
#
# Why not the official image: no registry is reachable here, so this reproduces the part of its
# behaviour the project uses. Env: POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required),
# POSTGRES_DB (default $POSTGRES_USER), PGPORT (default 5432), PGDATA. Arguments starting with "-"
# are appended to the postgres command line; any other command is run as is.
set -euo pipefail

die() { echo "postgres-entrypoint: ERROR: $*" >&2; exit 1; }
log() { echo "postgres-entrypoint: $*" >&2; }

if [[ $# -eq 0 || "$1" == -* ]]; then set -- postgres "$@"; fi
[[ "$1" == postgres ]] || exec "$@"

export PGDATA="${PGDATA:-/var/lib/postgresql/data}" PGPORT="${PGPORT:-5432}"

# Root only to fix ownership of the (possibly fresh) data volume, then drop to the postgres user.
if [[ "$(id -u)" -eq 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  [[ -n "${POSTGRES_PASSWORD:-}" ]] || die "POSTGRES_PASSWORD is empty; set it (e.g. -e POSTGRES_PASSWORD=...) so TCP logins can authenticate."
  log "initialising a new cluster in $PGDATA (superuser $POSTGRES_USER, database $POSTGRES_DB)"
  # The bootstrap superuser is POSTGRES_USER itself, as in the official image. TCP logins use
  # scram-sha-256 (127.0.0.1/::1 only), the local socket trusts the container's own users.
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  # Host networking: never listen beyond loopback. Command-line -c options still override this.
  echo "listen_addresses = '127.0.0.1'" >>"$PGDATA/postgresql.conf"

  # Temporary server on the socket only, so health checks over TCP stay red until init is done.
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p $PGPORT" start >/dev/null
  if [[ "$POSTGRES_DB" != postgres ]]; then
    psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d postgres \
      -v db="$POSTGRES_DB" -v owner="$POSTGRES_USER" <<<'CREATE DATABASE :"db" OWNER :"owner";'
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  log "initialisation done"
fi

shift  # "postgres"
exec postgres -D "$PGDATA" -p "$PGPORT" "$@"
