# Builds vigil as a static, stripped binary and ships it alone in a scratch
# image, so other images can take it with:
#   COPY --from=vigil /vigil /vigil
#   ENTRYPOINT ["/vigil", "--"]
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs \
      -ldflags="-s -w -X main.version=${VERSION}" -o /vigil .

FROM scratch
COPY --from=build /vigil /vigil
ENTRYPOINT ["/vigil", "--"]
