# mk/neon.mk - make check-neon: the kernel tests on aarch64 NEON, from x86-64.
#
# test/test_kernels.c and lib/kernels/ (all they need: no cJSON, no zlib) are
# cross-compiled with Debian's gcc-aarch64-linux-gnu, linked statically
# against Debian's arm64 Check (check:arm64 ships libcheck.a, and
# libsubunit-dev:arm64, which it pulls in, libsubunit.a), and run under
# qemu-user. Nothing else of the build is touched: objects go to
# $(B)/aarch64/. As root, the packages are installed when missing (the arm64
# architecture is added to dpkg first); otherwise the commands are printed.
#
#   make check-neon [NEON_CC=...] [NEON_QEMU=...] [NEON_LIBDIR=...]

NEON_CC ?= aarch64-linux-gnu-gcc
# qemu-user-static's binary when it is there, else qemu-user's.
NEON_QEMU ?= $(or $(shell command -v qemu-aarch64-static 2>/dev/null),qemu-aarch64)
# Where check:arm64 and libsubunit-dev:arm64 put their static libraries, and
# where Check's header is (the same file for every architecture).
NEON_LIBDIR ?= /usr/lib/aarch64-linux-gnu
NEON_CHECK_H ?= /usr/include/check.h
NEON_DEB_PKGS := gcc-aarch64-linux-gnu libc6-dev-arm64-cross check:arm64

NEON_B := $(B)/aarch64
NEON_SRC := test/test_kernels.c \
  $(filter-out %-avx2.c %-avx2-fma.c %-avx512.c %-f16c.c,$(sort $(wildcard lib/kernels/*.c)))
NEON_OBJ := $(NEON_SRC:%.c=$(NEON_B)/obj/%.o)
NEON_BIN := $(NEON_B)/test_kernels
# The project's flags less -fPIC and the switches (SIMD, SANITIZE): a static
# test binary of the NEON kernels. Check's header from its own folder, so
# that the cross compiler never sees the host's /usr/include.
NEON_CFLAGS := -std=c11 -D_GNU_SOURCE -DSDXLVAE_BUILD $(OPT) -g $(WARN) -Wno-format-truncation \
  -pthread -Iinclude -Ilib -Itest -I$(NEON_B)/include

.PHONY: check-neon neon-deps
check-neon: neon-deps
	@$(MAKE) --no-print-directory $(NEON_BIN)
	@echo "== $(NEON_BIN) under $(NEON_QEMU)"; \
	if SDXLVAE_EXE_WRAPPER="$(NEON_QEMU)" $(NEON_QEMU) $(NEON_BIN); then \
	  echo "check-neon: 1 passed, 0 failed"; \
	else echo "check-neon: 0 passed, 1 failed"; echo "FAILED: $(NEON_BIN) (aarch64 NEON kernels)"; exit 1; fi

neon-deps:
	@pkgs="$(NEON_DEB_PKGS)"; \
	command -v $(NEON_QEMU) >/dev/null 2>&1 || pkgs="$$pkgs qemu-user"; \
	if command -v dpkg >/dev/null 2>&1 && ! { [ "$$(dpkg --print-architecture)" = arm64 ] || \
	     dpkg --print-foreign-architectures | grep -qx arm64; }; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "sdxlvae: check-neon needs Debian's arm64 packages. Install them with:" >&2; \
	    echo "    sudo dpkg --add-architecture arm64 && sudo apt-get update" >&2; \
	    echo "    sudo apt-get install -y $$pkgs" >&2; exit 1; \
	  fi; \
	  echo "sdxlvae: adding the arm64 architecture to dpkg (for check:arm64)"; \
	  dpkg --add-architecture arm64; \
	fi; \
	sh test/tools/ensure-deps.sh $$pkgs

$(NEON_B)/include/check.h: $(NEON_CHECK_H)
	@mkdir -p $(dir $@)
	$(Q)cp $(NEON_CHECK_H) $(dir $(NEON_CHECK_H))check_stdint.h $(dir $@)

$(NEON_B)/obj/%.o: %.c $(NEON_B)/include/check.h
	@mkdir -p $(dir $@)
	$(E) "  CC      $< (aarch64)"
	$(Q)$(NEON_CC) $(NEON_CFLAGS) -MMD -MP -c $< -o $@

$(NEON_BIN): $(NEON_OBJ)
	$(E) "  CCLD    $@ (aarch64, static)"
	$(Q)$(NEON_CC) -static -pthread -o $@ $(NEON_OBJ) \
	  $(NEON_LIBDIR)/libcheck.a $(NEON_LIBDIR)/libsubunit.a -lm -lrt

-include $(NEON_OBJ:.o=.d)
