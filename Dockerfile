# The eventstream-operator manager image: a static binary on distroless,
# running as non-root (65532).
#   make docker-build IMG=ghcr.io/giia/eventstream-operator:dev

FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace

# Dependencies first, so that a source change does not download them again.
# The client library is its own module, which go.mod replaces with
# ./pkg/events: its go.mod and go.sum must be there for go mod download.
COPY go.mod go.sum ./
COPY pkg/events/go.mod pkg/events/go.sum pkg/events/
RUN go mod download

COPY cmd/ cmd/
COPY api/ api/
COPY internal/ internal/
COPY pkg/ pkg/

# The same build as `make build` (test/chart checks that the flags match).
RUN GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o manager ./cmd

FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.source="https://github.com/giia/eventstream-operator" \
      org.opencontainers.image.description="eventstream-operator: NATS JetStream streams from Kubernetes EventStream resources" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /
COPY --from=builder /workspace/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
