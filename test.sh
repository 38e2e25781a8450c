#!/usr/bin/env bash
# The whole test suite, as the README documents it: static checks, unit
# tests with the race detector, the end-to-end tests (as root: vigil as a
# real PID 1 and inside runc containers), bounded fuzzing and the quick
# benchmark.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:$(go env GOPATH)/bin"

# Install what the tests need and is missing (.ci/install says what and why).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  .ci/install
fi

echo "== gofmt, go vet, staticcheck"
test -z "$(gofmt -l . | tee /dev/stderr)"
go vet ./...
go vet ./.ci/cross/
(cd examples/kubernetes && go vet ./...)
if command -v staticcheck >/dev/null; then
  staticcheck ./... ./.ci/cross/
  (cd examples/kubernetes && staticcheck ./...)
else
  echo "staticcheck not installed: skipped (CI installs it)"
fi

echo "== unit tests (race detector)"
go test -race -count=1 ./signals/ ./reaper/ ./pid1/ ./internal/... .

echo "== Kubernetes manifests (examples/kubernetes, a module of its own: strict API types, vigil's real flags)"
(cd examples/kubernetes && go test -count=1 ./...)

echo "== cross builds (linux amd64 arm64 arm/v7 386 ppc64le s390x riscv64; arm64 under qemu-user)"
go test -count=1 -v -timeout 15m ./.ci/cross/

echo "== end-to-end tests"
go test -count=1 -v -timeout 10m ./e2e/

echo "== quick benchmark (bench/: tiny counts, so that it never rots)"
go test -count=1 -v -timeout 5m ./bench/

echo "== fuzzing (each target briefly; seeds in */testdata/fuzz)"
# A count of inputs, not a duration: with a duration the Go fuzzer can end on
# "context deadline exceeded" when its deadline catches a worker mid-input.
fuzztime="${VIGIL_FUZZTIME:-10000x}"
for target in signals:FuzzParse signals:FuzzParseRewrite pid1:FuzzSplitWords pid1:FuzzParseTarget pid1:FuzzParseStatusLine \
	pid1:FuzzLookupUser .:FuzzConfig .:FuzzDurations .:FuzzRemapExit .:FuzzEnv internal/notify:FuzzParse; do
	pkg="./${target%%:*}/" name="${target#*:}"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg" >/dev/null || {
		echo "fuzzing $name failed; the failing input is under ${pkg}testdata/fuzz/$name" >&2
		go test -run="^${name}\$" "$pkg"
		exit 1
	}
done
echo "== all tests passed"
