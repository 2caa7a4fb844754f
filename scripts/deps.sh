#!/usr/bin/env bash
# Installs the test and demo dependencies from Debian's packages when they
# are missing: PostgreSQL (server and contrib), Prometheus with promtool,
# Alertmanager. Needs root (or sudo) only when something is missing.
set -euo pipefail

missing=()
pg_bindir=$(pg_config --bindir 2>/dev/null || true)
if [[ -z "${PGCAPACITY_PG_BINDIR:-}" ]] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && [[ ! -x "$pg_bindir/initdb" ]]; then
  missing+=(postgresql postgresql-contrib)
fi
# One package, named once even when both binaries are missing.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  missing+=(prometheus)
fi
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
# The deploy tests: psql runs the role scripts, systemd-analyze checks the
# unit; the PostgreSQL matrix fetches servers with npm and reads their
# libraries' sonames with readelf.
command -v psql >/dev/null || missing+=(postgresql-client)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v npm >/dev/null || missing+=(npm)
command -v readelf >/dev/null || missing+=(binutils)
# go test -race (scripts/test.sh) links the race runtime with cgo.
command -v gcc >/dev/null || missing+=(gcc)

if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts these services on install where it can; the tests run their own.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter postgresql; do
    $sudo systemctl stop "$svc" 2>/dev/null || true
  done
fi
