# Tollgate build.
#
#   make            build build/tollgate (installs missing Debian packages when run as root)
#   make run        build and start the gateway on 127.0.0.1:8787 (ARGS="--config FILE" to pass flags)
#   make test       unit tests and end-to-end tests, on the normal build and under ASan+UBSan
#   make test-slow  the long suites (1,000 concurrent streams)
#   make bench      benchmarks against nginx (bench/README.md)
#   make fuzz       the fuzz drivers of fuzz/ with libFuzzer, FUZZ_SECONDS each (needs clang)
#
# Dependencies come from Debian packages, found with pkg-config; llhttp is compiled from the C sources that
# Debian ships in node-llhttp.

CC ?= cc
BUILD ?= build
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PKGS = libuv libcurl jansson sqlite3 zlib libsodium

BUILD_DEBS = pkg-config gcc make libc6-dev libuv1-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev zlib1g-dev libsodium-dev node-llhttp
TEST_DEBS = curl clang
BENCH_DEBS = nginx-light wrk

WARN = -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow -Wpointer-arith -Wformat=2
ifeq ($(CI),true)
WARN += -Werror
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
# libcurl is compiled against but not linked: it is opened with dlopen on first use (src/upstream/curlapi.h)
PKG_LIBS = $(shell pkg-config --libs $(filter-out libcurl,$(PKGS)))
CPPFLAGS_ALL = -D_GNU_SOURCE -Iinclude -I$(LLHTTP_INC)
OPT_CFLAGS = -std=c11 -O2 -g $(WARN)
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_CFLAGS = -std=c11 -O1 -g $(WARN) $(SAN_FLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lpthread -lm

LIB_SRCS = $(sort $(wildcard src/*/*.c))
MAIN_SRC = src/main.c
LLHTTP_SRCS = api.c http.c llhttp.c
UNIT_SRCS = $(sort $(wildcard tests/unit/test_*.c))

# variant directories: $(BUILD)/rel and $(BUILD)/asan
REL = $(BUILD)/rel
ASAN = $(BUILD)/asan
# data files compiled into the binary (scripts/embed.sh)
GEN_SRCS = $(BUILD)/gen/pricing_data.c
REL_OBJS = $(patsubst src/%.c,$(REL)/obj/%.o,$(LIB_SRCS)) $(patsubst %.c,$(REL)/obj/llhttp/%.o,$(LLHTTP_SRCS)) \
	$(REL)/obj/gen/pricing_data.o
ASAN_OBJS = $(patsubst src/%.c,$(ASAN)/obj/%.o,$(LIB_SRCS)) $(patsubst %.c,$(ASAN)/obj/llhttp/%.o,$(LLHTTP_SRCS)) \
	$(ASAN)/obj/gen/pricing_data.o
REL_UNITS = $(patsubst tests/unit/%.c,$(REL)/tests/%,$(UNIT_SRCS))
ASAN_UNITS = $(patsubst tests/unit/%.c,$(ASAN)/tests/%,$(UNIT_SRCS))

.PHONY: all run test test-unit test-e2e test-asan test-slow bench fuzz deps deps-test deps-bench clean format

all: $(BUILD)/tollgate

deps:
	@sh scripts/deps.sh $(BUILD_DEBS)

deps-test: deps
	@sh scripts/deps.sh $(TEST_DEBS)
	@command -v node >/dev/null 2>&1 || sh scripts/deps.sh nodejs npm
	@if [ ! -f tests/node_modules/.package-lock.json ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then \
		echo "npm ci (tests/)"; cd tests && npm ci --no-audit --no-fund >/dev/null; fi

deps-bench: deps-test
	@sh scripts/deps.sh $(BENCH_DEBS)

# ---- the gateway

$(BUILD)/tollgate: $(REL)/tollgate
	@cp $< $@.tmp && mv -f $@.tmp $@

$(REL)/tollgate: $(REL)/obj/main.o $(REL_OBJS)
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(ASAN)/tollgate: $(ASAN)/obj/main.o $(ASAN_OBJS)
	$(CC) $(SAN_FLAGS) -o $@ $^ $(LDLIBS_ALL)

$(REL)/obj/%.o: src/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(OPT_CFLAGS) -MMD -MP -c -o $@ $<

$(ASAN)/obj/%.o: src/%.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(SAN_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/gen/pricing_data.c: data/pricing.json scripts/embed.sh
	@mkdir -p $(dir $@)
	sh scripts/embed.sh tg_pricing_json $< > $@.tmp && mv -f $@.tmp $@

$(REL)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -c -o $@ $<

$(ASAN)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -c -o $@ $<

# llhttp's generated C is not ours to warn about. Static pattern rules without the source as a prerequisite: on a
# bare machine the sources only exist once `deps` has installed node-llhttp, after make has looked for its rules
# (-MMD records the source, so a later change to it still rebuilds)
$(filter $(REL)/obj/llhttp/%,$(REL_OBJS)): $(REL)/obj/llhttp/%.o: | deps
	@mkdir -p $(dir $@)
	$(CC) -I$(LLHTTP_INC) -O2 -g -w -MMD -MP -c -o $@ $(LLHTTP_SRC)/$*.c

$(filter $(ASAN)/obj/llhttp/%,$(ASAN_OBJS)): $(ASAN)/obj/llhttp/%.o: | deps
	@mkdir -p $(dir $@)
	$(CC) -I$(LLHTTP_INC) -O1 -g -w $(SAN_FLAGS) -MMD -MP -c -o $@ $(LLHTTP_SRC)/$*.c

# ---- benchmark programs

$(REL)/bench/%: bench/%.c $(REL_OBJS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(OPT_CFLAGS) -o $@ $< $(REL_OBJS) $(LDLIBS_ALL)

# ---- unit tests (each may include the .c it tests; it links against everything but main)

$(REL)/tests/%: tests/unit/%.c tests/unit/unit.h $(REL_OBJS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -Itests/unit $(PKG_CFLAGS) $(OPT_CFLAGS) -o $@ $< $(REL_OBJS) $(LDLIBS_ALL)

$(ASAN)/tests/%: tests/unit/%.c tests/unit/unit.h $(ASAN_OBJS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) -Itests/unit $(PKG_CFLAGS) $(SAN_CFLAGS) -o $@ $< $(ASAN_OBJS) $(LDLIBS_ALL)

# ---- fuzz drivers: replayed over their corpus by `make test` (ASan+UBSan), run with libFuzzer by `make fuzz`

FUZZ_DRIVERS = $(patsubst fuzz/%_fuzz.c,%,$(wildcard fuzz/*_fuzz.c))
FUZZ_REPLAYS = $(patsubst %,$(ASAN)/fuzz/%_replay,$(FUZZ_DRIVERS))
FUZZ_SECONDS ?= 60

$(ASAN)/fuzz/%_replay: fuzz/%_fuzz.c fuzz/replay.c fuzz/fuzz.h $(ASAN_OBJS) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS_ALL) $(PKG_CFLAGS) $(SAN_CFLAGS) -o $@ $< fuzz/replay.c $(ASAN_OBJS) $(LDLIBS_ALL)

$(BUILD)/fuzz/%_fuzz: fuzz/%_fuzz.c fuzz/fuzz.h $(LIB_SRCS) | deps
	@mkdir -p $(dir $@) $(BUILD)/fuzz/corpus-$*
	clang $(CPPFLAGS_ALL) $(PKG_CFLAGS) -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< $(LIB_SRCS) \
		$(addprefix $(LLHTTP_SRC)/,$(LLHTTP_SRCS)) $(BUILD)/gen/pricing_data.c $(LDLIBS_ALL)

# each driver runs FUZZ_SECONDS, new inputs kept in build/fuzz/corpus-NAME (copy the useful ones to fuzz/corpus/NAME)
fuzz: deps-test $(BUILD)/gen/pricing_data.c $(patsubst %,$(BUILD)/fuzz/%_fuzz,$(FUZZ_DRIVERS))
	@for d in $(FUZZ_DRIVERS); do \
		$(BUILD)/fuzz/$${d}_fuzz -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 $(BUILD)/fuzz/corpus-$$d \
			fuzz/corpus/$$d || exit 1; done

# ---- running

run: $(BUILD)/tollgate
	./$(BUILD)/tollgate $(ARGS)

test: deps-test $(BUILD)/tollgate $(ASAN)/tollgate $(REL_UNITS) $(ASAN_UNITS) $(FUZZ_REPLAYS)
	@sh tests/run-unit.sh $(REL_UNITS)
	@ASAN_OPTIONS=detect_leaks=1 sh tests/run-unit.sh $(ASAN_UNITS)
	@for d in $(FUZZ_DRIVERS); do ASAN_OPTIONS=detect_leaks=1 $(ASAN)/fuzz/$${d}_replay fuzz/corpus/$$d || exit 1; done
	@cd tests && TOLLGATE_BIN=../$(BUILD)/tollgate node --test --test-concurrency=1 e2e/ fakes/
	@cd tests && TOLLGATE_BIN=../$(BUILD)/tollgate TOLLGATE_TEST_CURL=1 node --test --test-concurrency=1 e2e/
	@cd tests && TOLLGATE_BIN=../$(ASAN)/tollgate TOLLGATE_SANITIZED=1 node --test --test-concurrency=1 e2e/

test-slow: deps-test $(BUILD)/tollgate
	@cd tests && TOLLGATE_BIN=../$(BUILD)/tollgate node --test --test-concurrency=1 slow/

bench: deps-bench $(BUILD)/tollgate $(REL)/bench/logwriter $(REL)/bench/diskload
	@bash bench/run.sh

clean:
	rm -rf $(BUILD)

format:
	clang-format -i $(wildcard include/tollgate/*.h) $(LIB_SRCS) $(MAIN_SRC) $(UNIT_SRCS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
