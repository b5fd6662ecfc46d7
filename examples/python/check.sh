#!/usr/bin/env bash
# examples/python/check.sh - run by examples/run-examples.sh (see there for
# the environment). Runs the ctypes binding against the installed library:
# info, then --check on two fixtures (decode and encode within 1e-4 of the
# reference, monotonic progress, a cancelled call), then an encode and decode
# through files compared with the tool's.
set -eu
w=$SDXLVAE_WORK
py=$(command -v python3 || true)
if [ -z "$py" ]; then
    echo "no python3"
    exit 77
fi
fx=$SDXLVAE_FIXTURES
"$py" sdxlvae_ctypes.py info "$fx/micro-ldm-f32"
"$py" sdxlvae_ctypes.py --check "$fx/micro-ldm-f32" "$fx/micro-flux-bf16"

m=$fx/micro-diffusers-f16 # a batch of 2
same() { # same A.npy B.npy: equal shapes and values
    "$py" -c 'import sys, sdxlvae_ctypes as s; sys.exit(s.npy_read(sys.argv[1]) != s.npy_read(sys.argv[2]))' "$1" "$2"
}
"$py" sdxlvae_ctypes.py encode "$m" "$m/image.npy" "$w/lat.npy"
"$SDXLVAE_CLI" encode -m "$m" "$m/image.npy" "$w/lat-cli.npy"
same "$w/lat.npy" "$w/lat-cli.npy" || { echo "encode: differs from sdxlvae encode"; exit 1; }
"$py" sdxlvae_ctypes.py decode "$m" "$w/lat.npy" "$w/img.npy"
"$SDXLVAE_CLI" decode -m "$m" "$w/lat.npy" "$w/img-cli.npy"
same "$w/img.npy" "$w/img-cli.npy" || { echo "decode: differs from sdxlvae decode"; exit 1; }
echo "encode and decode of a batch of 2: the same values as the sdxlvae tool's"
