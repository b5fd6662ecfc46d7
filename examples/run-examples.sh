#!/usr/bin/env bash
# run-examples.sh - builds every client in examples/*/ against an *installed*
# libsdxlvae, found through pkg-config, and runs it on test/fixtures.
#
# `make examples-check` installs the library into a temporary DESTDIR
# (PREFIX=/usr) and runs this script with SDXLVAE_STAGE set to it. Run alone,
# the script does that install itself (with `make`). EXAMPLES="c python"
# runs only those clients.
#
# A client is a folder with a check.sh (examples/c/check.sh, ...). Each one
# runs with its folder as the working directory and this environment:
#   SDXLVAE_STAGE         the DESTDIR; the library is in $SDXLVAE_STAGE/usr/lib
#   PKG_CONFIG_PATH       $SDXLVAE_STAGE/usr/lib/pkgconfig, and
#   PKG_CONFIG_SYSROOT_DIR  $SDXLVAE_STAGE: `pkg-config sdxlvae` gives its paths
#   LD_LIBRARY_PATH       $SDXLVAE_STAGE/usr/lib, to run what was built
#   SDXLVAE_CLI           the installed sdxlvae tool
#   SDXLVAE_FIXTURES      test/fixtures (absolute)
#   SDXLVAE_WORK          an empty directory of its own, removed afterwards
#   CC, CXX               the compilers (default cc, c++)
# It prints what its client printed, and exits 0 when the output is right,
# 77 when the client cannot be built here (a compiler or tool is missing;
# it says which), anything else on failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/sdxlvae-examples.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

stage=${SDXLVAE_STAGE:-}
if [ -z "$stage" ]; then
    stage=$work/stage
    echo "== make install PREFIX=/usr DESTDIR=$stage"
    if ! make -C "$root" --no-print-directory install PREFIX=/usr DESTDIR="$stage" >"$work/install.log" 2>&1; then
        tail -n 20 "$work/install.log"
        echo "examples: make install failed"
        exit 1
    fi
fi
if [ ! -f "$stage/usr/lib/pkgconfig/sdxlvae.pc" ]; then
    echo "examples: no sdxlvae.pc under $stage/usr/lib/pkgconfig"
    exit 1
fi

export SDXLVAE_STAGE=$stage
export PKG_CONFIG_PATH=$stage/usr/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_SYSROOT_DIR=$stage
export LD_LIBRARY_PATH=$stage/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SDXLVAE_CLI=$stage/usr/bin/sdxlvae
export SDXLVAE_FIXTURES=${SDXLVAE_FIXTURES:-$root/test/fixtures}
export CC=${CC:-cc} CXX=${CXX:-c++}
echo "== CC=$CC CXX=$CXX; pkg-config --cflags --libs sdxlvae: $(pkg-config --cflags --libs sdxlvae 2>&1)"

pass=0 fail=0 skip=0 failed="" skipped=""
for check in "$here"/*/check.sh; do
    [ -f "$check" ] || continue
    dir=$(dirname "$check")
    name=$(basename "$dir")
    if [ -n "${EXAMPLES:-}" ] && ! printf ' %s ' "$EXAMPLES" | grep -q " $name "; then
        continue
    fi
    echo "== examples/$name"
    mkdir -p "$work/$name"
    (cd "$dir" && SDXLVAE_WORK="$work/$name" bash "$check")
    rc=$?
    case $rc in
        0) pass=$((pass + 1)); echo "ok - examples/$name" ;;
        77) skip=$((skip + 1)); skipped="$skipped $name"; echo "skip - examples/$name" ;;
        *) fail=$((fail + 1)); failed="$failed $name"; echo "not ok - examples/$name (exit $rc)" ;;
    esac
done
echo "examples: $pass passed, $fail failed, $skip skipped${skipped:+ (skipped:$skipped)}"
[ "$fail" -eq 0 ] || { echo "FAILED:$failed"; exit 1; }
