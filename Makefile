# pgcapacity: the README's quick start runs `make demo` and `make test`.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/prometheus/common/version.Version=$(VERSION) -X github.com/prometheus/common/version.Revision=$(REVISION)

.PHONY: build demo test deps bench generate test-matrix

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/pgcapacity ./cmd/pgcapacity

# A throwaway PostgreSQL with the seeded SigID schema and the exporter on it.
demo: deps build
	bin/pgcapacity demo

# Everything CI runs, in every Go module: formatting, go mod tidy -diff, vet,
# staticcheck, and the whole suite under -race against a real PostgreSQL,
# promtool, Prometheus and Alertmanager. A skipped test fails it.
test: deps
	scripts/test.sh

# Installs what the tests need from Debian's packages, when missing.
deps:
	scripts/deps.sh

# Each benchmark prints its own table; see the README for what they measure.
bench: deps
	$(GO) run ./bench/exporter
	$(GO) run ./bench/adminops
	$(GO) test ./bench/probes -run '^$$' -bench . -benchtime 400x
	$(GO) run ./bench/migrate

# The integration suite on PostgreSQL 13, 14, 16, 17 and 18 (fetched once
# with npm pack into a cache); `make test` covers 15. VERSIONS="13 18" picks.
test-matrix: deps
	scripts/test-matrix.sh $(VERSIONS)
