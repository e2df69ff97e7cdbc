#!/usr/bin/env bash
# Set-up entry point for a fresh Debian/Ubuntu machine (run as root, or with sudo).
#   ./setup.sh run    install what the product needs, then start the server and the sensor
#   ./setup.sh test   install what the test suite needs, then run lint, type checks and every test
# Installs: Debian packages (apt), a virtual environment in .venv, Python requirements, and builds
# the sensor's C accelerators in place (tools/build_accel.py).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
ROOT=$(pwd)
MODE=${1:-run}
shift || true

RUNTIME_APT=(python3 python3-venv python3-dev gcc libpcap-dev ca-certificates)
TEST_APT=(tcpreplay rsyslog iproute2 tcpdump tshark chromium prometheus fail2ban systemd docker.io docker-compose debootstrap
          clickhouse-server clickhouse-client)

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "setup.sh: run as root (sudo ./setup.sh $MODE)" >&2; exit 1; fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

make_venv() {
  local reqs=$1
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  local stamp=".venv/.installed-$(basename "$reqs")"
  if [ ! -f "$stamp" ] || [ "$reqs" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -r "$reqs"
    touch "$stamp"
  fi
}

# Wheels of the runtime requirements in .venv/wheels: tests/test_quickstart.py builds fresh virtual
# environments from them (pip --no-index), so the suite needs no package index.
cache_wheels() {
  local stamp=.venv/wheels/.requirements.txt
  if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ]; then
    .venv/bin/pip wheel -q -w .venv/wheels -r requirements.txt >/dev/null
    cp requirements.txt "$stamp"
  fi
}

case "$MODE" in
  run)
    need_root
    apt_install "${RUNTIME_APT[@]}"
    make_venv requirements.txt
    .venv/bin/python tools/build_accel.py \
      || echo "setup.sh: the C accelerators did not build; the sensor runs on its pure-Python paths" >&2
    exec .venv/bin/python tools/run_all.py "$@"
    ;;
  test)
    need_root
    apt_install "${RUNTIME_APT[@]}" "${TEST_APT[@]}"
    make_venv requirements-dev.txt
    cache_wheels
    .venv/bin/python tools/build_accel.py  # the tests compare the compiled paths with the Python ones
    export PATH="$ROOT/.venv/bin:$PATH"
    echo "== ruff"; ruff check core sensor.py server.py trails plugins tests bench tools
    echo "== mypy"; mypy
    echo "== pytest"; exec python -m pytest "$@"
    ;;
  *)
    echo "usage: sudo ./setup.sh run|test [args]" >&2; exit 2 ;;
esac
