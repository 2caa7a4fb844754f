# syntax=docker/dockerfile:1
# pgcapacity: a static binary on a distroless, non-root image without a shell.
#
#   docker build -t pgcapacity:$(git describe --tags --always) \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse --short HEAD) .
#   docker run --rm -p 9842:9842 -e PGCAPACITY_DATABASE_URL=postgres://pgcapacity@db/sigid pgcapacity:...
#
# deploy/tests/dockerfile_test.go runs this file's build commands on the build context
# that .dockerignore leaves, and tests that binary.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG OUT=/out
ENV CGO_ENABLED=0 GOOS=linux GOFLAGS=-trimpath
RUN go build -ldflags "-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION}" -o ${OUT}/pgcapacity ./cmd/pgcapacity
RUN go build -ldflags "-s -w" -o ${OUT}/healthcheck ./deploy/healthcheck

# distroless static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532); no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="pgcapacity" \
      org.opencontainers.image.description="Prometheus exporter, alert rules, dashboards and online repartitioning for hash-partitioned PostgreSQL tables" \
      org.opencontainers.image.source="https://github.com/sigid/pgcapacity" \
      org.opencontainers.image.url="https://github.com/sigid/pgcapacity" \
      org.opencontainers.image.documentation="https://github.com/sigid/pgcapacity#readme" \
      org.opencontainers.image.vendor="SigID" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"
COPY --from=build /out/pgcapacity /out/healthcheck /usr/local/bin/
USER 65532:65532
# 9842: /metrics and everything else, under PGCAPACITY_WEB_CONFIG_FILE's TLS
# and basic auth when set. 9843: /healthz and /readyz only, always plain HTTP
# without auth, so the health check below (and kubelet probes) need no
# password or client certificate, with or without a web config.
ENV PGCAPACITY_LISTEN_ADDRESS=:9842 PGCAPACITY_HEALTH_LISTEN_ADDRESS=:9843
EXPOSE 9842 9843
# The exporter answers /healthz while it runs, whatever the database does
# (pgcapacity_up tells that); the check binary asks
# PGCAPACITY_HEALTH_LISTEN_ADDRESS (PGCAPACITY_LISTEN_ADDRESS when empty).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/healthcheck"]
ENTRYPOINT ["/usr/local/bin/pgcapacity"]
CMD ["serve"]
