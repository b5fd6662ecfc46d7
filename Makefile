# libsdxlvae - build, test, install.
#
#   make                 library, CLI and tools into build/
#   make check           every test (parity, ops, kernels, loader, PNG, CLI)
#   make demo [MODEL=…]  round-trip the sample photographs through a VAE
#   make install PREFIX=/usr/local DESTDIR=
#   make clean
#
# Switches: SIMD=0 builds the scalar kernels only; SANITIZE=address,undefined
# builds everything with those sanitizers; CC=clang works as well as gcc.

# The version lives in the header only (zstd's habit); read it from there.
HDR := include/sdxlvae.h
VMAJ := $(shell sed -n 's/^\#define VAE_VERSION_MAJOR \([0-9]*\)/\1/p' $(HDR))
VMIN := $(shell sed -n 's/^\#define VAE_VERSION_MINOR \([0-9]*\)/\1/p' $(HDR))
VPAT := $(shell sed -n 's/^\#define VAE_VERSION_PATCH \([0-9]*\)/\1/p' $(HDR))
ABI  := $(shell sed -n 's/^\#define VAE_ABI_VERSION \([0-9]*\)/\1/p' $(HDR))
VERSION := $(VMAJ).$(VMIN).$(VPAT)
SONAME  := libsdxlvae.so.$(ABI)
# The file name grows with every release within one ABI: release 0.1.0 is
# libsdxlvae.so.1.1.0, 0.2.3 is .so.1.2.3, 1.0.0 would be .so.1.100.0.
REALNAME := libsdxlvae.so.$(ABI).$(shell echo $$(($(VMAJ) * 100 + $(VMIN)))).$(VPAT)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR ?=

CC ?= cc
# V=1 shows the full commands.
V ?= 0
ifeq ($(V),0)
Q := @
E := @echo
else
Q :=
E := @true
endif
PKG_CONFIG ?= pkg-config
B := build
SIMD ?= 1
SANITIZE ?=

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wvla -Wformat=2
# Names of tensors are built with snprintf into fixed buffers on purpose
# (truncation is checked where it matters); gcc's guesswork warning is off.
ifeq ($(shell $(CC) -Werror -Wno-format-truncation -x c -c /dev/null -o /dev/null 2>/dev/null && echo y),y)
WARN += -Wno-format-truncation
endif
OPT ?= -O2
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -DSDXLVAE_BUILD $(OPT) -g $(WARN) -fPIC -Iinclude -Ilib
ifneq ($(SANITIZE),)
BASE_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_LDFLAGS := -fsanitize=$(SANITIZE)
endif
ifeq ($(SIMD),0)
BASE_CFLAGS += -DVAE_NO_SIMD=1
endif

CJSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcjson 2>/dev/null)
CJSON_LIBS   := $(shell $(PKG_CONFIG) --libs libcjson 2>/dev/null || echo -lcjson)
ZLIB_LIBS    := $(shell $(PKG_CONFIG) --libs zlib 2>/dev/null || echo -lz)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null || echo -lcheck)

CFLAGS ?=
LDFLAGS ?=
ALL_CFLAGS := $(BASE_CFLAGS) $(CJSON_CFLAGS) $(CFLAGS)
LIB_LIBS := $(CJSON_LIBS) -lm -lpthread

# ---- sources ---------------------------------------------------------------
LIB_SRC := $(sort $(wildcard lib/*.c lib/*/*.c))
# Per-ISA kernel files carry their ISA in the name (libwebp's habit) and get
# their own flags; the dispatcher only calls them when cpuid says so.
ARCH := $(shell $(CC) -dumpmachine)
ifneq ($(filter x86_64%,$(ARCH)),)
  ISA_X86 := 1
endif
ifeq ($(SIMD),0)
  LIB_SRC := $(filter-out %-avx2.c %-avx2-fma.c %-avx512.c %-f16c.c %-neon.c,$(LIB_SRC))
else ifeq ($(ISA_X86),1)
  LIB_SRC := $(filter-out %-neon.c,$(LIB_SRC))
else
  LIB_SRC := $(filter-out %-avx2.c %-avx2-fma.c %-avx512.c %-f16c.c,$(LIB_SRC))
