# pushgateway-cluster — build, run and test.
GO        ?= go
BINARY    ?= pushgateway-cluster
VERSION   := $(shell cat VERSION)
REVISION  := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH    := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILDDATE := $(shell date -u +%Y%m%d-%H:%M:%S)
VPKG      := github.com/prometheus/common/version
LDFLAGS   := -s -w -X $(VPKG).Version=$(VERSION) -X $(VPKG).Revision=$(REVISION) \
             -X $(VPKG).Branch=$(BRANCH) -X $(VPKG).BuildUser=$(USER)@$(shell hostname) \
             -X $(VPKG).BuildDate=$(BUILDDATE)
RUN_ARGS  ?= --storage.path=data/ --web.listen-address=:9091 --raft.listen-address=127.0.0.1:9095 --cluster.listen-address=127.0.0.1:9094

CERTS_DIR ?= .build/certs

.PHONY: all build run cluster cluster-secure certs docker e2e test test-deps unit bench vet fmt clean

all: build

## build: static binary ./pushgateway-cluster
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/pushgateway-cluster

## run: one durable node on :9091, state under ./data
run: build
	./$(BINARY) $(RUN_ARGS)

## cluster: three local nodes on 127.0.0.1 (APIs :9091-9093), state under ./data/nodeN
cluster: build
	./scripts/local-cluster.sh ./$(BINARY)

## certs: TEST credentials in $(CERTS_DIR): a CA, node certificates (and a rogue CA's), a gossip key,
## cluster-tls.yml, web-config.yml (HTTPS + basic auth), healthcheck.yml; replaces existing ones
certs:
	./scripts/gen-test-certs.sh $(CERTS_DIR)

## cluster-secure: like cluster, with HTTPS + basic auth, encrypted gossip and mutual TLS (credentials from make certs)
cluster-secure: build
	test -f $(CERTS_DIR)/cluster-tls.yml || ./scripts/gen-test-certs.sh $(CERTS_DIR)
	./scripts/local-cluster.sh ./$(BINARY) $(CERTS_DIR)

## docker: image pushgateway-cluster:latest FROM scratch, from a static binary built here
docker: build
	rm -rf .build/docker && mkdir -p .build/docker/data
	cp $(BINARY) .build/docker/pushgateway-cluster
	cp /etc/ssl/certs/ca-certificates.crt .build/docker/
	touch .build/docker/data/.keep
	docker build -q -t pushgateway-cluster:latest -f Dockerfile .build/docker

## e2e: the compose cluster end to end (build, up, faults, Prometheus, down); skips without Docker
e2e: test-deps
	$(GO) test -count=1 -timeout 15m -run 'E2E' -v ./test/

## test-deps: what the tests need besides Go: the real upstream Pushgateway and Prometheus,
## HAProxy, Python's prometheus_client, curl, and Chromium for the browser test (Debian packages)
test-deps:
	@{ command -v prometheus-pushgateway && command -v prometheus && command -v haproxy && command -v curl && command -v chromium && \
	   command -v ip && command -v iptables && \
	   /usr/bin/python3 -c 'import prometheus_client'; } >/dev/null 2>&1 || { \
	  echo "installing Debian packages for the tests: prometheus-pushgateway prometheus haproxy python3-prometheus-client curl chromium iproute2 iptables"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    prometheus-pushgateway prometheus haproxy python3-prometheus-client curl chromium fonts-liberation iproute2 iptables >/dev/null; }
	$(GO) mod download

## test: vet, then every test with the race detector
test: test-deps vet
	$(GO) test -race -count=1 -timeout 12m ./...

## unit: the fast package tests only
unit:
	$(GO) test -count=1 ./fsm/ ./httpapi/ ./cluster/

## bench: push and scrape benchmarks (1,000 groups)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./fsm/ ./httpapi/

## bench-compare: side-by-side benchmark against Debian's upstream Pushgateway (one node and a 3-node
## cluster of ours, on loopback); prints the tables, writes BENCHMARKS.md and docs/bench.png.
## G = 100, 1,000, 10,000 for all, 100,000 for ours (--huge), a churn soak of a million delete+push cycles
## (ten times the groups; about 8 minutes on one node and 18 on the cluster, 25 at most; RSS levels off
## in the first half, the second half shows whether it stays) and heap and CPU profiles
## of ours at 100,000 (kept in bench-profiles/, summarised in BENCHMARKS.md). Other flags: make bench-compare
## BENCH_ARGS='--quick' (a smoke run; see go run ./cmd/pgbench -h)
BENCH_ARGS ?= --huge --fill-timeout=150s --soak=25m --soak-cycles=1000000 --profile-dir=bench-profiles
.PHONY: bench-compare
bench-compare: build
	$(GO) run ./cmd/pgbench --binary=./$(BINARY) $(BENCH_ARGS)

## fuzz: every fuzz target for FUZZTIME (default 30s); the seed corpora also run in make test
FUZZTIME ?= 30s
.PHONY: fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzRestore$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFamilies$$' -fuzztime $(FUZZTIME) ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzParseGroupingLabels$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBody$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzTextSeriesCount$$' -fuzztime $(FUZZTIME) ./httpapi/
	$(GO) test -run '^$$' -fuzz '^FuzzWholePath$$' -fuzztime $(FUZZTIME) ./httpapi/

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -f $(BINARY)

## chaos: the long fault-injection run with the history checker (test/chaos; README "Guarantees"): every fault
## alone and combined for CHAOS_DURATION; partitions need root (network namespaces, iptables), else they are skipped.
## Knobs: CHAOS_SEED, CHAOS_CLIENTS, CHAOS_KEYS, CHAOS_ARTIFACTS=dir (history and node logs; always kept on failure)
## More: CHAOS_SCHEDULE='partition leader, full restart, kill -9 leader + pause follower', CHAOS_BINARY=path, CHAOS_NETNS=0
CHAOS_DURATION ?= 120s
.PHONY: chaos chaos-deps
chaos: chaos-deps
	CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -count=1 -timeout 30m -v ./test/chaos/

## chaos-deps: ip (iproute2) and iptables for the partitions in network namespaces (Debian packages)
chaos-deps:
	@{ command -v ip && command -v iptables; } >/dev/null 2>&1 || { \
	  echo "installing Debian packages for the chaos test: iproute2 iptables"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    iproute2 iptables >/dev/null; }
