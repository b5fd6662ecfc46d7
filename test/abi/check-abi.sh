#!/bin/sh
# check-abi.sh LIB MAP SONAME BASELINE SUPPRESSIONS HEADERS_DIR
#
# `make check-abi`: the ABI promise of docs/abi.md, checked on a built
# library (libbpf's check_abi, libsodium's committed symbol list, and
# libabigail's abidiff against the last release):
#   1. the exported dynamic symbols are exactly those of the version script,
#      each in the version node the script puts it in;
#   2. the SONAME is SONAME;
#   3. abidiff against BASELINE (abidw of the last release) finds nothing but
#      added functions and structs grown at their end.
# Prints one "ok - ..." / "not ok - ..." line per check; exits 1 on failure.
set -u
if [ $# -ne 6 ]; then
    echo "usage: $0 LIB MAP SONAME BASELINE SUPPRESSIONS HEADERS_DIR" >&2
    exit 2
fi
lib=$1 map=$2 soname=$3 base=$4 suppr=$5 hdrs=$6
fail=0
ok() { echo "ok - $*"; }
nok() { echo "not ok - $*"; fail=1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sdxlvae-abi.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# ---- 1. exported symbols = version script -----------------------------------
# "name@@NODE" for every global of the script: comments removed, then a
# token walk over "NODE { global: a; b; local: *; } PARENT;".
tr '\n' ' ' <"$map" | sed -e 's:/\*\([^*]\|\*\+[^*/]\)*\*\+/: :g' -e 's/[{};]/ & /g' |
    tr -s ' \t' '\n' | awk '
    $0 == "" { next }
    depth == 0 && $0 == "{" { node = last; depth = 1; sect = "global:"; next }
    depth == 0 { last = $0; next }
    $0 == "}" { depth = 0; last = ""; next }
    $0 == "global:" || $0 == "local:" { sect = $0; next }
    $0 == ";" { next }
    sect == "global:" { print $0 "@@" node }' | sort >"$work/map.txt"
# nm -D shows the version after "@@" (default) or "@" (hidden older
# versions); the version nodes themselves are absolute (A) symbols.
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sort >"$work/so.txt"
n=$(wc -l <"$work/so.txt" | tr -d ' ')
if [ ! -s "$work/map.txt" ]; then
    nok "the version script $map lists symbols"
elif cmp -s "$work/map.txt" "$work/so.txt"; then
    ok "exported symbols = $map ($n symbols, $(sed 's/.*@@//' "$work/map.txt" | sort -u | tr '\n' ' ' | sed 's/ $//'))"
else
    nok "exported symbols = $map:"
    diff "$work/map.txt" "$work/so.txt" | sed -n 's/^< /    missing from the library: /p; s/^> /    not in the version script: /p'
fi

# ---- 2. SONAME ------------------------------------------------------------------
got=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
if [ "$got" = "$soname" ]; then ok "SONAME is $soname"; else nok "SONAME is $soname (got '$got')"; fi

# ---- 3. abidiff against the baseline ---------------------------------------------
if ! command -v abidiff >/dev/null 2>&1; then
    nok "abidiff is installed (Debian package abigail-tools)"
    exit 1
fi
# abidiff's exit status is a bit set: 1 error, 2 usage error, 4 ABI change
# (additions count as one), 8 incompatible change. The first run shows the
# whole report; the second, without additions, must find no change at all.
set -- --headers-dir2 "$hdrs" --drop-private-types --suppressions "$suppr" "$base" "$lib"
abidiff "$@" >"$work/report.txt" 2>&1
full=$?
abidiff --no-added-syms "$@" >"$work/changes.txt" 2>&1
strict=$?
if [ "$strict" -ne 0 ] && [ $((strict & 3)) -eq 0 ]; then
    sed 's/^/    /' "$work/changes.txt" # the changes alone, without the additions
else
    sed 's/^/    /' "$work/report.txt"
fi
if [ $((full & 3)) -ne 0 ] || [ $((strict & 3)) -ne 0 ]; then
    nok "abidiff ran (exit $full / $strict)"
elif [ $((full & 8)) -ne 0 ] || [ $((strict & 8)) -ne 0 ]; then
    nok "abidiff $(basename "$base"): INCOMPATIBLE change"
elif [ "$strict" -ne 0 ]; then
    nok "abidiff $(basename "$base"): a change other than additions (above)"
else
    added=$(sed -n 's/.* \([0-9][0-9]*\) Added functions*$/\1/p' "$work/report.txt" | head -n 1)
    # What the suppressions let through: the functions a run without them
    # reports as changed, redundant reports included (every function that
    # reaches a grown struct, directly or through vae_api). Changes abidiff
    # itself deems harmless (an opaque typedef seen as its struct) are
    # filtered out in both runs and not counted.
    : >"$work/none.abignore"
    abidiff --redundant --no-added-syms --headers-dir2 "$hdrs" --drop-private-types \
        --suppressions "$work/none.abignore" "$base" "$lib" >"$work/unsuppressed.txt" 2>&1
    grown=$(sed -n 's/^Functions changes summary: [0-9]* Removed, \([0-9][0-9]*\) Changed.*/\1/p' \
        "$work/unsuppressed.txt" | head -n 1)
    [ "${grown:-0}" -eq 0 ] && grown=
    ok "abidiff $(basename "$base"): compatible (${added:-0} functions added${grown:+; $grown functions take a struct grown at its end, as $(basename "$suppr") allows})"
fi
exit $fail
