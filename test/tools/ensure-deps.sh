#!/bin/sh
# ensure-deps.sh PKG... - make sure the Debian build dependencies are there.
# As root, installs what is missing; otherwise prints the exact apt-get line
# and fails, so `make demo` and `make check` never half-build.
set -u
missing=""
for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "sdxlvae: missing build dependencies:$missing" >&2
    echo "sdxlvae: this is not a Debian/Ubuntu system: install the equivalents of the packages above." >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    echo "sdxlvae: installing build dependencies:$missing"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq $missing >/dev/null; } || {
        echo "sdxlvae: apt-get install failed for:$missing" >&2
        exit 1
    }
    exit 0
fi
echo "sdxlvae: missing build dependencies. Install them with:" >&2
echo "    sudo apt-get install -y$missing" >&2
exit 1
