#!/usr/bin/env bash
# Build the local Debian bookworm base image `etl/os-base:bookworm` that every other image starts FROM.
#
# Why: some machines (CI, air-gapped sites) cannot pull from any container registry, but can reach a
# Debian mirror. Modes:
#   upstream   docker pull debian:bookworm-slim and tag it.
#   airgapped  debootstrap a minimal bookworm (python3, python3-venv, ca-certificates, tini) from the
#              Debian mirror and `docker import` it. Needs root and debootstrap; about a minute.
#   auto       (default) try the pull with a short timeout, fall back to airgapped.
# Mode from --mode or $DK_BASE_MODE. The tag is reused when present unless --rebuild is given.
# The mode actually used is printed on stderr as "os-base mode: <mode>" (and stdout stays empty).
set -euo pipefail

IMAGE="${DK_OS_BASE_IMAGE:-etl/os-base:bookworm}"
UPSTREAM_IMAGE="debian:bookworm-slim"
MIRROR="${DK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DK_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
PULL_TIMEOUT="${DK_PULL_TIMEOUT:-20}"
MODE="${DK_BASE_MODE:-auto}"
REBUILD=0

die() { echo "build-os-base: ERROR: $*" >&2; exit 1; }
log() { echo "build-os-base: $*" >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --mode) MODE="${2:?--mode needs a value: auto, upstream or airgapped}"; shift 2 ;;
    --mode=*) MODE="${1#--mode=}"; shift ;;
    --rebuild) REBUILD=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (usage: $0 [--mode auto|upstream|airgapped] [--rebuild])" ;;
  esac
done
case "$MODE" in auto|upstream|airgapped) ;; *) die "invalid mode '$MODE': use auto, upstream or airgapped" ;; esac

"$(dirname "$0")/ensure-docker-engine.sh"

if [[ "$REBUILD" -eq 0 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE already exists, nothing to do (use --rebuild to build it again)"
  echo "os-base mode: existing" >&2
  exit 0
fi

build_upstream() {
  log "pulling $UPSTREAM_IMAGE (timeout ${PULL_TIMEOUT}s)"
  timeout "$PULL_TIMEOUT" docker pull -q "$UPSTREAM_IMAGE" >/dev/null || return 1
  docker tag "$UPSTREAM_IMAGE" "$IMAGE"
}

build_airgapped() {
  [[ "$(id -u)" -eq 0 ]] || die "airgapped mode needs root (debootstrap creates device nodes and chroots); rerun with sudo."
  if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing and there is no apt-get to install it; install debootstrap."
    log "installing debootstrap with apt-get"
    { apt-get update -q && apt-get install -y -q debootstrap; } >&2 || die "apt-get install debootstrap failed (output above)."
  fi
  ROOTFS="$(mktemp -d "${TMPDIR:-/var/tmp}/os-base-rootfs.XXXXXX")"
  # debootstrap mounts /proc and /sys inside the rootfs and can leave them mounted when it fails:
  # unmount before deleting, and never let rm cross into another file system.
  cleanup() {
    grep -o " $ROOTFS/[^ ]*" /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
    rm -rf --one-file-system "$ROOTFS" "$ROOTFS.log"
  }
  trap cleanup EXIT

  log "debootstrap bookworm from $MIRROR into $ROOTFS"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tini \
      bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
    || { tail -n 30 "$ROOTFS.log" >&2; die "debootstrap failed (output above); check that $MIRROR is reachable."; }

  # Same apt sources as the official image (updates + security), no leftovers from the build host,
  # and no apt lists/caches in the image (every Dockerfile runs apt-get update first anyway).
  rm -f "$ROOTFS/etc/apt/sources.list"
  cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  # Keep images small, as in debian:*-slim: no docs/man pages/translations from later apt installs.
  cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
DPKG
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$ROOTFS/etc/apt/apt.conf.d/docker-no-recommends"
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
         "$ROOTFS"/var/log/*.log "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/tmp/*
  find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  find "$ROOTFS/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  rm -f "$ROOTFS/etc/resolv.conf" "$ROOTFS/etc/hostname"   # docker provides both at run time
  : >"$ROOTFS/etc/machine-id"

  log "importing rootfs as $IMAGE"
  local old_id
  old_id="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
  tar -C "$ROOTFS" --numeric-owner -c . | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["bash"]' \
      - "$IMAGE" >/dev/null
  # Drop the image this rebuild replaced, unless something still uses it.
  [[ -z "$old_id" ]] || docker image rm "$old_id" >/dev/null 2>&1 || true
}

case "$MODE" in
  upstream)
    build_upstream || die "could not pull $UPSTREAM_IMAGE (no registry reachable?); use --mode airgapped (or DK_BASE_MODE=airgapped)." ;;
  airgapped)
    build_airgapped ;;
  auto)
    if build_upstream; then MODE=upstream
    else log "pull failed, falling back to airgapped (debootstrap)"; MODE=airgapped; build_airgapped; fi ;;
esac
log "built $IMAGE"
echo "os-base mode: $MODE" >&2
