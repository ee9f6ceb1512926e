# Fuzz targets (libFuzzer) and their corpus replay; included by the Makefile.
#
#   make fuzz                  build every target with clang and run each for
#                              FUZZ_SECONDS (default 30); fails on any crash
#   make fuzz FUZZ_RUN="jwt"   run only some targets
#   make fuzz-replay           replay every seed corpus (no clang needed)
#   make fuzz-seeds            rewrite the generated seeds (signed tokens, JWKS,
#                              certificates) from the fixed fuzz keys
#
# A target is t/fuzz/fuzz_NAME.c with its seeds in t/fuzz/corpus/NAME/ and an
# optional dictionary t/fuzz/NAME.dict. Runs write new inputs under
# $(BUILD)/fuzz/runs/NAME (the seed directory is only read) and crashes under
# $(BUILD)/fuzz/artifacts/NAME.
#
# FUZZ_REPLAY_BIN are gcc builds of each target with t/fuzz/replay.c: one
# cmocka-style test per corpus file, for t/run-all (see `test:` below).

FUZZ_TARGETS    := json json_diff policy policy_index call jwt jwt_claims jwks \
                   spiffe spiffe_id match task task_plan audit_read audit \
                   audit_tail secrets mcp mcp_filter
FUZZ_RUN        ?= $(FUZZ_TARGETS)
FUZZ_SECONDS    ?= 30
FUZZ_CC         ?= clang
FUZZ_DIR        := $(BUILD)/fuzz
FUZZ_HDR        := t/fuzz/fuzz.h
FUZZ_COMMON     := t/fuzz/fuzz_common.c
FUZZ_REPLAY_BIN := $(patsubst %,$(FUZZ_DIR)/replay_%,$(FUZZ_TARGETS))
FUZZ_BIN        := $(patsubst %,$(FUZZ_DIR)/clang/fuzz_%,$(FUZZ_TARGETS))

# -max_len per target: what the parser reads in practice, with room to spare
FUZZ_MAXLEN_json         := 4096
FUZZ_MAXLEN_json_diff    := 4096
FUZZ_MAXLEN_policy       := 8192
FUZZ_MAXLEN_policy_index := 2048
FUZZ_MAXLEN_call         := 4096
FUZZ_MAXLEN_jwt          := 8200
FUZZ_MAXLEN_jwt_claims   := 4096
FUZZ_MAXLEN_jwks         := 8192
FUZZ_MAXLEN_spiffe       := 8192
FUZZ_MAXLEN_spiffe_id    := 2200
FUZZ_MAXLEN_match        := 2048
FUZZ_MAXLEN_task         := 4096
FUZZ_MAXLEN_task_plan    := 2048
FUZZ_MAXLEN_audit_read   := 8192
FUZZ_MAXLEN_audit        := 8192
FUZZ_MAXLEN_audit_tail   := 4096
FUZZ_MAXLEN_secrets      := 4096
FUZZ_MAXLEN_mcp          := 4096
FUZZ_MAXLEN_mcp_filter   := 4096

# more libFuzzer options per target: the slow structured ones would
# otherwise spend their run on short inputs (-len_control)
FUZZ_OPTS_policy_index   := -len_control=0
FUZZ_OPTS_spiffe_id      := -len_control=0

# for the case statement in the fuzz recipe
ag_rp := )
FUZZ_MAXLEN_CASE := $(foreach t,$(FUZZ_TARGETS),$(t)$(ag_rp) maxlen=$(FUZZ_MAXLEN_$(t)); opts="$(FUZZ_OPTS_$(t))";;)

FUZZ_CFLAGS := -std=c99 -D_DEFAULT_SOURCE -D_GNU_SOURCE -O1 -g \
               -fno-omit-frame-pointer -Wall -Wextra -Werror \
               -fsanitize=address,undefined -fno-sanitize-recover=all \
               -Isrc/core -It/fuzz

.PHONY: fuzz fuzz-deps fuzz-build fuzz-replay fuzz-seeds

# make test builds the replay binaries; the Makefile's test recipe runs them
test: $(FUZZ_REPLAY_BIN)


# --- replay: gcc, the same flags and objects as the unit suites ---------------------

$(FUZZ_DIR)/replay_%: t/fuzz/fuzz_%.c t/fuzz/replay.c $(FUZZ_COMMON) $(FUZZ_HDR) \
                      $(BUILD)/libagentgov.a $(CORE_HDR) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_AG) -It/fuzz -DAG_FUZZ_CORPUS='"$(CURDIR)/t/fuzz/corpus/$*"' \
	    -o $@ $< t/fuzz/replay.c $(FUZZ_COMMON) $(BUILD)/libagentgov.a $(LIBS_AG)

