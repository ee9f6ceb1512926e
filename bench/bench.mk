# make bench: plain nginx proxy_pass against the gateway under the same wrk load
# and the same upstream, policy evaluation time from 10 to 10,000 rules, and
# memory, idle CPU and resume latency of 10,000 calls held at once.
# Everything runs on 127.0.0.1 and under $(BUILD)/bench/; the table is printed
# and written to $(BUILD)/bench/report.txt, the holds' figures also to
# $(BUILD)/bench/holds.json. About 3 minutes with the defaults (the holds
# about 80 s of it). See docs/bench.md.
#
#   make bench BENCH_SECONDS=10 BENCH_WARMUP=2 BENCH_CONNECTIONS=50 \
#              BENCH_EVAL_MS=1000 BENCH_EVAL_RULES="10 100 1000 10000" \
#              BENCH_HOLDS=10000 BENCH_HOLDS_WORKERS="2 1"
#   make bench BENCH_HOLDS=0     # without the holds
#   make bench-holds             # the holds alone

BENCH_SECONDS       ?= 10
BENCH_WARMUP        ?= 2
BENCH_CONNECTIONS   ?= 50
BENCH_EVAL_MS       ?= 1000
BENCH_EVAL_RULES    ?= 10 100 1000 10000
BENCH_HOLDS         ?= 10000
BENCH_HOLDS_WORKERS ?= 2 1
BENCH_HOLDS_IDLE    ?= 10
BENCH_HOLDS_SAMPLES ?= 200

BENCH_HOLDS_ENV = BENCH_HOLDS=$(BENCH_HOLDS) BENCH_HOLDS_WORKERS="$(BENCH_HOLDS_WORKERS)" \
                  BENCH_HOLDS_IDLE=$(BENCH_HOLDS_IDLE) BENCH_HOLDS_SAMPLES=$(BENCH_HOLDS_SAMPLES)

.PHONY: bench bench-holds deps-bench

# wrk for the load, taskset (util-linux) to pin it and nginx to their CPUs,
# perl for bench/run.pl (nginx comes with the build dependencies)
deps-bench: deps
	@scripts/deps.sh wrk util-linux perl

bench: deps-bench all
	@AGENTGOV_BUILD=$(CURDIR)/$(BUILD) NGINX_BIN=$(NGINX_BIN) \
	    BENCH_SECONDS=$(BENCH_SECONDS) BENCH_WARMUP=$(BENCH_WARMUP) \
	    BENCH_CONNECTIONS=$(BENCH_CONNECTIONS) BENCH_EVAL_MS=$(BENCH_EVAL_MS) \
	    BENCH_EVAL_RULES="$(BENCH_EVAL_RULES)" $(BENCH_HOLDS_ENV) \
	    perl bench/run.pl

# the holds alone (bench/holds.pl needs nginx and perl only)
bench-holds: deps all
	@AGENTGOV_BUILD=$(CURDIR)/$(BUILD) NGINX_BIN=$(NGINX_BIN) $(BENCH_HOLDS_ENV) \
	    perl bench/holds.pl
