# make bench: plain nginx proxy_pass against the gateway under the same wrk load
# and the same upstream, and policy evaluation time from 10 to 10,000 rules.
# Everything runs on 127.0.0.1 and under $(BUILD)/bench/; the table is printed
# and written to $(BUILD)/bench/report.txt. About 70 s with the defaults.
# See docs/bench.md.
#
#   make bench BENCH_SECONDS=10 BENCH_WARMUP=2 BENCH_CONNECTIONS=50 \
#              BENCH_EVAL_MS=1000 BENCH_EVAL_RULES="10 100 1000 10000"

BENCH_SECONDS     ?= 10
BENCH_WARMUP      ?= 2
BENCH_CONNECTIONS ?= 50
BENCH_EVAL_MS     ?= 1000
BENCH_EVAL_RULES  ?= 10 100 1000 10000

.PHONY: bench deps-bench

# wrk for the load, taskset (util-linux) to pin it and nginx to their CPUs,
# perl for bench/run.pl (nginx comes with the build dependencies)
deps-bench: deps
	@scripts/deps.sh wrk util-linux perl

bench: deps-bench all
	@AGENTGOV_BUILD=$(CURDIR)/$(BUILD) NGINX_BIN=$(NGINX_BIN) \
	    BENCH_SECONDS=$(BENCH_SECONDS) BENCH_WARMUP=$(BENCH_WARMUP) \
	    BENCH_CONNECTIONS=$(BENCH_CONNECTIONS) BENCH_EVAL_MS=$(BENCH_EVAL_MS) \
	    BENCH_EVAL_RULES="$(BENCH_EVAL_RULES)" \
	    perl bench/run.pl
