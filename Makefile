# agentgov: nginx module, CLI, tests and demo.
#
#   make            build build/ngx_http_agentgov_module.so and build/agentgov
#   make test       unit + integration suites, last line "N passed, N failed"
#   make test-asan  the same under AddressSanitizer and UndefinedBehaviorSanitizer
#   make run / stop the demo gateway on 127.0.0.1:8080
#
# Everything is built under build/; nothing is written outside the tree.

SHELL      := /bin/bash
BUILD      ?= build
NGX_SRC    ?= /usr/share/nginx/src
NGINX_BIN  ?= /usr/sbin/nginx
CC         ?= gcc

# Debian packages the build, the tests and the demo need.
DEBS_BUILD := nginx nginx-dev libssl-dev libpcre2-dev libjansson-dev zlib1g-dev \
              make gcc pkg-config
DEBS_TEST  := libcmocka-dev perl curl openssl procps valgrind

WARN       := -Wall -Wextra -Werror
SAN        ?=
CFLAGS_AG  := -std=c99 -D_DEFAULT_SOURCE -D_GNU_SOURCE -O2 -g $(WARN) -fPIC $(SAN) -Isrc/core
LIBS_AG    := -lssl -lcrypto -lpcre2-8 -ljansson $(SAN)

CORE_SRC   := $(sort $(wildcard src/core/*.c))
CORE_HDR   := $(sort $(wildcard src/core/*.h))
HTTP_SRC   := ngx_agentgov_module.c $(sort $(wildcard src/http/*.c))
HTTP_HDR   := $(sort $(wildcard src/http/*.h))
CORE_OBJ   := $(patsubst src/core/%.c,$(BUILD)/core/%.o,$(CORE_SRC))
UNIT_SRC   := $(sort $(wildcard t/unit/test_*.c))
UNIT_BIN   := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

MODULE     := $(BUILD)/ngx_http_agentgov_module.so
CLI        := $(BUILD)/agentgov

.PHONY: all deps deps-test test test-asan unit integration run stop clean

all: $(MODULE) $(CLI)

deps:
	@scripts/deps.sh $(DEBS_BUILD)

deps-test: deps deps-node
	@scripts/deps.sh $(DEBS_TEST)

# --- node: the MCP TypeScript SDK for t/mcp (test MCP server and client) ----------
# Installed once into $(BUILD)/node; the stamp records the package list, so a
# repeated make test does not touch the network and a version change reinstalls.
# Debian 12's nodejs is v18, which the SDK supports. @hono/node-server is pinned
# to 1.x because 2.x needs Node 20.
NODE_PKGS  := @modelcontextprotocol/sdk@1.32.2 zod@3.25.76 @hono/node-server@1.19.19
NODE_STAMP := $(BUILD)/node/agentgov.stamp

.PHONY: deps-node
deps-node:
	@command -v node >/dev/null && command -v npm >/dev/null || scripts/deps.sh nodejs npm
	@{ test -d $(BUILD)/node/node_modules/@modelcontextprotocol/sdk && \
	   echo "$(NODE_PKGS)" | cmp -s - $(NODE_STAMP); } || { \
	    echo "agentgov: installing npm packages: $(NODE_PKGS)" && \
	    mkdir -p $(BUILD)/node && \
	    npm install --prefix $(BUILD)/node --cache $(BUILD)/node/.npm-cache --no-audit --no-fund --no-save \
	        --loglevel=error $(NODE_PKGS) && \
	    echo "$(NODE_PKGS)" > $(NODE_STAMP); }
# --- end node -------------------------------------------------------------------------

# --- the engine, for the CLI and the unit tests -------------------------------

$(BUILD)/core/%.o: src/core/%.c $(CORE_HDR) | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_AG) -c -o $@ $<

$(BUILD)/libagentgov.a: $(CORE_OBJ)
	rm -f $@
	ar rcs $@ $^

$(CLI): src/cli/agentgov.c $(BUILD)/libagentgov.a $(CORE_HDR)
	$(CC) $(CFLAGS_AG) -o $@ $< $(BUILD)/libagentgov.a $(LIBS_AG)

# --- the nginx module ------------------------------------------------------------
# nginx's configure writes into the directory it runs from, so it runs in a copy
# of Debian's nginx-dev tree under build/. Its flags are Debian's own (conf_flags),
# so the module matches the binary that loads it.

# configure again only when the set of source files changes
$(BUILD)/srclist: FORCE
	@mkdir -p $(BUILD)
	@echo "$(CORE_SRC) $(HTTP_SRC) $(CORE_HDR) $(HTTP_HDR)" | cmp -s - $@ || \
	    echo "$(CORE_SRC) $(HTTP_SRC) $(CORE_HDR) $(HTTP_HDR)" > $@

FORCE:

$(BUILD)/nginx/Makefile: config $(BUILD)/srclist | deps
	rm -rf $(BUILD)/nginx-src $(BUILD)/nginx
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(BUILD)/nginx-src
	cd $(BUILD)/nginx-src && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt="-g -O2 -fPIC -fstack-protector-strong -D_FORTIFY_SOURCE=2 $(WARN) -Wno-unused-parameter $(SAN)" \
	        --with-ld-opt="-Wl,-z,relro -Wl,-z,now -fPIC $(SAN)" \
	        --add-dynamic-module=$(CURDIR) \
	        --builddir=$(CURDIR)/$(BUILD)/nginx > $(CURDIR)/$(BUILD)/configure.log 2>&1 || \
	    { tail -30 $(CURDIR)/$(BUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/nginx/Makefile $(CORE_SRC) $(CORE_HDR) $(HTTP_SRC) $(HTTP_HDR)
	$(MAKE) -C $(BUILD)/nginx-src -f $(CURDIR)/$(BUILD)/nginx/Makefile modules
	cp $(BUILD)/nginx/ngx_http_agentgov_module.so $@.tmp && mv -f $@.tmp $@

# --- tests ---------------------------------------------------------------------------

$(BUILD)/unit/%: t/unit/%.c $(BUILD)/libagentgov.a $(CORE_HDR) $(wildcard t/unit/*.h) | deps-test
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_AG) -It/unit -o $@ $< $(BUILD)/libagentgov.a $(LIBS_AG) -lcmocka

unit: $(UNIT_BIN)

test: deps-test all $(UNIT_BIN)
	@AGENTGOV_BUILD=$(CURDIR)/$(BUILD) NGINX_BIN=$(NGINX_BIN) \
	    AGENTGOV_SANITIZE=$(AGENTGOV_SANITIZE) t/run-all $(UNIT_BIN) $(FUZZ_REPLAY_BIN)

# Sanitizer build in its own tree, so that it never mixes with the normal objects.
# The module is loaded into Debian's nginx with the sanitizer runtime preloaded
# (t/lib/AgTest.pm); the CLI and the unit suites are instrumented directly.
test-asan:
	$(MAKE) BUILD=build/asan AGENTGOV_SANITIZE=1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" test

# fuzz targets (make fuzz) and their corpus replay in make test; make bench
-include t/fuzz/fuzz.mk
-include bench/bench.mk

# --- the demo ------------------------------------------------------------------------

run: deps-test all
	@AGENTGOV_BUILD=$(CURDIR)/$(BUILD) NGINX_BIN=$(NGINX_BIN) scripts/demo.sh start

stop:
	@AGENTGOV_BUILD=$(CURDIR)/$(BUILD) NGINX_BIN=$(NGINX_BIN) scripts/demo.sh stop

clean:
	rm -rf $(BUILD)
