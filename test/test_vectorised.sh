#!/usr/bin/env bash
# test_vectorised.sh - the kernels written as plain loops (the headers
# lib/kernels/f32-{groupnorm-silu,softmax,winograd-f4x3-tiles}.h, which each
# ISA's file includes) really are vector code.
#
# A loop the compiler leaves scalar still gives the right bits, so no value
# test can see it; it is only 4-16x slower. That happened: until 0.2.0 gcc
# kept GroupNorm+SiLU and softmax scalar on AVX2 and NEON (exp's selects were
# not if-converted under -ftrapping-math), a quarter of an AVX2 decode.
#
# Every loop whose `for` line ends in the marker  /* [vec] */  must be
# reported vectorised by gcc's -fopt-info-vec for each SIMD file that
# includes its header: the x86-64 ones always, the NEON ones when
# aarch64-linux-gnu-gcc is installed. Run by `make check`; runs by hand too.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root" || exit 1

CC_X86=${VEC_CC:-gcc}
CC_NEON=${VEC_NEON_CC:-aarch64-linux-gnu-gcc}
CFLAGS=(-std=c11 -D_GNU_SOURCE -DSDXLVAE_BUILD -O2 -Iinclude -Ilib)

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }

if ! command -v "$CC_X86" >/dev/null 2>&1; then
    echo "ok - vectorisation # SKIP no $CC_X86"
    echo "vectorised: 0 passed, 0 failed"
    exit 0
fi

# flags_for FILE: the ISA flags the Makefile gives FILE (by its suffix), or
# nothing when it is not a SIMD file this script checks.
flags_for() {
    case $1 in
    *-avx2-fma.c | *-avx2.c) echo "$CC_X86 -mavx2 -mfma -mf16c" ;;
    *-avx512.c) echo "$CC_X86 -mavx512f -mavx512vl -mfma" ;;
    *-neon.c) command -v "$CC_NEON" >/dev/null 2>&1 && echo "$CC_NEON" ;;
    esac
}

for hdr in lib/kernels/f32-*.h; do
    lines=$(grep -n '/\* \[vec\] \*/' "$hdr" | cut -d: -f1)
    [ -n "$lines" ] || continue
    base=$(basename "$hdr")
    for src in $(grep -l "#include \"kernels/$base\"" lib/kernels/*.c); do
        cmd=$(flags_for "$src")
        [ -n "$cmd" ] || continue
        # -fopt-info-vec-optimized names each vectorised loop by the line of
        # its `for`, in the header it came from.
        report=$($cmd "${CFLAGS[@]}" -fopt-info-vec-optimized -c "$src" -o /dev/null 2>&1)
        if [ $? -ne 0 ]; then
            nok "$src: does not compile: $report"
            continue
        fi
        missing=""
        for l in $lines; do
            grep -q "$base:$l:[0-9]*: optimized: loop vectorized" <<<"$report" ||
                missing="$missing $l"
        done
        if [ -z "$missing" ]; then
            ok "$src: every [vec] loop of $base vectorised"
        else
            nok "$src: $base line(s)$missing left scalar"
        fi
    done
done

echo "vectorised: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
