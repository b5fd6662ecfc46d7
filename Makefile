# libsdxlvae - build, test, install.
#
#   make                 library, CLI and tools into build/
#   make check           every test (parity, ops, kernels, loader, PNG, CLI)
#   make check-abi       exported symbols, SONAME, abidiff against the baseline
#   make check-neon      the kernel tests cross-built for aarch64 (NEON), run
#                        under qemu-user (mk/neon.mk)
#   make examples-check  install into a temporary prefix, build and run the
#                        clients in examples/*/ against it (pkg-config)
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

# The .pc file holds the install paths, so `make install` writes it again
# with the PREFIX/LIBDIR of that command (a plain `make` has the defaults).
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
  -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/sdxlvae.pc.in
$(B)/sdxlvae.pc: pkgconfig/sdxlvae.pc.in $(HDR)
	@mkdir -p $(dir $@)
	$(Q)$(PC_SED) > $@

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

# The kernel tests on aarch64 NEON under qemu-user: make check-neon.
include mk/neon.mk

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
# decode against this machine's FMA peak and, with --peer and --ort (the
# default), the PyTorch model of test/reference and ONNX Runtime
# (onnxruntime-node, the same model exported by test/bench/export_onnx.py) on
# the same weights. Not part of `make check` nor of CI, which need no npm;
# docs/performance.md says what it prints. The FMA-peak loops get their ISA's
# flags and are only built (and called) on x86-64.
#   make bench-ort-deps   npm-installs onnxruntime-node $(ORT_NODE_VERSION) into
#                         $(B)/ort/ (make bench does it when --ort is asked for)
#   make bench-ort-check  ONNX Runtime, PyTorch and libsdxlvae on one small model:
#                         do they compute the same thing? (test/bench/ort_check.py)
BENCH_ARGS ?= --peer --ort
BENCH_PEER_PKGS := python3-torch libopenblas0-pthread
ORT_NODE_VERSION := 1.30.0
BENCH_OBJ :=
ifeq ($(ISA_X86),1)
BENCH_OBJ := $(B)/obj/test/bench/fma-peak-avx2.o $(B)/obj/test/bench/fma-peak-avx512.o
endif
$(B)/obj/test/bench/fma-peak-avx2.o: ISA_FLAGS := -mavx2 -mfma
$(B)/obj/test/bench/fma-peak-avx512.o: ISA_FLAGS := -mavx512f

.PHONY: bench bench-ort-deps bench-ort-check
bench: $(B)/bin/bench $(B)/bin/gen_vae
	@case " $(BENCH_ARGS) " in *" --peer "*|*" --ort "*) sh test/tools/ensure-deps.sh $(BENCH_PEER_PKGS) || \
	  echo "bench: the peer's packages are missing; going on (it reports what it lacks)" ;; esac
	@case " $(BENCH_ARGS) " in *" --ort "*) sh test/tools/ensure-ort-node.sh $(B)/ort $(ORT_NODE_VERSION) || \
	  echo "bench: onnxruntime-node is missing; going on (the ONNX Runtime peer will be skipped)" ;; esac
	$(B)/bin/bench $(BENCH_ARGS)

bench-ort-deps:
	@sh test/tools/ensure-ort-node.sh $(B)/ort $(ORT_NODE_VERSION)

bench-ort-check: all bench-ort-deps
	@sh test/tools/ensure-deps.sh $(BENCH_PEER_PKGS)
	/usr/bin/python3 test/bench/ort_check.py --build $(B)

