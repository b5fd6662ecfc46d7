#!/bin/sh
# Builds the Rust bindings (sdxlvae-sys, sdxlvae) against an installed
# libsdxlvae and runs their tests; the last line says PASS, FAIL or SKIP.
#
# Run by examples/run-examples.sh (make examples-check), which installs the
# library into a temporary prefix and sets PKG_CONFIG_PATH,
# PKG_CONFIG_SYSROOT_DIR and LD_LIBRARY_PATH. Run on its own, with
# PKG_CONFIG_PATH unset, it makes that install itself from this tree.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
me=examples/rust

say() { printf '%s: %s\n' "$me" "$*"; }

# run-examples.sh gives each client an empty SDXLVAE_WORK and removes it.
if [ -n "${SDXLVAE_WORK:-}" ]; then
    work=$SDXLVAE_WORK
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/sdxlvae-rust-check.XXXXXX")
    trap 'rm -rf "$work"' EXIT INT TERM
fi

# A client that cannot be built here is skipped: exit 77 for run-examples.sh
# (its "skipped"), 0 when run on its own.
skip() {
    say "SKIP: $*"
    if [ -n "${SDXLVAE_STAGE:-}" ]; then exit 77; fi
    exit 0
}

# Installs a Debian package when a tool is missing and we may (root, apt).
apt_install() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
    say "$1 not found: installing the Debian package $2"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$2" >"$work/apt.log" 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq "$2"; } >>"$work/apt.log" 2>&1 ||
        { tail -n 5 "$work/apt.log"; return 1; }
}

# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    PATH=${HOME:-/root}/.cargo/bin:$PATH
fi
if ! command -v cargo >/dev/null 2>&1; then
    apt_install cargo cargo || true
fi
if ! command -v cargo >/dev/null 2>&1; then
    skip "cargo is not installed and could not be installed"
fi
command -v pkg-config >/dev/null 2>&1 || apt_install pkg-config pkg-config || {
    say "FAIL: pkg-config is needed to find libsdxlvae"
    exit 1
}

# ---- the library ------------------------------------------------------------
if [ -z "${PKG_CONFIG_PATH:-}" ] || ! pkg-config --exists sdxlvae 2>/dev/null; then
    dest=$work/stage
    say "installing libsdxlvae from $root into $dest"
    if ! make -C "$root" install PREFIX=/usr DESTDIR="$dest" >"$work/install.log" 2>&1; then
        tail -n 30 "$work/install.log"
        say "FAIL: make install failed"
        exit 1
    fi
    export PKG_CONFIG_PATH="$dest/usr/lib/pkgconfig"
    export PKG_CONFIG_SYSROOT_DIR="$dest"
    export LD_LIBRARY_PATH="$dest/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# Say plainly when the .pc file points somewhere the library is not.
# (pkgconf puts the sysroot in front of variables, older pkg-config does not.)
libdir=$(pkg-config --variable=libdir sdxlvae)
case $libdir in
"${PKG_CONFIG_SYSROOT_DIR:-}"/*) ;;
*) libdir=${PKG_CONFIG_SYSROOT_DIR:-}$libdir ;;
esac
if ! ls "$libdir"/libsdxlvae.so* >/dev/null 2>&1; then
    say "FAIL: sdxlvae.pc points at $libdir, but there is no libsdxlvae.so there"
    exit 1
fi

# ---- build and test -----------------------------------------------------------
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
export CARGO_NET_OFFLINE=true
: "${SDXLVAE_FIXTURES:=$root/test/fixtures}"
export SDXLVAE_FIXTURES
cd "$here"

status=0
cargo test --offline --workspace --no-fail-fast >"$work/test.log" 2>&1 || status=$?
cat "$work/test.log"
if [ "$status" = 0 ]; then
    # The example program, on the fixture (cargo test has built it).
    cargo run -q --offline --example info -- "$SDXLVAE_FIXTURES/micro-ldm-f32" \
        >"$work/example.log" 2>&1 || status=$?
    tail -n 1 "$work/example.log"
    [ "$status" = 0 ] || { cat "$work/example.log"; say "the info example failed"; }
fi

passed=$(sed -n 's/^test result: .*[^0-9]\([0-9][0-9]*\) passed.*/\1/p' "$work/test.log" |
    awk '{ n += $1 } END { print n + 0 }')
failed=$(sed -n 's/^test result: .* \([0-9][0-9]*\) failed.*/\1/p' "$work/test.log" |
    awk '{ n += $1 } END { print n + 0 }')
versions="$(cargo --version | cut -d' ' -f1-2), libsdxlvae $(pkg-config --modversion sdxlvae)"
if [ "$status" = 0 ]; then
    say "PASS ($passed tests passed; $versions)"
else
    say "FAIL ($passed passed, $failed failed, exit status $status; $versions)"
    exit 1
fi
