#!/bin/sh
# Builds the Go binding (a cgo package) against an installed libsdxlvae and
# runs its tests; the last line says PASS, FAIL or SKIP.
#
# Run by examples/run-examples.sh (make examples-check), which installs the
# library into a temporary prefix and sets PKG_CONFIG_PATH,
# PKG_CONFIG_SYSROOT_DIR and LD_LIBRARY_PATH. Run on its own, with
# PKG_CONFIG_PATH unset, it makes that install itself from this tree.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
me=examples/go

say() { printf '%s: %s\n' "$me" "$*"; }

# run-examples.sh gives each client an empty SDXLVAE_WORK and removes it.
if [ -n "${SDXLVAE_WORK:-}" ]; then
    work=$SDXLVAE_WORK
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/sdxlvae-go-check.XXXXXX")
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

if ! command -v go >/dev/null 2>&1; then
    apt_install go golang-go || true
fi
if ! command -v go >/dev/null 2>&1; then
    skip "go is not installed and could not be installed"
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
# Nothing may come from the network (there are no dependencies anyway).
# The build cache is a fresh one in $work: Go's cache key does not include
# what pkg-config printed (golang/go#24544), so a cached cgo package would
# keep the -L of an earlier, since removed, staging prefix and fail to link.
# A cold build takes a few seconds.
export GOTOOLCHAIN=local GOPROXY=off
export CGO_ENABLED=1
export GOCACHE="$work/go-cache" GOPATH="$work/gopath"
export GOMODCACHE="$GOPATH/pkg/mod"
: "${SDXLVAE_FIXTURES:=$root/test/fixtures}"
export SDXLVAE_FIXTURES
cd "$here"

status=0
{ go vet ./... && go test -p 1 -count=1 -v ./...; } >"$work/test.log" 2>&1 || status=$?
cat "$work/test.log"
unformatted=$(gofmt -l . 2>/dev/null || true)
[ -z "$unformatted" ] || say "warning: not gofmt-formatted: $unformatted"

passed=$(grep -c '^--- PASS' "$work/test.log" || true)
failed=$(grep -c '^--- FAIL' "$work/test.log" || true)
versions="$(go version | cut -d' ' -f3), libsdxlvae $(pkg-config --modversion sdxlvae)"
if [ "$status" = 0 ]; then
    say "PASS ($passed tests passed; $versions)"
else
    say "FAIL ($passed passed, $failed failed, exit status $status; $versions)"
    exit 1
fi
