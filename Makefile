# kasync developer commands. `make` alone lists them. CI (.ci/run) runs these
# same targets, so what passes here passes there.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO            ?= go
FUZZTIME      ?= 10s
GOBIN         := $(shell $(GO) env GOPATH)/bin
GOLANGCI_VERSION := v2.15.0
GOLANGCI_LINT := $(or $(shell command -v golangci-lint 2>/dev/null),$(GOBIN)/golangci-lint)

.PHONY: help test test/race test/faults-long test/churn-long lint bench bench-harness bench-peers fuzz proto proto/check dev build tools

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "; printf "usage: make <target>\n\n"} \
		/^[a-zA-Z0-9_\/-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The Asynq peer of the bench harness is a module of its own (kasync does not depend on
# Asynq): the targets below run it too.
PEER := internal/bench/asynqpeer

test: ## run every test once
	$(GO) test -count=1 ./...
	cd $(PEER) && $(GO) test -count=1 ./...

test/race: ## run every test once with the race detector (the CI test command)
	$(GO) test -race -count=1 ./...
	cd $(PEER) && $(GO) test -race -count=1 ./...

test/faults-long: ## the broker fault tests at their long size (KASYNC_LONG_FAULTS=1), printing their figures
	KASYNC_LONG_FAULTS=1 $(GO) test -race -count=1 -timeout 30m -v -run '^TestBrokerFaults' ./tailer/

test/churn-long: ## the churn test at its long size (KASYNC_LONG_CHURN=1: 100,000 events, 20 stops), printing its figures
	KASYNC_LONG_CHURN=1 $(GO) test -race -count=1 -timeout 30m -v -run '^TestChurn$$' ./internal/crashtest/

lint: ## gofmt check (generated *.pb.go excluded), go vet, golangci-lint
	@unformatted="$$(find . -name '*.go' -not -name '*.pb.go' -not -path './.git/*' -not -path './bin/*' -print0 \
		| xargs -0 -r gofmt -l)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "gofmt: these files are not formatted (run gofmt -w on them):"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
	cd $(PEER) && $(GO) vet ./...
	@if [[ ! -x "$(GOLANGCI_LINT)" ]]; then echo "golangci-lint not found; run: make tools"; exit 1; fi
	$(GOLANGCI_LINT) run ./...
	cd $(PEER) && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...

bench: ## run every Go benchmark with allocation counts
	$(GO) test -run='^$$' -bench=. -benchmem ./...

BENCH_OUT   ?= bench-out
BENCHFLAGS  ?=
bench-harness: build ## kasync bench: kasync vs raw franz-go, a hand-written consumer and Asynq (BENCHFLAGS, BENCH_OUT)
	@if [[ ! -x bin/kasync-bench-asynq ]] || ! command -v redis-server >/dev/null; then \
		echo "note: Asynq is skipped without redis-server and bin/kasync-bench-asynq; make bench-peers installs both"; \
	fi
	bin/kasync bench --out $(BENCH_OUT) $(BENCHFLAGS)

bench-peers: ## install redis-server (Debian, as root) and build the Asynq peer, bin/kasync-bench-asynq
	@if ! command -v redis-server >/dev/null; then \
		if [[ "$$(id -u)" == 0 ]]; then \
			apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; \
		else \
			echo "redis-server not found: install it (e.g. sudo apt-get install -y redis-server)"; exit 1; \
		fi; \
	fi
	cd $(PEER) && $(GO) build -o $(CURDIR)/bin/kasync-bench-asynq .

fuzz: ## run every Fuzz target for FUZZTIME each (default 10s; CI uses a count, e.g. 20000x)
	@targets="$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ {f[n++] = $$1; next} /^ok/ {for (i = 0; i < n; i++) print $$2 " " f[i]; n = 0}')"; \
	if [[ -z "$$targets" ]]; then echo "no fuzz targets found"; exit 0; fi; \
	while read -r pkg fn; do \
		echo "== fuzz $$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) "$$pkg" </dev/null; \
	done <<< "$$targets"

proto: ## regenerate the Go code from proto/*.proto
	bash proto/generate.sh

proto/check: ## fail if the committed generated code differs from a fresh generation
	bash proto/check.sh

dev: ## run everything in one process on the embedded broker
	$(GO) run ./cmd/kasync dev

build: ## build bin/kasync
	$(GO) build -o bin/kasync ./cmd/kasync

tools: ## install golangci-lint (pinned) and, as root, protoc if missing
	@if [[ ! -x "$(GOBIN)/golangci-lint" ]] && ! command -v golangci-lint >/dev/null; then \
		echo "installing golangci-lint $(GOLANGCI_VERSION)"; \
		GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION); \
	fi
	@if ! command -v protoc >/dev/null; then \
		if [[ "$$(id -u)" == 0 ]]; then \
			apt-get update && apt-get install -y protobuf-compiler; \
		else \
			echo "protoc not found: install protobuf-compiler (e.g. sudo apt-get install -y protobuf-compiler)"; \
		fi; \
	fi
