#!/usr/bin/env bash
# examples/c/check.sh - run by examples/run-examples.sh (see there for the
# environment). Builds roundtrip.c against the installed library twice,
# with `pkg-config --libs sdxlvae` (shared) and `pkg-config --static --libs
# sdxlvae` (libsdxlvae.a, whose dependencies come from Requires.private and
# Libs.private), and checks that both print the PSNR `sdxlvae roundtrip`
# prints on the same PNG and write the same image.
set -eu
fx=$SDXLVAE_FIXTURES/micro-ldm-f32
w=$SDXLVAE_WORK
cflags="-std=c11 -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2"
zlib=$(pkg-config --libs zlib 2>/dev/null || echo -lz)
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '; }

# The fixture's 24x16 image as a PNG, by the installed tool.
"$SDXLVAE_CLI" convert "$fx/image.npy" "$w/in.png"
want=$("$SDXLVAE_CLI" roundtrip -m "$fx" "$w/in.png" "$w/cli.png")
echo "sdxlvae roundtrip: $want"

# shellcheck disable=SC2046,SC2086
$CC $cflags roundtrip.c ../common/png.c $(pkg-config --cflags --libs sdxlvae) $zlib -lm \
    -o "$w/roundtrip"
echo "shared build needs: $(needed "$w/roundtrip")"
needed "$w/roundtrip" | grep -qw 'libsdxlvae\.so\.1' || { echo "no NEEDED libsdxlvae.so.1"; exit 1; }

static_libs=$(pkg-config --static --libs sdxlvae | sed 's/-lsdxlvae\b/-l:libsdxlvae.a/')
echo "static link flags: $static_libs"
# shellcheck disable=SC2046,SC2086
$CC $cflags roundtrip.c ../common/png.c $(pkg-config --cflags sdxlvae) $static_libs $zlib -lm \
    -o "$w/roundtrip-static"
echo "static build needs: $(needed "$w/roundtrip-static")"
if needed "$w/roundtrip-static" | grep -q libsdxlvae; then echo "the static build needs libsdxlvae"; exit 1; fi

status=0
for b in roundtrip roundtrip-static; do
    out=$("$w/$b" "$fx" "$w/in.png" "$w/$b.png")
    echo "$b: $out"
    if [ "${out##* -> }" != "$want" ]; then
        echo "$b: expected '$want'"
        status=1
    elif ! cmp -s "$w/$b.png" "$w/cli.png"; then
        echo "$b: its PNG differs from sdxlvae roundtrip's"
        status=1
    fi
done
exit $status
