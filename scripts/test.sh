#!/usr/bin/env bash
# The project's test command (README, .ci/run): formatting, vet, then every
# test against real services. Any skipped test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [[ -n "$unformatted" ]]; then
  echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi
go vet ./...

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
go test -count=1 -p 2 -timeout 25m -v ./... 2>&1 | tee "$log" | grep -E '^(=== RUN|--- (PASS|FAIL|SKIP)|PASS|FAIL|ok|panic|\s+\S+_test\.go)' | grep -v '^=== RUN'
status=${PIPESTATUS[0]}
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
