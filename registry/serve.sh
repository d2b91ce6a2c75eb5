#!/usr/bin/env bash
# The local image registry: registry/serve.sh start|stop|status
#
# Runs CNCF distribution with registry/config.yml on 127.0.0.1:5000. With a Docker engine and the
# upstream `registry:2` image (present locally or pullable) it runs that image with host
# networking; otherwise Debian's `docker-registry` binary in the background (installed with apt-get
# when missing and root), with a pid file. Either way the data lives in a project-local directory
# (git-ignored), so a restart keeps every released image.
#
# Settings (environment):
#   DK_REGISTRY_ADDR  listen address, loopback only     (default 127.0.0.1:5000)
#   DK_REGISTRY_DIR   storage, pid file and log          (default registry/data)
#   DK_REGISTRY_MODE  auto | container | binary          (default auto)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ADDR="${DK_REGISTRY_ADDR:-127.0.0.1:5000}"
STATE_DIR="$(realpath -m "${DK_REGISTRY_DIR:-$HERE/data}")"  # absolute: docker -v needs it
MODE="${DK_REGISTRY_MODE:-auto}"
CONFIG="$HERE/config.yml"
UPSTREAM_IMAGE="registry:2"
WAIT_SECONDS="${DK_REGISTRY_WAIT_SECONDS:-30}"
PORT="${ADDR##*:}"
CONTAINER="dk-registry-$PORT"  # one per port, so a test registry never collides with `make registry`
PID_FILE="$STATE_DIR/registry.pid"
MODE_FILE="$STATE_DIR/registry.mode"
LOG_FILE="$STATE_DIR/registry.log"

die() { echo "registry/serve.sh: ERROR: $*" >&2; exit 1; }
log() { echo "registry/serve.sh: $*" >&2; }

case "$ADDR" in
  127.*:[0-9]* | localhost:[0-9]*) ;;
  *) die "DK_REGISTRY_ADDR=\`$ADDR\` is not a loopback address; use 127.0.0.1:<port> (other machines go through Traefik, see traefik/README.md)." ;;
esac

# HTTP status of GET /v2/ (000 when nothing answers). python3 rather than curl: a fresh Debian
# machine has python3 (the project needs it) but not necessarily curl.
api_status() {
  python3 - "$ADDR" <<'PY'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2) as response:
        print(response.status)
except urllib.error.HTTPError as error:
    print(error.code)
except OSError:
    print("000")
PY
}

running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q docker-registry "/proc/$pid/cmdline" 2>/dev/null \
    && echo "$pid"
}

container_running() {
  command -v docker >/dev/null 2>&1 \
    && [[ "$(docker inspect -f '{{.State.Running}}' "$CONTAINER" 2>/dev/null)" == "true" ]]
}

upstream_image_available() {
  docker info >/dev/null 2>&1 || return 1
  docker image inspect "$UPSTREAM_IMAGE" >/dev/null 2>&1 && return 0
  log "trying to pull $UPSTREAM_IMAGE"
  docker pull -q "$UPSTREAM_IMAGE" >/dev/null 2>&1
}

pick_mode() {
  case "$MODE" in
    container | binary) echo "$MODE" ;;
    auto) if upstream_image_available; then echo container; else echo binary; fi ;;
    *) die "DK_REGISTRY_MODE=\`$MODE\` is not one of: auto, container, binary." ;;
  esac
}

ensure_binary() {
  command -v docker-registry >/dev/null 2>&1 && return 0
  [[ "$(id -u)" -eq 0 && -r /etc/debian_version ]] \
    || die "\`docker-registry\` is not installed and \`$UPSTREAM_IMAGE\` cannot be pulled; install Debian's package (sudo apt-get install -y docker-registry) or load the image (docker load)."
  log "installing Debian's docker-registry with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed; check access to the Debian mirror."
  apt-get install -y -q docker-registry >&2 || die "apt-get install docker-registry failed; see the apt output above."
}

wait_until_ready() {
  local deadline=$((SECONDS + WAIT_SECONDS))
  until [[ "$(api_status)" == "200" ]]; do
    if ((SECONDS > deadline)); then
      die "the registry did not answer on http://$ADDR/v2/ within ${WAIT_SECONDS} s; see $LOG_FILE."
    fi
    sleep 0.5
  done
}

start() {
  if running_pid >/dev/null || container_running; then
    log "already running on http://$ADDR ($(cat "$MODE_FILE" 2>/dev/null || echo unknown))"
    return 0
  fi
  [[ "$(api_status)" == "000" ]] \
    || die "something else already answers on $ADDR; stop it or pick another address with DK_REGISTRY_ADDR=127.0.0.1:<port>."
  mkdir -p "$STATE_DIR/storage"
  local mode
  mode="$(pick_mode)"
  if [[ "$mode" == container ]]; then
    docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
    docker run -d --name "$CONTAINER" --network host --restart unless-stopped \
      -v "$CONFIG:/etc/docker/registry/config.yml:ro" -v "$STATE_DIR/storage:/var/lib/registry" \
      -e "REGISTRY_HTTP_ADDR=$ADDR" -e REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/registry \
      "$UPSTREAM_IMAGE" >/dev/null
  else
    ensure_binary
    # setsid: the registry keeps running after the shell that started it (make) exits.
    REGISTRY_HTTP_ADDR="$ADDR" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$STATE_DIR/storage" \
      setsid nohup docker-registry serve "$CONFIG" >"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
  fi
  echo "$mode" >"$MODE_FILE"
  wait_until_ready
  log "serving http://$ADDR ($mode; data in $STATE_DIR/storage)"
}

stop() {
  local pid stopped=no
  if pid="$(running_pid)"; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    stopped=yes
  fi
  if container_running || { command -v docker >/dev/null 2>&1 && docker inspect "$CONTAINER" >/dev/null 2>&1; }; then
    docker rm -f "$CONTAINER" >/dev/null
    stopped=yes
  fi
  rm -f "$PID_FILE" "$MODE_FILE"
  if [[ "$stopped" == yes ]]; then log "stopped the registry on $ADDR (data kept in $STATE_DIR/storage)"; else log "not running on $ADDR"; fi
}

status() {
  local code mode=""
  code="$(api_status)"
  if running_pid >/dev/null || container_running; then mode="$(cat "$MODE_FILE" 2>/dev/null || echo unknown)"; fi
  if [[ "$code" == "200" && -n "$mode" ]]; then
    echo "running on http://$ADDR ($mode; data in $STATE_DIR/storage)"
  elif [[ "$code" != "000" ]]; then
    echo "http://$ADDR answers (HTTP $code) but was not started by registry/serve.sh"
    return 1
  else
    echo "not running on $ADDR (start it with: make registry)"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: registry/serve.sh start|stop|status" >&2; exit 2 ;;
esac
