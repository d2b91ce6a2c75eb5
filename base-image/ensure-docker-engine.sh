#!/usr/bin/env bash
# Make sure a working Docker engine is reachable before any image build.
#
# Why: CI machines (and fresh dev VMs) may only have the docker *client*; on Debian we can install
# docker.io + docker-compose and start dockerd ourselves. A dockerd killed with its session leaves a
# stale /var/run/docker.pid that makes the next dockerd refuse to start, so we clean that up too.
# Exits 0 at once when `docker info` already works; never touches a running engine.
set -euo pipefail

WAIT_SECONDS="${DK_DOCKER_WAIT_SECONDS:-60}"
LOG_FILE="${DK_DOCKERD_LOG:-/tmp/dockerd.log}"

die() { echo "ensure-docker-engine: ERROR: $*" >&2; exit 1; }
log() { echo "ensure-docker-engine: $*" >&2; }

docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

docker_ok && exit 0

[[ "$(id -u)" -eq 0 ]] || die "docker engine is not reachable and we are not root; start Docker yourself (e.g. 'sudo systemctl start docker') and make sure 'docker info' works for this user."
[[ -r /etc/debian_version ]] || die "docker engine is not reachable and this is not Debian; install and start Docker yourself."

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1 \
    || ! command -v docker-compose >/dev/null 2>&1; then
  log "installing docker.io and docker-compose with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed; check network access to the Debian mirror."
  apt-get install -y -q docker.io docker-compose >&2 \
    || die "apt-get install docker.io docker-compose failed; see the apt output above."
fi

dockerd_pid=""
if ! pidof dockerd >/dev/null 2>&1; then
  # No dockerd runs, so any pid file is left over from a killed session.
  rm -f /var/run/docker.pid
  log "starting dockerd (log: $LOG_FILE)"
  nohup dockerd >"$LOG_FILE" 2>&1 &
  dockerd_pid=$!
fi

for ((i = 0; i < WAIT_SECONDS; i++)); do
  if docker_ok; then log "docker engine is ready"; exit 0; fi
  if [[ -n "$dockerd_pid" ]] && ! kill -0 "$dockerd_pid" 2>/dev/null; then
    die "dockerd exited at start; see $LOG_FILE (last lines below).
$(tail -n 20 "$LOG_FILE" 2>/dev/null || true)"
  fi
  sleep 1
done
die "dockerd did not answer 'docker info' within ${WAIT_SECONDS}s; see $LOG_FILE (last lines below).
$(tail -n 20 "$LOG_FILE" 2>/dev/null || true)"
