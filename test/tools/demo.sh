#!/bin/sh
# demo.sh MODEL OUTDIR - round-trips the sample photographs through a VAE.
# With no MODEL, says so and generates a small random-weight model, so the
# whole pipeline still runs end to end (its pictures are noise, not photos).
set -eu
model=${1:-}
out=${2:-build/demo}
bin=build/bin
mkdir -p "$out"
if [ -z "$model" ]; then
    echo "demo: no MODEL given. For real results download sdxl_vae.safetensors from"
    echo "demo:   https://huggingface.co/stabilityai/sdxl-vae and run: make demo MODEL=path/to/sdxl_vae.safetensors"
    echo "demo: using a small RANDOM-WEIGHT model instead: the outputs show the pipeline works, not what the VAE sees."
    model="$out/random-vae"
    "$bin/gen_vae" --channels 32,32,64,64 --layers 1 --groups 32 --seed 7 "$model" >/dev/null
fi
images=$(ls examples/images/*.png)
"$bin/sdxlvae" info -m "$model"
n=0
for img in $images; do
    name=$(basename "$img" .png)
    echo "demo: $img -> $out/$name.roundtrip.png"
    if "$bin/sdxlvae" roundtrip -f --crop -m "$model" "$img" "$out/$name.roundtrip.png"; then
        n=$((n + 1))
    fi
done
[ "$n" -gt 0 ] || { echo "demo: no image could be round-tripped" >&2; exit 1; }
echo "demo: $n images written to $out/"
