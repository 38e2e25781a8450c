# Builds vigil as a static, stripped binary and ships it alone in a scratch
# image, so other images can take it with:
#   COPY --from=vigil /vigil /vigil
#   ENTRYPOINT ["/vigil", "--"]
#
# The Go toolchain runs on the build machine's platform and cross-compiles
# for the target's (no emulation), so one command builds every platform:
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t vigil .
# BuildKit sets BUILDPLATFORM, TARGETOS, TARGETARCH and TARGETVARIANT. The
# legacy builder (DOCKER_BUILDKIT=0) sets none of them: the build stage is
# then linux/amd64 and so is the binary, unless the machine's own platform
# is given: docker build --build-arg BUILDPLATFORM=linux/arm64 -t vigil .
# (An empty platform in FROM is an error to the legacy builder, hence the
# default; declared without a value here, BuildKit's own value stands.)
ARG BUILDPLATFORM
FROM --platform=${BUILDPLATFORM:-linux/amd64} golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION=dev
# The commit docker version shows for the init; .git is not in the build
# context: docker buildx build --build-arg COMMIT=$(git rev-parse HEAD) ...
ARG COMMIT=
# TARGETVARIANT is v7 for linux/arm/v7 (GOARM=7) and v2 or v3 for
# linux/amd64/v3 (GOAMD64=v3); other architectures have none Go uses.
RUN export CGO_ENABLED=0 GOOS="${TARGETOS:-linux}" GOARCH="${TARGETARCH:-$(go env GOARCH)}"; \
    case "$GOARCH/$TARGETVARIANT" in \
      arm/v*) export GOARM="${TARGETVARIANT#v}" ;; \
      amd64/v*) export GOAMD64="$TARGETVARIANT" ;; \
    esac; \
    go build -trimpath -tags urfave_cli_no_docs \
      -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /vigil .

FROM scratch
COPY --from=build /vigil /vigil
ENTRYPOINT ["/vigil", "--"]
