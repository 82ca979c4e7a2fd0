# kiln: build, test and install.  `make help` lists the targets.

BUILD ?= build
CC ?= cc
PREFIX ?= /usr/local
PKG_CONFIG ?= pkg-config

PKGS := libarchive libcurl openssl jansson zlib libzstd libgit2 libmicrohttpd sqlite3 yaml-0.1
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wformat=2 -Wvla -Wno-format-nonliteral
KILN_CFLAGS := -std=gnu11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -pthread $(WARN) -Iinclude \
	$(PKG_CFLAGS) -DKILN_COMMIT='"$(COMMIT)"' -MMD -MP
KILN_LDFLAGS := -pthread
ifeq ($(SANITIZE),1)
KILN_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
KILN_LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRCS := $(sort $(filter-out builder/main.c,$(wildcard builder/*.c registry/*.c)))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libkiln.a
KILN := $(BUILD)/kiln
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%-replay)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
C_FILES := $(sort $(wildcard include/kiln/*.h builder/*.[ch] registry/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c))

.PHONY: all deps test unit check fuzz format format-check install uninstall clean help bench bench-smoke

all: $(KILN) $(UNIT_BINS) $(FUZZ_REPLAY)

help:
	@echo "make            build $(KILN), the unit tests and the fuzz replay drivers"
	@echo "make deps       install the Debian packages kiln needs (apt-get; idempotent)"
	@echo "make test       build, then run every test (unit, fuzz replay, integration)"
	@echo "make unit       run only the unit tests"
	@echo "make check      the whole test suite under ASan+UBSan (in build/asan)"
	@echo "make fuzz       build libFuzzer targets with clang (build/fuzz-clang)"
	@echo "make bench      benchmarks against peer tools at full sizes (long; see docs/performance.md)"
	@echo "make bench-smoke  every benchmark case on tiny inputs (< 2 min; targets not enforced)"
	@echo "make format     reformat the C sources with clang-format"
	@echo "make format-check  fail if any C source is not formatted"
	@echo "make install    install kiln into \$$(PREFIX)/bin, its buildpacks and stacks into \$$(PREFIX)/share/kiln"
	@echo "make clean      remove build/"

deps:
	scripts/install-deps

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(KILN_CFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(KILN): $(BUILD)/builder/main.o $(LIB)
	$(CC) $(KILN_LDFLAGS) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(KILN_CFLAGS) $(CFLAGS) -Itests/unit $(KILN_LDFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS)

# Each fuzz target is also linked with a standalone driver that replays its
# corpus, so ordinary CI runs every kept input.
$(BUILD)/fuzz/%-replay: tests/fuzz/%.c tests/fuzz/replay.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(KILN_CFLAGS) $(CFLAGS) $(KILN_LDFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(LIB) $(PKG_LIBS)

fuzz:
	$(MAKE) BUILD=build/fuzz-clang CC=clang SANITIZE=1 CFLAGS="-O1 -g -fsanitize=fuzzer-no-link" \
	  build/fuzz-clang/libkiln.a
	@mkdir -p build/fuzz-clang/fuzz
	for f in $(FUZZ_SRCS); do \
	  n=$$(basename $$f .c); \
	  clang $(KILN_CFLAGS) -fsanitize=fuzzer,address,undefined -g -O1 -o build/fuzz-clang/fuzz/$$n $$f \
	    build/fuzz-clang/libkiln.a $(PKG_LIBS) || exit 1; \
	done

test: all
	KILN_BUILD=$(BUILD) tests/run

unit: all
	KILN_BUILD=$(BUILD) tests/run --unit

check:
	KILN_SANITIZED=1 $(MAKE) BUILD=build/asan SANITIZE=1 CFLAGS="-O1 -g" test

format:
	clang-format -i $(C_FILES)

format-check:
	clang-format --dry-run --Werror $(C_FILES)

# The benchmarks install their peer tools (bench/install-deps) and build
# kiln themselves; results go to bench/results/.
bench:
	bench/run

bench-smoke:
	bench/run --smoke

# kiln build finds the buildpacks and stacks beside its binary, in ../share/kiln.
install: $(KILN)
	install -D -m 0755 $(KILN) $(DESTDIR)$(PREFIX)/bin/kiln
	rm -rf $(DESTDIR)$(PREFIX)/share/kiln/buildpacks
	mkdir -p $(DESTDIR)$(PREFIX)/share/kiln
	cp -R buildpacks $(DESTDIR)$(PREFIX)/share/kiln/buildpacks
	rm -rf $(DESTDIR)$(PREFIX)/share/kiln/stacks
	cp -R stacks $(DESTDIR)$(PREFIX)/share/kiln/stacks

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/kiln
	rm -rf $(DESTDIR)$(PREFIX)/share/kiln

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(BUILD)/builder/main.d
