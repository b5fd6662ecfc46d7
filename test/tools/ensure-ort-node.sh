#!/bin/sh
# ensure-ort-node.sh DIR VERSION - onnxruntime-node VERSION in DIR/node_modules,
# for the benchmark's ONNX Runtime peer (build/bin/bench --ort). Not used by
# `make check` or CI: the peer is optional and bench skips it without this.
#
# The npm tarball carries the CPU binaries (bin/napi-v6/linux/x64/
# libonnxruntime.so.1 and the N-API binding), so nothing else is downloaded.
# Its postinstall script only fetches the CUDA execution provider, from
# NuGet, on linux/x64; --ignore-scripts skips it (it would fail offline and
# the benchmark runs on the CPU provider).
set -u
dir=$1
version=$2
pkg="$dir/node_modules/onnxruntime-node/package.json"
have=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg" 2>/dev/null | head -n 1)
if [ "$have" = "$version" ]; then
    exit 0
fi
for tool in node npm; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "bench: $tool is missing, so onnxruntime-node cannot be installed (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
done
echo "bench: installing onnxruntime-node@$version into $dir (npm)"
mkdir -p "$dir" || exit 1
ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$dir" --ignore-scripts --save-exact \
    --no-audit --no-fund --loglevel=error "onnxruntime-node@$version" || {
    echo "bench: npm install onnxruntime-node@$version failed" >&2
    exit 1
}
# load it once: the binding and libonnxruntime.so.1 are there and run here
node -e '
const ort = require(process.argv[1]);
const v = ort.env.versions.node || ort.env.versions.common;
if (v !== process.argv[2]) { console.error(`bench: got onnxruntime-node ${v}, wanted ${process.argv[2]}`); process.exit(1); }
console.log(`bench: onnxruntime-node ${v} loads (backends: ${ort.listSupportedBackends().map((b) => b.name).join(", ")})`);
' "$(cd "$dir" && pwd)/node_modules/onnxruntime-node" "$version"