# The same as in make test, less verbose: one summary line per target.
fuzz-replay: $(FUZZ_REPLAY_BIN)
	@passed=0; failed=0; \
	for b in $(FUZZ_REPLAY_BIN); do \
	    out=$$($$b 2>&1); rc=$$?; \
	    p=$$(echo "$$out" | sed -n 's/.*\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1); \
	    f=$$(echo "$$out" | sed -n 's/.*\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1); \
	    p=$${p:-0}; f=$${f:-0}; \
	    if [ $$rc -ne 0 ] && [ $$f -eq 0 ]; then f=1; fi; \
	    echo "$$(basename $$b): $$p passed, $$f failed"; \
	    if [ $$f -ne 0 ]; then echo "$$out" | grep -v -e '^\[ RUN' -e '^\[       OK'; fi; \
	    passed=$$((passed + p)); failed=$$((failed + f)); \
	done; \
	echo "$$passed passed, $$failed failed"; [ $$failed -eq 0 ]


# --- libFuzzer: clang, the engine instrumented too ---------------------------------------

fuzz-deps: deps
	@scripts/deps.sh clang libclang-rt-14-dev

$(FUZZ_DIR)/clang/core/%.o: src/core/%.c $(CORE_HDR) | fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/clang/libagentgov.a: $(patsubst src/core/%.c,$(FUZZ_DIR)/clang/core/%.o,$(CORE_SRC))
	rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/clang/fuzz_%: t/fuzz/fuzz_%.c $(FUZZ_COMMON) $(FUZZ_HDR) \
                          $(FUZZ_DIR)/clang/libagentgov.a $(CORE_HDR) | fuzz-deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_COMMON) \
	    $(FUZZ_DIR)/clang/libagentgov.a -lssl -lcrypto -lpcre2-8 -ljansson

fuzz-build: $(FUZZ_BIN)

# Every target runs, then the run fails if any of them crashed, leaked, timed
# out or tripped an oracle. exec/s and coverage are in the summary.
fuzz: $(patsubst %,$(FUZZ_DIR)/clang/fuzz_%,$(FUZZ_RUN))
	@failed=""; \
	for t in $(FUZZ_RUN); do \
	    mkdir -p $(FUZZ_DIR)/runs/$$t $(FUZZ_DIR)/artifacts/$$t; \
	    dict=""; [ -f t/fuzz/$$t.dict ] && dict="-dict=t/fuzz/$$t.dict"; \
	    case $$t in $(FUZZ_MAXLEN_CASE) *$(ag_rp) maxlen=4096; opts="";; esac; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS)s (-max_len=$$maxlen $$dict $$opts)"; \
	    ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} \
	    UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1} \
	    $(FUZZ_DIR)/clang/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -max_len=$$maxlen $$dict $$opts -timeout=10 -rss_limit_mb=2048 \
	        -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t/ \
	        $(FUZZ_DIR)/runs/$$t t/fuzz/corpus/$$t \
	        > $(FUZZ_DIR)/$$t.log 2>&1; \
	    rc=$$?; \
	    grep -E '^(Done|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb))|(INITED|DONE) +cov:' \
	        $(FUZZ_DIR)/$$t.log | sed 's/^/    /'; \
	    if [ $$rc -ne 0 ]; then \
	        failed="$$failed $$t"; \
	        grep -E -A30 '^==[0-9]+==ERROR|^SUMMARY|oracle failed|deadly signal|^\S+\.c:[0-9]+:' \
	            $(FUZZ_DIR)/$$t.log | head -60; \
	        echo "fuzz: $$t FAILED (rc $$rc), log $(FUZZ_DIR)/$$t.log, input in $(FUZZ_DIR)/artifacts/$$t/"; \
	    fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi; \
	echo "fuzz: all targets ran $(FUZZ_SECONDS)s without a finding"


# --- generated seeds ------------------------------------------------------------------------

$(FUZZ_DIR)/gen_seeds: t/fuzz/gen_seeds.c $(FUZZ_COMMON) $(FUZZ_HDR) \
                       $(BUILD)/libagentgov.a $(CORE_HDR) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_AG) -It/fuzz -o $@ $< $(FUZZ_COMMON) $(BUILD)/libagentgov.a \
	    $(LIBS_AG)

fuzz-seeds: $(FUZZ_DIR)/gen_seeds
	$(FUZZ_DIR)/gen_seeds t/fuzz/corpus
