# make bench: under the same wrk load and the same upstream, in interleaved
# rounds, plain nginx proxy_pass (with a JSON access log) against the gateway
# with audit on (GET, 1 KiB POST, 1 KiB MCP tools/call) and against nginx
# auth_request to Cerbos; at 50 connections and at the throughput knee, with
# 1 then 2 worker processes; policy evaluation from 10 to 10,000 rules; memory,
# idle CPU and resume latency of 10,000 calls held at once.
# Everything runs on 127.0.0.1 and under $(BUILD)/bench/; the table is printed
# and written to $(BUILD)/bench/report.txt, every figure to
# $(BUILD)/bench/results.json. About 8 minutes with the defaults on 2 CPUs
# (the holds about 80 s of it). See docs/bench.md.
#
#   make bench BENCH_SECONDS=4 BENCH_ROUNDS=3 BENCH_WARMUP=1 BENCH_CONNECTIONS=50 \
#              BENCH_KNEE_SECONDS=2 BENCH_RAMP="1 2 4 8 16 32 64" BENCH_WORKERS="1 2" \
#              BENCH_EVAL_MS=1000 BENCH_EVAL_RULES="10 100 1000 10000" \
#              BENCH_HOLDS=10000 BENCH_HOLDS_WORKERS="2 1"
#   make bench BENCH_HOLDS=0     # without the holds
#   make bench BENCH_CERBOS=0    # without Cerbos (no npm, no njs)
#   make bench-holds             # the holds alone

BENCH_SECONDS       ?= 4
BENCH_ROUNDS        ?= 3
BENCH_WARMUP        ?= 1
BENCH_CONNECTIONS   ?= 50
BENCH_KNEE_SECONDS  ?= 2
BENCH_RAMP          ?= 1 2 4 8 16 32 64
BENCH_WORKERS       ?= 1 2
BENCH_VARIANTS      ?= plain-get gwa-get cerbos-get plain-post gwa-post cerbos-post plain-mcp gwa-mcp
BENCH_PERF          ?= 1
BENCH_NICE          ?= -10
BENCH_CERBOS        ?= 1
BENCH_EVAL_MS       ?= 1000
BENCH_EVAL_RULES    ?= 10 100 1000 10000
BENCH_HOLDS         ?= 10000
BENCH_HOLDS_WORKERS ?= 2 1
BENCH_HOLDS_IDLE    ?= 10
BENCH_HOLDS_SAMPLES ?= 200

BENCH_HOLDS_ENV = BENCH_HOLDS=$(BENCH_HOLDS) BENCH_HOLDS_WORKERS="$(BENCH_HOLDS_WORKERS)" \
                  BENCH_HOLDS_IDLE=$(BENCH_HOLDS_IDLE) BENCH_HOLDS_SAMPLES=$(BENCH_HOLDS_SAMPLES)

# Cerbos, the external policy decision point of the auth_request comparison:
# its server binary comes in the npm package @cerbos/cerbos-linux-x64,
# installed once into $(BUILD)/bench/npm (the stamp records the version, so a
# repeated make bench does not touch the network and a version change
# reinstalls). nginx talks to it through njs (Debian's libnginx-mod-http-js).
CERBOS_VERSION := 0.55.0
CERBOS_PKG     := @cerbos/cerbos-linux-x64
CERBOS_NPM     := $(BUILD)/bench/npm
CERBOS_STAMP   := $(CERBOS_NPM)/cerbos.stamp
ifeq ($(shell uname -m),x86_64)
CERBOS_BIN     := $(CERBOS_NPM)/node_modules/$(CERBOS_PKG)/cerbos-linux-x64
else
CERBOS_BIN     :=
endif
ifeq ($(BENCH_CERBOS),0)
CERBOS_BIN     :=
endif

.PHONY: bench bench-holds deps-bench deps-cerbos

# wrk for the load, taskset (util-linux) to pin it and nginx to their CPUs,
# perl for bench/run.pl (nginx comes with the build dependencies)
deps-bench: deps $(if $(CERBOS_BIN),deps-cerbos)
	@scripts/deps.sh wrk util-linux perl

deps-cerbos:
	@scripts/deps.sh libnginx-mod-http-js
	@command -v npm >/dev/null || scripts/deps.sh nodejs npm
	@{ test -x $(CERBOS_BIN) && echo "$(CERBOS_PKG)@$(CERBOS_VERSION)" | cmp -s - $(CERBOS_STAMP); } || { \
	    echo "agentgov: installing npm package $(CERBOS_PKG)@$(CERBOS_VERSION) (Cerbos, for make bench)" && \
	    mkdir -p $(CERBOS_NPM) && \
	    npm install --prefix $(CERBOS_NPM) --cache $(BUILD)/bench/npm-cache --no-audit --no-fund --no-save \
	        --loglevel=error $(CERBOS_PKG)@$(CERBOS_VERSION) && \
	    test -x $(CERBOS_BIN) && \
	    echo "$(CERBOS_PKG)@$(CERBOS_VERSION)" > $(CERBOS_STAMP); }

bench: deps-bench all
	@AGENTGOV_BUILD=$(CURDIR)/$(BUILD) NGINX_BIN=$(NGINX_BIN) \
	    BENCH_SECONDS=$(BENCH_SECONDS) BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_WARMUP=$(BENCH_WARMUP) \
	    BENCH_CONNECTIONS=$(BENCH_CONNECTIONS) BENCH_KNEE_SECONDS=$(BENCH_KNEE_SECONDS) \
	    BENCH_RAMP="$(BENCH_RAMP)" BENCH_WORKERS="$(BENCH_WORKERS)" \
	    BENCH_VARIANTS="$(BENCH_VARIANTS)" BENCH_PERF=$(BENCH_PERF) BENCH_NICE=$(BENCH_NICE) \
	    BENCH_CERBOS_BIN=$(if $(CERBOS_BIN),$(abspath $(CERBOS_BIN))) \
	    BENCH_EVAL_MS=$(BENCH_EVAL_MS) BENCH_EVAL_RULES="$(BENCH_EVAL_RULES)" $(BENCH_HOLDS_ENV) \
	    perl bench/run.pl

# the holds alone (bench/holds.pl needs nginx and perl only)
bench-holds: deps all
	@AGENTGOV_BUILD=$(CURDIR)/$(BUILD) NGINX_BIN=$(NGINX_BIN) $(BENCH_HOLDS_ENV) \
	    perl bench/holds.pl
