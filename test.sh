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
gofmt -l . | { ! grep . >&2; } # unformatted files, on the stderr we have (tee /dev/stderr reopened a log file at offset 0)
go vet ./...
go vet ./.ci/cross/
(cd examples/kubernetes && go vet ./...)
(cd e2e/kubelet && go vet ./...)
if command -v staticcheck >/dev/null; then
  staticcheck ./... ./.ci/cross/
  (cd examples/kubernetes && staticcheck ./...)
  (cd e2e/kubelet && staticcheck ./...)
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

echo "== vigil under a kubelet (e2e/kubelet, a module of its own: a kubelet standalone on containerd, static pods)"
# The first run builds the kubelet (about 5 CPU-minutes) into
# $HOME/.cache/vigil; later runs reuse it. -parallel 8: the pods mostly wait
# (on probes, back-offs, grace periods), so 8 at a time fit on 2 cores.
(cd e2e/kubelet && go test -count=1 -v -parallel 8 -timeout 20m ./...)

echo "== quick benchmark (bench/: tiny counts, so that it never rots)"
go test -count=1 -v -timeout 5m ./bench/

echo "== fuzzing (each target briefly; seeds in */testdata/fuzz)"
# A count of inputs, not a duration: with a duration the Go fuzzer can end on
# "context deadline exceeded" when its deadline catches a worker mid-input.
fuzztime="${VIGIL_FUZZTIME:-10000x}"
for target in signals:FuzzParse signals:FuzzParseRewrite pid1:FuzzSplitWords pid1:FuzzParseTarget \
	pid1:FuzzLookupUser .:FuzzConfig .:FuzzDurations .:FuzzRemapExit .:FuzzEnv internal/notify:FuzzParse; do
	pkg="./${target%%:*}/" name="${target#*:}"
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg" >/dev/null || {
		echo "fuzzing $name failed; the failing input is under ${pkg}testdata/fuzz/$name" >&2
		go test -run="^${name}\$" "$pkg"
		exit 1
	}
done
echo "== all tests passed"