endif
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
$(B)/obj/lib/kernels/%-avx2.o $(B)/obj/lib/kernels/%-avx2-fma.o: ISA_FLAGS := -mavx2 -mfma -mf16c
$(B)/obj/lib/kernels/%-avx512.o: ISA_FLAGS := -mavx512f -mavx512vl -mfma
$(B)/obj/lib/kernels/%-f16c.o: ISA_FLAGS := -mavx -mf16c

COMMON_SRC := $(sort $(wildcard examples/common/*.c))
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/obj/%.o)

TEST_SRC := $(sort $(wildcard test/test_*.c))
TEST_BIN := $(TEST_SRC:test/%.c=$(B)/test/%)
TOOL_SRC := $(sort $(wildcard test/tools/*.c))
TOOL_BIN := $(TOOL_SRC:test/tools/%.c=$(B)/bin/%)

LIB_SO := $(B)/lib/$(REALNAME)
LIB_A  := $(B)/lib/libsdxlvae.a
CLI    := $(B)/bin/sdxlvae

.PHONY: all lib cli tools tests check demo deps install uninstall clean
all: lib cli tools

lib: $(LIB_SO) $(B)/lib/$(SONAME) $(B)/lib/libsdxlvae.so $(LIB_A) $(B)/sdxlvae.pc
cli: $(CLI)
tools: $(TOOL_BIN)
tests: $(TEST_BIN)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(E) "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) $(ISA_FLAGS) -fvisibility=hidden -MMD -MP -c $< -o $@

$(LIB_SO): $(LIB_OBJ) lib/libsdxlvae.map
	@mkdir -p $(dir $@)
	$(E) "  LD      $@"
	$(Q)$(CC) -shared -o $@ $(LIB_OBJ) -Wl,-soname,$(SONAME) \
	  -Wl,--version-script=lib/libsdxlvae.map -Wl,--no-undefined -Wl,-z,defs \
	  $(SAN_LDFLAGS) $(LDFLAGS) $(LIB_LIBS)
$(B)/lib/$(SONAME): $(LIB_SO)
	$(Q)ln -sf $(REALNAME) $@
$(B)/lib/libsdxlvae.so: $(B)/lib/$(SONAME)
	$(Q)ln -sf $(SONAME) $@

# The static archive carries every object; the tests use it to reach the
# hidden kernels and ops directly.
$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(E) "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $(LIB_OBJ)

$(B)/libcommon.a: $(COMMON_OBJ)
	$(E) "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $(COMMON_OBJ)

$(B)/sdxlvae.pc: pkgconfig/sdxlvae.pc.in $(HDR)
	@mkdir -p $(dir $@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# The CLI links the shared library, as a user's program would.
$(CLI): examples/sdxlvae.c $(B)/libcommon.a $(B)/lib/libsdxlvae.so
	@mkdir -p $(dir $@)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Iexamples $< -o $@ $(B)/libcommon.a -L$(B)/lib -lsdxlvae \
	  -Wl,-rpath,'$$ORIGIN/../lib' $(SAN_LDFLAGS) $(LDFLAGS) $(ZLIB_LIBS) -lm

$(B)/bin/%: test/tools/%.c $(B)/libcommon.a $(LIB_A)
	@mkdir -p $(dir $@)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Iexamples $< -o $@ $(B)/libcommon.a $(LIB_A) \
	  $(SAN_LDFLAGS) $(LDFLAGS) $(LIB_LIBS) $(ZLIB_LIBS)

$(B)/test/%: test/%.c test/testutil.h $(B)/libcommon.a $(LIB_A)
	@mkdir -p $(dir $@)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Iexamples -Itest $< -o $@ $(B)/libcommon.a $(LIB_A) \
	  $(SAN_LDFLAGS) $(LDFLAGS) $(CHECK_LIBS) $(LIB_LIBS) $(ZLIB_LIBS)

# ---- checks ------------------------------------------------------------------
# Tests find ../shared when it is there and say so when they skip it.
SHARED ?= $(abspath ../shared)
export SDXLVAE_SHARED := $(SHARED)
export SDXLVAE_BIN := $(abspath $(B)/bin)
export SDXLVAE_FIXTURES := $(abspath test/fixtures)
export CK_DEFAULT_TIMEOUT ?= 600

check: deps all tests
	@pass=0; fail=0; failed=""; \
	for t in $(TEST_BIN) $(sort $(wildcard test/test_*.sh)); do \
	  echo "== $$t"; \
	  case $$t in *.sh) bash $$t ;; *) $$t ;; esac; \
	  if [ $$? -eq 0 ]; then pass=$$((pass+1)); else fail=$$((fail+1)); failed="$$failed $$t"; fi; \
	done; \
	echo "check: $$pass passed, $$fail failed"; \
	if [ $$fail -ne 0 ]; then echo "FAILED:$$failed"; exit 1; fi

# Makes sure the build dependencies are there: installs them as root,
# otherwise prints the apt-get line and stops.
DEB_PKGS := build-essential pkg-config libcjson-dev zlib1g-dev check
deps:
	@sh test/tools/ensure-deps.sh $(DEB_PKGS)

# ---- demo ----------------------------------------------------------------------
MODEL ?=
DEMO_OUT := $(B)/demo
demo: deps all
	@sh test/tools/demo.sh "$(MODEL)" "$(DEMO_OUT)"

# ---- benchmark -----------------------------------------------------------------
# make bench [BENCH_ARGS="-n 5 --big -v ..."]: build/bin/bench times encode and
# decode against this machine's FMA peak and, with --peer (the default), the
# PyTorch model of test/reference on the same weights. Not part of `make check`;
# docs/performance.md says what it prints. The FMA-peak loops get their ISA's
# flags and are only built (and called) on x86-64.
BENCH_ARGS ?= --peer
BENCH_PEER_PKGS := python3-torch libopenblas0-pthread
BENCH_OBJ :=
ifeq ($(ISA_X86),1)
BENCH_OBJ := $(B)/obj/test/bench/fma-peak-avx2.o $(B)/obj/test/bench/fma-peak-avx512.o
endif
$(B)/obj/test/bench/fma-peak-avx2.o: ISA_FLAGS := -mavx2 -mfma
$(B)/obj/test/bench/fma-peak-avx512.o: ISA_FLAGS := -mavx512f

.PHONY: bench
bench: $(B)/bin/bench $(B)/bin/gen_vae
	@case " $(BENCH_ARGS) " in *" --peer "*) sh test/tools/ensure-deps.sh $(BENCH_PEER_PKGS) || \
	  echo "bench: the peer's packages are missing; going on (it reports what it lacks)" ;; esac
	$(B)/bin/bench $(BENCH_ARGS)

$(B)/bin/bench: test/bench/bench.c test/bench/fma-peak.h $(BENCH_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itest/bench $< -o $@ $(BENCH_OBJ) $(LIB_A) \
	  $(SAN_LDFLAGS) $(LDFLAGS) $(LIB_LIBS)

-include $(BENCH_OBJ:.o=.d)

# ---- install -------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/$(REALNAME)
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsdxlvae.so
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libsdxlvae.a
	install -m 644 $(HDR) $(DESTDIR)$(INCLUDEDIR)/sdxlvae.h
	install -m 644 $(B)/sdxlvae.pc $(DESTDIR)$(PKGCONFIGDIR)/sdxlvae.pc
	$(CC) $(ALL_CFLAGS) -Iexamples examples/sdxlvae.c -o $(B)/sdxlvae-installed \
	  $(B)/libcommon.a -L$(B)/lib -lsdxlvae $(SAN_LDFLAGS) $(LDFLAGS) $(ZLIB_LIBS) -lm
	install -m 755 $(B)/sdxlvae-installed $(DESTDIR)$(BINDIR)/sdxlvae
	if [ -f docs/sdxlvae.1 ]; then install -m 644 docs/sdxlvae.1 $(DESTDIR)$(MANDIR)/man1/; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/libsdxlvae.so $(DESTDIR)$(LIBDIR)/libsdxlvae.a \
	  $(DESTDIR)$(INCLUDEDIR)/sdxlvae.h $(DESTDIR)$(PKGCONFIGDIR)/sdxlvae.pc \
	  $(DESTDIR)$(BINDIR)/sdxlvae $(DESTDIR)$(MANDIR)/man1/sdxlvae.1

clean:
	rm -rf $(B)

-include $(LIB_OBJ:.o=.d) $(COMMON_OBJ:.o=.d)
