#!/usr/bin/env bash
# Make sure Prometheus and promtool (Debian's `prometheus` package) are installed: `make up` runs
# Prometheus under supervisord, the tests run promtool and a Prometheus of their own.
#
# Debian's package also installs a systemd service; where systemd runs, it would start a second
# Prometheus on 127.0.0.1:9090, where the stack's runs, so it is stopped and disabled right after
# the install. Exits 0 at once when both binaries are on PATH.
set -euo pipefail

die() { echo "ensure-prometheus: ERROR: $*" >&2; exit 1; }

command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && exit 0

[[ "$(id -u)" -eq 0 ]] || die "prometheus is not installed and we are not root; run 'sudo apt-get install -y prometheus' (Debian), then try again."
[[ -r /etc/debian_version ]] || die "prometheus is not installed and this is not Debian; install Prometheus 2.x (prometheus and promtool on PATH) yourself."

echo "ensure-prometheus: installing Debian's prometheus with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2 || die "apt-get update failed; check network access to the Debian mirror."
apt-get install -y -q --no-install-recommends prometheus >&2 \
  || die "apt-get install prometheus failed; see the apt output above."
if [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus >&2 || true
fi
command -v promtool >/dev/null 2>&1 || die "the prometheus package installed no promtool."
