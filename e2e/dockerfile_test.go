package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// standInGo is the golang image's go command for dockerLegacyBuild: no
// registry is reachable, so the Dockerfile's FROM golang is a local image
// whose go says what the Dockerfile asked of it and hands over the vigil
// binary the test built. It fails unless the build is asked for as the
// Dockerfile means it: static, for linux, with the version stamped in.
const standInGo = `#!/bin/sh
case "$1" in
mod) exit 0 ;;
env) [ "$2" = GOARCH ] && echo "$HOST_GOARCH"; exit 0 ;;
build) ;;
*) echo "stand-in go: $*" >&2; exit 2 ;;
esac
out= stamped=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2 ;;
	*main.version=*) stamped=1 ;;
	esac
	shift
done
if [ "$CGO_ENABLED" != 0 ] || [ "$GOOS" != linux ] || [ "$GOARCH" != "$HOST_GOARCH" ] || [ -z "$stamped" ] || [ -z "$out" ]; then
	echo "stand-in go: built as CGO_ENABLED=$CGO_ENABLED GOOS=$GOOS GOARCH=$GOARCH stamped=$stamped -o $out" >&2
	exit 3
fi
/bin/busybox cp /prebuilt-vigil "$out"
`

// dockerLegacyBuild builds the repository's own Dockerfile with the
// legacy builder (DOCKER_BUILDKIT=0, as the engine's client is set up),
// which sets none of BuildKit's platform arguments, on a stand-in for the
// golang image, and runs the image it gives.
func dockerLegacyBuild(t *testing.T, e *engine, m *matrix) {
	ctxDir := t.TempDir()
	bin := filepath.Join(ctxDir, "bin")
	must(t, os.MkdirAll(bin, 0o755))
	must(t, os.WriteFile(filepath.Join(bin, "go"), []byte(standInGo), 0o755))
	copyFile(t, vigilBin, filepath.Join(ctxDir, "prebuilt-vigil"))
	df := "FROM localhost/vigil-e2e:base\nCOPY bin/go /usr/local/go/bin/go\nCOPY prebuilt-vigil /prebuilt-vigil\n" +
		"ENV PATH=/usr/local/go/bin:/bin HOST_GOARCH=" + runtime.GOARCH + "\n"
	must(t, os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644))
	e.must(t, 2*time.Minute, "build", "-q", "-t", "golang:1.26-bookworm", ctxDir)
	t.Cleanup(func() { e.do(time.Minute, "rmi", "-f", "golang:1.26-bookworm", "localhost/vigil-e2e:dockerfile") })
	repo, err := filepath.Abs("..")
	must(t, err)
	args := []string{"build", "-t", "localhost/vigil-e2e:dockerfile", "-f", filepath.Join(repo, "Dockerfile")}
	if runtime.GOARCH != "amd64" {
		// The default is linux/amd64; this machine's stand-in is not.
		args = append(args, "--build-arg", "BUILDPLATFORM=linux/"+runtime.GOARCH)
	}
	out, stderr, err := e.do(2*time.Minute, append(args, repo)...)
	m.set("the repository's Dockerfile, legacy builder", "vigil", map[bool]string{true: "builds", false: "fails"}[err == nil])
	if err != nil {
		t.Fatalf("DOCKER_BUILDKIT=0 docker build of the repository's Dockerfile: %v\n%s%s", err, out, stderr)
	}
	got := strings.TrimSpace(e.must(t, time.Minute, "run", "--rm", "--network", "none", "localhost/vigil-e2e:dockerfile", "/vigil", "--version"))
	if !strings.HasPrefix(got, "vigil version dev - git.") {
		t.Errorf("the image's vigil --version printed %q", got)
	}
	if ep := strings.TrimSpace(e.must(t, time.Minute, "image", "inspect", "-f", "{{json .Config.Entrypoint}}", "localhost/vigil-e2e:dockerfile")); ep != `["/vigil","--"]` {
		t.Errorf("the image's entrypoint is %s", ep)
	}
}
