#!/usr/bin/env bash
# The project's test command (README, .ci/run): formatting, then in every Go
# module of the repository (the product's at the root, the deploy tests' in
# deploy/tests, the tool pins in tools/, any other go.mod git knows)
# `go mod tidy -diff`, go vet, staticcheck and every test against real
# services, once, under the race detector (the run is mostly waiting on
# PostgreSQL, promtool and Prometheus, which it does not slow). Any skipped
# test or staticcheck finding fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [[ -n "$unformatted" ]]; then
  echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi

# Every module git knows, the root first; a new go.mod is picked up here.
mapfile -t modules < <(git ls-files -- go.mod '*/go.mod' | xargs -r -n1 dirname | sort -u)
((${#modules[@]})) || { echo "test.sh: git knows no go.mod"; exit 1; }

# staticcheck at the version tools/go.mod pins (a Go tool from the module proxy).
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go -C tools build -o "$bin/staticcheck" honnef.co/go/tools/cmd/staticcheck

# Modules with Go packages; tools/ only pins the tools.
code_modules=()
for mod in "${modules[@]}"; do
  if ! diff=$(cd "$mod" && go mod tidy -diff 2>&1); then
    echo "$mod/go.mod is not tidy: run (cd $mod && go mod tidy); the difference:"
    echo "$diff"
    exit 1
  fi
  [[ -n $(cd "$mod" && go list ./... 2>/dev/null) ]] || continue
  code_modules+=("$mod")
  (cd "$mod" && go vet ./... && "$bin/staticcheck" ./...)
done

log=$bin/test.log
status=0
set +e
for mod in "${code_modules[@]}"; do
  (cd "$mod" && go test -race -count=1 -p 2 -timeout 25m -v ./...) 2>&1 | tee -a "$log" | grep -E '^(=== RUN|--- (PASS|FAIL|SKIP)|PASS|FAIL|ok|panic|\s+\S+_test\.go)' | grep -v '^=== RUN'
  rc=${PIPESTATUS[0]}
  ((rc == 0)) || status=$rc
done
set -e
if grep -q -- '--- SKIP' "$log"; then
  echo "skipped tests (a skipped test is a defect here):"
  grep -- '--- SKIP' "$log"
  exit 1
fi
if [[ $status -ne 0 ]]; then
  echo "go test failed; the failing output:"
  grep -B2 -A30 -E -- '--- FAIL|^panic:' "$log" | head -400
  exit "$status"
fi
passed=$(grep -c -- '--- PASS' "$log" || true)
failed=$(grep -c -- '--- FAIL' "$log" || true)
echo "tests: $passed passed, $failed failed"
