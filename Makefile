# tpf — see README.md. `make run` and `make test` are the front door.
SHELL := /bin/bash
GO    ?= go
DATA  := $(CURDIR)/.data
SQLC_VERSION := v1.31.1
SQLC  := $(CURDIR)/.cache/bin/sqlc
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION) -X github.com/tpf-dev/tpf/controller/cli.Version=$(VERSION)

.PHONY: all build run demo stop bench-relay test test-go vet fmt-check generate check-generated bench bench-more clean dist container

all: build

## build: the programs, into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./controller/cmd/... ./agent/cmd/... ./e2e/cmd/...

## run: the controller on http://127.0.0.1:8080, on $DATABASE_URL or a private PostgreSQL in
## .data/ that stops again with it (Ctrl-C)
run: build
	@set -e; \
	if [ -z "$$DATABASE_URL" ]; then \
		DATABASE_URL=$$(bin/tpf-devdb start $(DATA)/postgres tpf); export DATABASE_URL; \
		trap 'bin/tpf-devdb stop $(DATA)/postgres >/dev/null 2>&1 || true' EXIT; \
	fi; \
	bin/tpf-controller quickstart --state $(DATA)

## demo: the whole path on one machine, without root: controller and edge,
## an emulated router, its agent and a demo device; prints how to connect
## (bin/tpf-demo, built from e2e/cmd/tpf-demo)
## It keeps its own state and PostgreSQL in .data/demo/, apart from make run's.
demo: build
	@set -e; \
	if [ -z "$$DATABASE_URL" ]; then \
		DATABASE_URL=$$(bin/tpf-devdb start $(DATA)/demo/postgres tpf); export DATABASE_URL; \
		trap 'bin/tpf-devdb stop $(DATA)/demo/postgres >/dev/null 2>&1 || true' EXIT; \
	fi; \
	bin/tpf-demo --state $(DATA)/demo

## stop: stop the private PostgreSQL clusters of make run and make demo, if one is left running
stop: build
	@for d in $(DATA)/postgres $(DATA)/demo/postgres; do \
		if [ -d $$d ]; then bin/tpf-devdb stop $$d && echo "stopped PostgreSQL in $$d"; fi; \
	done; true

## test: vet, formatting and every test, on a throwaway PostgreSQL
test: build vet fmt-check
	@set -e; \
	dir=$$(mktemp -d /tmp/tpf-test.XXXXXX); chmod 755 $$dir; \
	trap 'bin/tpf-devdb stop $$dir/pg >/dev/null 2>&1 || true; rm -rf $$dir' EXIT; \
	url=$$(bin/tpf-devdb start -ephemeral $$dir/pg); \
	TPF_TEST_DATABASE_URL=$$url $(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

$(SQLC):
	GOBIN=$(CURDIR)/.cache/bin CGO_ENABLED=1 $(GO) install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)

## generate: regenerate the sqlc code in controller/store/db from sql/
generate: $(SQLC)
	cd sql && $(SQLC) generate

## check-generated: fail when the committed sqlc code is stale
check-generated: $(SQLC)
	cd sql && $(SQLC) diff

## bench: the figures of issue 13 in one sitting, as one table beside their floors (API create and
## get against bare pgx, creates/s at 16 clients, resync and memory with 10,000 agents, POST→rule p99
## with 10,000 connected, and the relay against direct, haproxy and nginx when those are installed:
## make bench-relay installs them), against a throwaway PostgreSQL; see e2e/benchtable/run.sh
## (ROUNDS=3, RELAY=auto|0|1)
bench: build
	@set -e; \
	dir=$$(mktemp -d /tmp/tpf-bench.XXXXXX); chmod 755 $$dir; \
	trap 'bin/tpf-devdb stop $$dir/pg >/dev/null 2>&1 || true; rm -rf $$dir' EXIT; \
	url=$$(bin/tpf-devdb start -ephemeral $$dir/pg); \
	TPF_TEST_DATABASE_URL=$$url e2e/benchtable/run.sh

## bench-more: the other benchmarks, each on its own: the store and API, time to rule and to connect
## with one agent, agent memory, the management tunnel's (root and /dev/net/tun; without root they skip)
bench-more: build
	@set -e; \
	dir=$$(mktemp -d /tmp/tpf-bench.XXXXXX); chmod 755 $$dir; \
	trap 'bin/tpf-devdb stop $$dir/pg >/dev/null 2>&1 || true; rm -rf $$dir' EXIT; \
	url=$$(bin/tpf-devdb start -ephemeral $$dir/pg); \
	TPF_TEST_DATABASE_URL=$$url $(GO) test -run '^$$' -bench Forwards -benchmem -count 5 ./controller/api/; \
	TPF_TEST_DATABASE_URL=$$url $(GO) test -run '^$$' -bench TimeToRule -benchtime 100x ./e2e/; \
	TPF_TEST_DATABASE_URL=$$url $(GO) test -run '^$$' -bench AgentMemory -benchtime 1x ./e2e/; \
	TPF_TEST_DATABASE_URL=$$url $(GO) test -run '^$$' -bench MemoryPerAgent -benchtime 1x ./controller/hub/; \
	TPF_TEST_DATABASE_URL=$$url $(GO) test -run '^$$' -bench TimeToConnect -benchtime 100x ./e2e/; \
	TPF_TEST_DATABASE_URL=$$url $(GO) test -run '^$$' -bench TunnelHandshake -benchtime 10x ./e2e/; \
	TPF_TEST_DATABASE_URL=$$url $(GO) test -run '^$$' -bench TunnelThroughput -benchtime 1x ./e2e/; \
	$(GO) test -run '^$$' -bench Apply1000Peers -benchmem ./controller/edge/tunnel/

## bench-relay: the edge's relay against haproxy, nginx, socat and a plain Go relay on loopback,
## in one sitting, with ratios to a direct connection (installs the peers with apt as root)
bench-relay: build
	@command -v iperf3 >/dev/null && command -v haproxy >/dev/null && command -v nginx >/dev/null && command -v socat >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 haproxy nginx-light libnginx-mod-stream socat; }
	cd e2e/bench && ./run-all.sh direct haproxy nginx gofwd edge

## dist: static, stripped tpf-agent binaries for every router architecture, with SHA256SUMS, into dist/
# linux/arm is ARMv7 (GOARM=7); MIPS is soft-float (GOMIPS=softfloat), as MIPS routers have no FPU.
AGENT_TARGETS := arm:armv7 arm64:arm64 amd64:amd64 mips:mips mipsle:mipsle
dist:
	@mkdir -p dist
	@set -e; for t in $(AGENT_TARGETS); do \
		goarch=$${t%%:*}; name=$${t#*:}; \
		echo "dist/tpf-agent-linux-$$name"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch GOARM=7 GOMIPS=softfloat \
			$(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o dist/tpf-agent-linux-$$name ./agent/cmd/tpf-agent; \
	done
	cd dist && sha256sum tpf-agent-linux-* > SHA256SUMS

## container: RouterOS container images (single-platform docker-archives for arm/v7, arm64, amd64) into dist/, no Docker needed
container: dist
	$(GO) run ./container/cmd/tpf-image -dist dist -version '$(VERSION)'
	cd dist && sha256sum tpf-agent-linux-* > SHA256SUMS

clean:
	rm -rf bin dist