$(B)/bin/bench: test/bench/bench.c test/bench/layers.c test/bench/layers.h test/bench/bench-util.h \
		test/bench/fma-peak.h \
		$(BENCH_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(E) "  CCLD    $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itest/bench $(filter %.c,$^) -o $@ $(BENCH_OBJ) $(LIB_A) \
	  $(SAN_LDFLAGS) $(LDFLAGS) $(LIB_LIBS)

-include $(BENCH_OBJ:.o=.d)

# ---- ABI ---------------------------------------------------------------------------
# make check-abi: the exported symbols are exactly lib/libsdxlvae.map's, the
# SONAME is right, and abidiff finds only additions against the committed ABI
# of the last release (test/abi/README.md says how a release updates it with
# make abi-baseline). Build with gcc (the default): the baseline is gcc's
# debug info.
ABI_BASELINE := test/abi/libsdxlvae.abi
ABIDW_FLAGS := --headers-dir include --drop-private-types --exported-interfaces-only \
  --no-corpus-path --no-comp-dir-path --short-locs --type-id-style hash

.PHONY: check-abi abi-baseline examples-check
check-abi: $(LIB_SO)
	@sh test/tools/ensure-deps.sh abigail-tools
	@sh test/abi/check-abi.sh $(LIB_SO) lib/libsdxlvae.map $(SONAME) $(ABI_BASELINE) \
	  test/abi/suppressions.abignore include

abi-baseline: $(LIB_SO)
	@sh test/tools/ensure-deps.sh abigail-tools
	abidw $(ABIDW_FLAGS) --out-file $(ABI_BASELINE) $(LIB_SO)

# ---- examples ------------------------------------------------------------------------
# make examples-check: make install PREFIX=/usr into a temporary DESTDIR, then
# examples/run-examples.sh builds every examples/*/check.sh's client with
# pkg-config against it and runs it (EXAMPLES="c python" for some only).
examples-check: all
	@stage=$$(mktemp -d "$${TMPDIR:-/tmp}/sdxlvae-stage.XXXXXX") && \
	if $(MAKE) --no-print-directory install PREFIX=/usr DESTDIR="$$stage" >"$$stage.log" 2>&1; then \
	  SDXLVAE_STAGE="$$stage" bash examples/run-examples.sh; rc=$$?; \
	else tail -n 20 "$$stage.log"; echo "examples-check: make install failed"; rc=1; fi; \
	rm -rf "$$stage" "$$stage.log"; exit $$rc

# ---- install -------------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/$(REALNAME)
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsdxlvae.so
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libsdxlvae.a
	install -m 644 $(HDR) $(DESTDIR)$(INCLUDEDIR)/sdxlvae.h
	$(PC_SED) > $(DESTDIR)$(PKGCONFIGDIR)/sdxlvae.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/sdxlvae.pc
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

# ---- fuzzing -------------------------------------------------------------------
# libFuzzer harnesses of test/fuzz/ (docs in test/fuzz/README.md), built with
# clang and ASan+UBSan into $(B)/fuzz/, objects apart from the normal build's.
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="png npy"]  fuzz each harness for
#       FUZZ_SECONDS; new corpus entries go to $(B)/fuzz/corpus/<harness>/,
#       crashes to $(B)/fuzz/artifacts/<harness>/ (copy each into
#       test/fuzz/regressions/<harness>/: kept forever, replayed below)
#   make fuzz-replay  runs every seed and every regression input once
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= safetensors config loader npy png
FUZZ_DIR := $(B)/fuzz
# Largest input each harness is given while fuzzing (bytes): a little above
# its largest seed. The loader's is one tiny model plus its config.json.
FUZZ_MAXLEN_safetensors := 16384
FUZZ_MAXLEN_config := 4096
FUZZ_MAXLEN_loader := 20480
FUZZ_MAXLEN_npy := 8192
FUZZ_MAXLEN_png := 16384
FUZZ_RUN_FLAGS := -rss_limit_mb=2048 -timeout=60 -print_final_stats=1
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -DSDXLVAE_BUILD -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION \
  -O1 -g -Wall -Wextra -Iinclude -Ilib -Iexamples $(CJSON_CFLAGS) $(FUZZ_SAN)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_COMMON_OBJ := $(COMMON_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_LIBS := $(FUZZ_DIR)/libcommon.a $(FUZZ_DIR)/libsdxlvae.a
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
# the per-ISA kernel flags of the normal build, for these objects' paths
$(FUZZ_DIR)/obj/lib/kernels/%-avx2.o $(FUZZ_DIR)/obj/lib/kernels/%-avx2-fma.o: ISA_FLAGS := -mavx2 -mfma -mf16c
$(FUZZ_DIR)/obj/lib/kernels/%-avx512.o: ISA_FLAGS := -mavx512f -mavx512vl -mfma
$(FUZZ_DIR)/obj/lib/kernels/%-f16c.o: ISA_FLAGS := -mavx -mf16c

.PHONY: fuzz fuzz-build fuzz-replay
fuzz-build: $(FUZZ_BIN)

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(E) "  FUZZCC  $<"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(ISA_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/libsdxlvae.a: $(FUZZ_LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^
$(FUZZ_DIR)/libcommon.a: $(FUZZ_COMMON_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_LIBS)
	$(E) "  FUZZLD  $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -fsanitize=fuzzer $< -o $@ $(FUZZ_LIBS) \
	  $(CJSON_LIBS) $(ZLIB_LIBS) -lm -lpthread

# Each harness fuzzes for FUZZ_SECONDS from the seeds, the regressions and
# what earlier runs found; all run even when one fails, then the target fails.
fuzz: $(FUZZ_BIN)
	@failed=""; \
	for spec in $(foreach h,$(FUZZ_TARGETS),$(h):$(FUZZ_MAXLEN_$(h))); do \
	  h=$${spec%%:*}; maxlen=$${spec#*:}; \
	  mkdir -p $(FUZZ_DIR)/corpus/$$h $(FUZZ_DIR)/artifacts/$$h test/fuzz/regressions/$$h; \
	  dict=; if [ -f test/fuzz/$$h.dict ]; then dict=-dict=test/fuzz/$$h.dict; fi; \
	  echo "== fuzz_$$h: $(FUZZ_SECONDS) s, -max_len=$$maxlen"; \
	  $(FUZZ_DIR)/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -max_len=$$maxlen $$dict \
	    $(FUZZ_RUN_FLAGS) -artifact_prefix=$(FUZZ_DIR)/artifacts/$$h/ \
	    $(FUZZ_DIR)/corpus/$$h test/fuzz/corpus/$$h test/fuzz/regressions/$$h \
	    >$(FUZZ_DIR)/fuzz-$$h.log 2>&1; rc=$$?; \
	  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
	    $(FUZZ_DIR)/fuzz-$$h.log | sed 's/^/   /'; \
	  if [ $$rc -ne 0 ]; then \
	    failed="$$failed $$h"; tail -n 60 $(FUZZ_DIR)/fuzz-$$h.log; \
	    echo "fuzz_$$h FAILED (exit $$rc): inputs in $(FUZZ_DIR)/artifacts/$$h/, log $(FUZZ_DIR)/fuzz-$$h.log"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed"; exit 1; fi; \
	echo "fuzz: $(words $(FUZZ_TARGETS)) harnesses ran $(FUZZ_SECONDS) s each without a failure"

# Every seed and every regression input, once each (as individual files:
# libFuzzer then runs exactly these bytes, whatever their size).
fuzz-replay: $(FUZZ_BIN)
	@failed=""; \
	for h in $(FUZZ_TARGETS); do \
	  files=$$(find test/fuzz/corpus/$$h test/fuzz/regressions/$$h -type f \
	           ! -name '.*' ! -name '*.md' 2>/dev/null | LC_ALL=C sort); \
	  n=$$(printf '%s\n' $$files | grep -c .); \
	  if [ $$n -eq 0 ]; then echo "== fuzz_$$h: no inputs"; continue; fi; \
	  if $(FUZZ_DIR)/fuzz_$$h -runs=0 $(FUZZ_RUN_FLAGS) $$files >$(FUZZ_DIR)/replay-$$h.log 2>&1; then \
	    echo "== fuzz_$$h: replayed $$n inputs: ok"; \
	  else \
	    failed="$$failed $$h"; grep -vE '^(Running|Executed) ' $(FUZZ_DIR)/replay-$$h.log | tail -n 40; \
	    echo "== fuzz_$$h: replayed $$n inputs: FAILED (log $(FUZZ_DIR)/replay-$$h.log)"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz-replay: FAILED:$$failed"; exit 1; fi

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_COMMON_OBJ:.o=.d)
