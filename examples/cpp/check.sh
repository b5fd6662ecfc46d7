#!/usr/bin/env bash
# examples/cpp/check.sh - run by examples/run-examples.sh (see there for the
# environment). Builds roundtrip.cpp against the installed library and checks
# that it prints the PSNR `sdxlvae roundtrip` prints, writes the same image,
# and reports a library error through its exception.
set -eu
fx=$SDXLVAE_FIXTURES/micro-ldm-f32
w=$SDXLVAE_WORK
if ! command -v "$CXX" >/dev/null 2>&1; then
    echo "no C++ compiler ($CXX)"
    exit 77
fi
zlib=$(pkg-config --libs zlib 2>/dev/null || echo -lz)

"$SDXLVAE_CLI" convert "$fx/image.npy" "$w/in.png"
want=$("$SDXLVAE_CLI" roundtrip -m "$fx" "$w/in.png" "$w/cli.png")
echo "sdxlvae roundtrip: $want"

$CC -std=c11 -O2 -c ../common/png.c -o "$w/png.o"
# shellcheck disable=SC2046,SC2086
$CXX -std=c++17 -O2 -Wall -Wextra -Werror roundtrip.cpp "$w/png.o" \
    $(pkg-config --cflags --libs sdxlvae) $zlib -o "$w/roundtrip"

out=$("$w/roundtrip" "$fx" "$w/in.png" "$w/out.png")
echo "roundtrip: $out"
[ "${out##* -> }" = "$want" ] || { echo "expected '$want'"; exit 1; }
cmp -s "$w/out.png" "$w/cli.png" || { echo "its PNG differs from sdxlvae roundtrip's"; exit 1; }

# A missing model: the wrapper's exception carries the status and the message.
if "$w/roundtrip" "$w/no-such-model" "$w/in.png" 2>"$w/err"; then
    echo "a missing model did not fail"
    exit 1
fi
echo "missing model: $(cat "$w/err")"
grep -q 'sdxlvae error -2 (input/output error): .*no-such-model' "$w/err" ||
    { echo "expected 'sdxlvae error -2 (input/output error): ...no-such-model...'"; exit 1; }
