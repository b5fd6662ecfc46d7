#!/usr/bin/env bash
# examples/dlopen/check.sh - run by examples/run-examples.sh (see there for
# the environment). Builds dlopen_demo.c with the installed header only (no
# -lsdxlvae), then decodes each fixture's latent.npy through vae_get_api's
# table and compares with its decoded.npy.
set -eu
w=$SDXLVAE_WORK
cflags="-std=c11 -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2"
# shellcheck disable=SC2046,SC2086
$CC $cflags dlopen_demo.c ../common/npy.c $(pkg-config --cflags sdxlvae) -ldl -lm \
    -o "$w/dlopen_demo"
if readelf -d "$w/dlopen_demo" | grep -q 'NEEDED.*libsdxlvae'; then
    echo "dlopen_demo is linked with libsdxlvae"
    exit 1
fi
for f in micro-ldm-f32 micro-flux-bf16; do
    fx=$SDXLVAE_FIXTURES/$f
    "$w/dlopen_demo" "$fx" "$fx/latent.npy" "$fx/decoded.npy"
done
