#!/usr/bin/env bash
# test_cli.sh - checks of the sdxlvae command-line tool.
#
# Run by `make check` from the repository root with SDXLVAE_BIN (build/bin),
# SDXLVAE_FIXTURES (test/fixtures) and SDXLVAE_SHARED (../shared, may be
# missing) in the environment; runs by hand too (defaults below).
# Prints one "ok - ..." / "not ok - ..." line per check, then
# "cli: N passed, M failed"; exits non-zero when a check failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BIN=${SDXLVAE_BIN:-$root/build/bin}
SHARED=${SDXLVAE_SHARED:-$root/../shared}
CLI=$BIN/sdxlvae
HDR=$root/include/sdxlvae.h

work=$(mktemp -d "${TMPDIR:-/tmp}/sdxlvae-cli.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
nok() { fail=$((fail + 1)); echo "not ok - $*"; }
skip() { pass=$((pass + 1)); echo "ok - $1 # SKIP $2"; }
# check DESC WHY: ok when WHY is empty, else not ok with the reasons.
check() { if [ -z "$2" ]; then ok "$1"; else nok "$1 ($2)"; fi; }
# expect DESC MSG CMD...: ok when CMD succeeds, else not ok with MSG.
expect() {
    local desc=$1 msg=$2
    shift 2
    if "$@"; then ok "$desc"; else nok "$desc ($msg)"; fi
}

if [ ! -x "$CLI" ]; then
    nok "the CLI is built at $CLI"
    echo "cli: $pass passed, $fail failed"
    exit 1
fi

have_py=0
if command -v python3 >/dev/null 2>&1; then have_py=1; fi

# ---- a stdlib-only helper for .npy, .png and .safetensors --------------------
PY=$work/t.py
cat >"$PY" <<'EOF'
import array, ast, json, math, struct, sys, zlib

def npy_read(path):
    with open(path, 'rb') as f:
        b = f.read()
    if b[:6] != b'\x93NUMPY':
        sys.exit('%s: not a .npy file' % path)
    if b[6] == 1:
        hl, off = struct.unpack('<H', b[8:10])[0], 10
    else:
        hl, off = struct.unpack('<I', b[8:12])[0], 12
    hdr = ast.literal_eval(b[off:off + hl].decode('latin1'))
    if hdr['descr'] not in ('<f4', '=f4') or hdr['fortran_order']:
        sys.exit('%s: not little-endian float32 C order: %r' % (path, hdr))
    shape = tuple(hdr['shape'])
    n = 1
    for d in shape:
        n *= d
    a = array.array('f')
    a.frombytes(b[off + hl:off + hl + 4 * n])
    if sys.byteorder == 'big':
        a.byteswap()
    if len(a) != n:
        sys.exit('%s: truncated' % path)
    return shape, a

def npy_write(path, shape, vals):
    a = array.array('f', vals)
    if sys.byteorder == 'big':
        a.byteswap()
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (tuple(shape),)
    hdr += ' ' * ((64 - (10 + len(hdr) + 1) % 64) % 64) + '\n'
    with open(path, 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)))
        f.write(hdr.encode('latin1') + a.tobytes())

def chunk(t, data):
    return (struct.pack('>I', len(data)) + t + data +
            struct.pack('>I', zlib.crc32(t + data) & 0xffffffff))

def png_write(path, w, h, rgb):
    raw = b''.join(b'\x00' + rgb[y * w * 3:(y + 1) * w * 3] for y in range(h))
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n')
        f.write(chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)))
        f.write(chunk(b'IDAT', zlib.compress(raw)))
        f.write(chunk(b'IEND', b''))

def png_read8(path):
    """Decodes an 8-bit RGB non-interlaced PNG (what sdxlvae writes),
    checking signature, CRCs and chunk order; exits on anything else."""
    with open(path, 'rb') as f:
        b = f.read()
    if b[:8] != b'\x89PNG\r\n\x1a\n':
        sys.exit('%s: no PNG signature' % path)
    pos, idat, ihdr, end = 8, b'', None, False
    while pos < len(b):
        n, t = struct.unpack('>I4s', b[pos:pos + 8])
        data = b[pos + 8:pos + 8 + n]
        crc = struct.unpack('>I', b[pos + 8 + n:pos + 12 + n])[0]
        if zlib.crc32(t + data) & 0xffffffff != crc:
            sys.exit('%s: bad CRC in %r' % (path, t))
        if ihdr is None and t != b'IHDR':
            sys.exit('%s: first chunk is %r' % (path, t))
        if t == b'IHDR':
            ihdr = struct.unpack('>IIBBBBB', data)
        elif t == b'IDAT':
            idat += data
        elif t == b'IEND':
            end = True
            pos += 12 + n
            break
        pos += 12 + n
    if not end or pos != len(b):
        sys.exit('%s: no IEND at the end' % path)
    w, h, depth, ctype, comp, filt, inter = ihdr
    if (depth, ctype, comp, filt, inter) != (8, 2, 0, 0, 0):
        sys.exit('%s: not 8-bit RGB non-interlaced: %r' % (path, ihdr))
    raw = zlib.decompress(idat)
    stride = w * 3
    if len(raw) != h * (stride + 1):
        sys.exit('%s: image data is %d bytes, expected %d' % (path, len(raw), h * (stride + 1)))
    out = bytearray(h * stride)
    prev = bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            c = prev[i - 3] if i >= 3 else 0
            up = prev[i]
            if ft == 0: p = 0
            elif ft == 1: p = a
            elif ft == 2: p = up
            elif ft == 3: p = (a + up) // 2
            elif ft == 4:
                pa, pb, pc = abs(up - c), abs(a - c), abs(a + up - 2 * c)
                p = a if pa <= pb and pa <= pc else (up if pb <= pc else c)
            else:
                sys.exit('%s: filter type %d' % (path, ft))
            line[i] = (line[i] + p) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    return w, h, bytes(out)

def pattern(n, c, h, w, seed):
    return [0.95 * math.sin(0.37 * x + 0.23 * y * (ch + 1) + 0.7 * seed + 1.3 * i)
            for i in range(n) for ch in range(c) for y in range(h) for x in range(w)]

def cmd_mkarr(path, n, c, h, w, seed):
    n, c, h, w, seed = int(n), int(c), int(h), int(w), int(seed)
    npy_write(path, (n, c, h, w), pattern(n, c, h, w, seed))

def cmd_mkarr3(path, c, h, w, seed):
    c, h, w = int(c), int(h), int(w)
    npy_write(path, (c, h, w), pattern(1, c, h, w, int(seed)))

def cmd_mkpng(path, w, h, ref=None):
    w, h = int(w), int(h)
    rgb = bytes((x * 7 + y * 13 + ch * 85 + (x * y) % 5) % 256
                for y in range(h) for x in range(w) for ch in range(3))
    png_write(path, w, h, rgb)
    if ref:
        vals = [rgb[(y * w + x) * 3 + ch] / 255.0 * 2.0 - 1.0
                for ch in range(3) for y in range(h) for x in range(w)]
        npy_write(ref, (1, 3, h, w), vals)

def cmd_shape(path):
    print(','.join(str(d) for d in npy_read(path)[0]))

def cmd_cmp(a, b, tol):
    sa, va = npy_read(a)
    sb, vb = npy_read(b)
    if sa != sb:
        sys.exit('shape %r != %r' % (sa, sb))
    if not all(math.isfinite(x) for x in va):
        sys.exit('%s has NaN or Inf' % a)
    mb = max((abs(y) for y in vb), default=0.0) or 1.0
    rel = max((abs(x - y) for x, y in zip(va, vb)), default=0.0) / mb
    print('max|a-b|/max|b| = %.3g' % rel)
    sys.exit(0 if rel <= float(tol) else 1)

def cmd_differ(a, b):
    sa, va = npy_read(a)
    sb, vb = npy_read(b)
    sys.exit(0 if sa == sb and any(x != y for x, y in zip(va, vb)) else 1)

def cmd_scaled(raw, scaled, scale, shift):
    sr, vr = npy_read(raw)
    ss, vs = npy_read(scaled)
    scale, shift = float(scale), float(shift)
    if sr != ss:
        sys.exit('shape %r != %r' % (sr, ss))
    m = max(abs(y) for y in vs) or 1.0
    rel = max(abs((x - shift) * scale - y) for x, y in zip(vr, vs)) / m
    differ = max(abs(x - y) for x, y in zip(vr, vs)) / m
    print('scaled vs (raw - %g) * %g: %.3g; raw vs scaled: %.3g' % (shift, scale, rel, differ))
    sys.exit(0 if rel <= 1e-5 and differ > 1e-3 else 1)

def cmd_slice(src, dst, i):
    s, v = npy_read(src)
    i, per = int(i), s[1] * s[2] * s[3]
    npy_write(dst, (1,) + tuple(s[1:]), v[i * per:(i + 1) * per])

def cmd_cat(dst, *srcs):
    shapes, vals = [], array.array('f')
    for p in srcs:
        s, v = npy_read(p)
        shapes.append(s)
        vals.extend(v)
    if any(s[1:] != shapes[0][1:] for s in shapes):
        sys.exit('shapes differ: %r' % shapes)
    npy_write(dst, (sum(s[0] for s in shapes),) + tuple(shapes[0][1:]), vals)

def cmd_ihdr(path, w, h):
    pw, ph, _ = png_read8(path)
    if (pw, ph) != (int(w), int(h)):
        sys.exit('%s is %dx%d, expected %sx%s' % (path, pw, ph, w, h))

def cmd_pngeq(a, b):
    sys.exit(0 if png_read8(a) == png_read8(b) else 1)

SPECIAL = [-3.0, -1.0, -0.999, -0.5, 0.0, 0.001, 0.5, 0.999, 1.0, 1.5,
           float('nan'), float('inf'), float('-inf'), -1.0 + 1 / 255.0,
           1.0 - 1 / 510.0, 1.0 - 1.01 / 510.0]

def cmd_mkspecial(path):
    v = (SPECIAL * 6)[:3 * 4 * 8]
    npy_write(path, (1, 3, 4, 8), v)

def cmd_mapcheck(src, back):
    _, vs = npy_read(src)
    _, vb = npy_read(back)
    for x, y in zip(vs, vb):
        if math.isnan(x):
            q = 0
        else:
            t = (x + 1.0) / 2.0 * 255.0
            q = 0 if t < 0 else 255 if t >= 255 else int(math.floor(t + 0.5))
        want = q / 255.0 * 2.0 - 1.0
        if abs(want - y) > 1e-6:
            sys.exit('%r -> %r, expected %r (level %d)' % (x, y, want, q))

def cmd_range(path, shape, binary=None):
    s, v = npy_read(path)
    if ','.join(map(str, s)) != shape:
        sys.exit('shape %r, expected %s' % (s, shape))
    if not all(-1.0 <= x <= 1.0 for x in v):
        sys.exit('values outside [-1, 1]')
    if binary and not all(x in (-1.0, 1.0) for x in v):
        sys.exit('values other than -1 and 1')
    if binary and (min(v) != -1.0 or max(v) != 1.0):
        sys.exit('range %g..%g, expected -1..1' % (min(v), max(v)))

def cmd_roll(src, dst, dy, dx):
    """dst = src rolled by dy rows and dx columns (numpy.roll on H and W)."""
    s, v = npy_read(src)
    n, c, h, w = s
    dy, dx = int(dy) % h, int(dx) % w
    out = array.array('f', bytes(4 * len(v)))
    for p in range(n * c):
        for y in range(h):
            for x in range(w):
                out[(p * h + (y + dy) % h) * w + (x + dx) % w] = v[(p * h + y) * w + x]
    npy_write(dst, s, out)

def cmd_dtype(src, dst, tensor, dtype):
    """Copies a .safetensors file, with the dtype of one tensor changed in
    the header (to one of the same width: F32 -> I32), so that loading that
    tensor fails while every other one loads."""
    with open(src, 'rb') as f:
        b = bytearray(f.read())
    n = struct.unpack('<Q', b[:8])[0]
    hdr = b[8:8 + n].decode('utf-8')
    k = '"%s":{"dtype":"' % tensor
    i = hdr.index(k) + len(k)
    old = hdr[i:hdr.index('"', i)]
    if len(old) != len(dtype):
        sys.exit('%s is %s, not as wide as %s' % (tensor, old, dtype))
    b[8 + i:8 + i + len(old)] = dtype.encode()
    with open(dst, 'wb') as f:
        f.write(b)

def cmd_params(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        hdr = json.loads(f.read(n))
    total = 0
    for k, v in hdr.items():
        if k == '__metadata__':
            continue
        p = 1
        for d in v['shape']:
            p *= d
        total += p
    print(total)

globals()['cmd_' + sys.argv[1]](*sys.argv[2:])
EOF
py() { python3 "$PY" "$@"; }

# ---- helpers ----------------------------------------------------------------
OUT=$work/stdout
ERR=$work/stderr
rc=0
run() { "$@" >"$OUT" 2>"$ERR"; rc=$?; }
nlines() { wc -l <"$1" | tr -d ' '; }
firsterr() { head -n 1 "$ERR"; }

# Leftover temporaries of the atomic write in a directory.
tmp_left() { find "$1" -maxdepth 1 -name '*.tmp.*' 2>/dev/null | head -n 1; }

# expect_fail DESC CODE NEEDLE OUTFILE -- CMD...: CMD exits CODE, prints
# exactly one stderr line "sdxlvae: ..." containing NEEDLE (when not empty),
# nothing on stdout, and OUTFILE (when not empty) does not exist afterwards,
# nor any temporary beside it.
expect_fail() {
    local desc=$1 code=$2 needle=$3 outf=$4 why=""
    shift 5
    run "$@"
    [ "$rc" -eq "$code" ] || why="exit $rc, expected $code"
    [ "$(nlines "$ERR")" -eq 1 ] || why="$why; $(nlines "$ERR") stderr lines"
    grep -q '^sdxlvae: ' "$ERR" || why="$why; stderr not 'sdxlvae: ...'"
    if [ -n "$needle" ] && ! grep -qF -- "$needle" "$ERR"; then
        why="$why; stderr does not mention '$needle'"
    fi
    [ -s "$OUT" ] && why="$why; stdout not empty"
    if [ -n "$outf" ]; then
        [ -e "$outf" ] && why="$why; $outf was created"
        local t
        t=$(tmp_left "$(dirname "$outf")")
        [ -n "$t" ] && why="$why; temporary $t left"
    fi
    [ -n "$why" ] && why="$why; stderr: $(firsterr)"
    check "$desc" "${why#; }"
}

# expect_ok DESC -- CMD...: exit 0, nothing on stderr.
expect_ok() {
    local desc=$1 why=""
    shift 2
    run "$@"
    [ "$rc" -eq 0 ] || why="exit $rc: $(firsterr)"
    [ "$rc" -ne 0 ] || [ ! -s "$ERR" ] || why="stderr: $(firsterr)"
    check "$desc" "$why"
}

# pycheck DESC ARGS...: a python helper check; skipped without python3.
pycheck() {
    local desc=$1
    shift
    if [ "$have_py" -eq 0 ]; then skip "$desc" "no python3"; return; fi
    local msg
    if msg=$(py "$@" 2>&1); then ok "$desc${msg:+ ($msg)}"; else nok "$desc (${msg:-failed})"; fi
}

shape_is() {
    local got
    got=$(py shape "$2" 2>&1)
    if [ "$got" = "$3" ]; then ok "$1"; else nok "$1 (got $got)"; fi
}

# mknpy_zeros FILE N C H W: a float32 .npy of zeros, without python.
mknpy_zeros() {
    local hdr="{'descr': '<f4', 'fortran_order': False, 'shape': ($2, $3, $4, $5), }"
    local pad=$(((64 - (10 + ${#hdr} + 1) % 64) % 64))
    hdr="$hdr$(printf '%*s' "$pad" '')"
    local len=$((${#hdr} + 1))
    {
        printf '\223NUMPY\001\000'
        printf '%b' "\\0$(printf '%03o' $((len & 255)))\\0$(printf '%03o' $((len >> 8)))"
        printf '%s\n' "$hdr"
        head -c $((4 * $2 * $3 * $4 * $5)) /dev/zero
    } >"$1"
}

info_value() { sed -n "s/^$1: //p" "$2" | head -n 1; }

# ---- help, version, usage errors ----------------------------------------------
version='[0-9]*\.[0-9]*\.[0-9]*'  # when the header is not there
[ -f "$HDR" ] && version=$(sed -n 's/^#define VAE_VERSION_MAJOR \([0-9]*\)/\1/p' "$HDR").$(
    sed -n 's/^#define VAE_VERSION_MINOR \([0-9]*\)/\1/p' "$HDR").$(
    sed -n 's/^#define VAE_VERSION_PATCH \([0-9]*\)/\1/p' "$HDR")

run "$CLI" --help
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q '^Usage: sdxlvae' "$OUT" || why="$why; no usage on stdout"
[ -s "$ERR" ] && why="$why; stderr not empty"
check "sdxlvae --help" "${why#; }"

run "$CLI" --version
why=""
[ "$rc" -eq 0 ] || why="exit $rc"
grep -q "^sdxlvae $version\$" "$OUT" || why="$why; stdout '$(head -n 1 "$OUT")' is not 'sdxlvae $version'"
check "sdxlvae --version prints $version" "${why#; }"

for verb in encode decode roundtrip info convert; do
    for form in "$verb --help" "$verb -h" "help $verb"; do
        # shellcheck disable=SC2086
        run "$CLI" $form
        why=""
        [ "$rc" -eq 0 ] || why="exit $rc"
        grep -q "^Usage: sdxlvae $verb" "$OUT" || why="$why; no usage on stdout"
        [ -s "$ERR" ] && why="$why; stderr not empty"
        check "sdxlvae $form" "${why#; }"
    done
    run "$CLI" "$verb" --version
    why=""
    [ "$rc" -eq 0 ] || why="exit $rc"
    grep -q "^sdxlvae $version\$" "$OUT" || why="$why; no version"
    check "sdxlvae $verb --version" "${why#; }"
done

# The help of each command names the options about outputs.
help_has() {
    local desc=$1 verb=$2 why=""
    shift 2
    if [ -n "$verb" ]; then run "$CLI" "$verb" --help; else run "$CLI" --help; fi
    for needle in "$@"; do
        grep -qF -- "$needle" "$OUT" || why="$why; no '$needle'"
    done
    check "$desc" "${why#; }"
}
help_has "encode --help names -o/--output-dir, -f/--force" encode "-o, --output-dir DIR" "-f, --force" "-o DIR IN..."
help_has "decode --help names -o/--output-dir, --to png|npy, -f/--force" decode \
    "-o, --output-dir DIR" "--to png|npy" "-f, --force" "-o DIR IN..."
help_has "encode/decode --help say -o creates a missing DIR" decode "created when missing"
help_has "roundtrip --help names -f/--force" roundtrip "-f, --force"
help_has "convert --help names -f/--force" convert "-f, --force"
help_has "sdxlvae --help names -o DIR, --to npy and -f/--force" "" "-o DIR" "--to npy" "-f, --force"
for verb in encode decode roundtrip; do
    help_has "$verb --help names --max-memory, --tile, --circular, --half-weights" $verb \
        "--max-memory SIZE" "--tile PIXELS" "--circular" "--half-weights" "powers of 1024"
done
help_has "encode --help says only the encoder is loaded" encode "Only the" "encoder's weights are loaded"
help_has "decode --help says only the decoder is loaded" decode "Only the" "decoder's weights are loaded"
help_has "info --help names --half-weights and the weights' memory" info "--half-weights" "memory"
help_has "sdxlvae --help names the memory options" "" "--max-memory SIZE" "--tile PIXELS" "--circular" "--half-weights"

M0=$work/none.safetensors  # never loaded: usage errors come first
u() { expect_fail "usage: $1" 2 "$2" "" -- "${@:3}"; }
u "no arguments" "command" "$CLI"
u "unknown command" "frobnicate" "$CLI" frobnicate
u "unknown top-level option" "--bogus" "$CLI" --bogus
u "help for an unknown command" "nope" "$CLI" help nope
u "encode without -m" "-m" "$CLI" encode a.png a.npy
u "encode with one file" "encode" "$CLI" encode -m "$M0" a.png
u "encode with three files" "c.npy" "$CLI" encode -m "$M0" a.png b.npy c.npy
u "unknown option" "--bogus" "$CLI" encode -m "$M0" --bogus a.png b.npy
u "-m without a value" "-m" "$CLI" encode a.png b.npy -m
u "--model= empty" "--model" "$CLI" encode --model= a.png b.npy
u "--threads abc" "abc" "$CLI" encode -m "$M0" --threads abc a.png b.npy
u "--threads -1" "-1" "$CLI" encode -m "$M0" --threads -1 a.png b.npy
u "--threads=1025" "1025" "$CLI" encode -m "$M0" --threads=1025 a.png b.npy
u "--threads=" "--threads" "$CLI" encode -m "$M0" --threads= a.png b.npy
u "--threads 1.5" "1.5" "$CLI" encode -m "$M0" a.png b.npy --threads 1.5
u "--threads without a value" "--threads" "$CLI" encode -m "$M0" a.png b.npy --threads
u "--sample -1" "-1" "$CLI" encode -m "$M0" --sample -1 a.png b.npy
u "--sample 2^64" "18446744073709551616" "$CLI" encode -m "$M0" --sample 18446744073709551616 a.png b.npy
u "--sample 12x" "12x" "$CLI" encode -m "$M0" --sample=12x a.png b.npy
u "--sample ''" "--sample" "$CLI" encode -m "$M0" --sample '' a.png b.npy
u "--raw=1" "--raw" "$CLI" encode -m "$M0" --raw=1 a.png b.npy
u "decode --sample" "--sample" "$CLI" decode -m "$M0" --sample 1 a.npy b.png
u "roundtrip --raw" "--raw" "$CLI" roundtrip -m "$M0" --raw a.png b.png
u "info without -m" "-m" "$CLI" info
u "info with a file" "extra" "$CLI" info -m "$M0" extra
u "info --threads" "--threads" "$CLI" info -m "$M0" --threads 2
u "convert -m" "-m" "$CLI" convert -m "$M0" a.png b.npy
u "encode input .bmp" "a.bmp" "$CLI" encode -m "$M0" a.bmp b.npy
u "encode output .jpg" "b.jpg" "$CLI" encode -m "$M0" a.png b.jpg
u "encode output without extension" "out" "$CLI" encode -m "$M0" a.png out
u "encode to .png: latents are .npy" "latents are .npy" "$CLI" encode -m "$M0" a.png b.png
u "decode from .png: latents are .npy" "latents are .npy" "$CLI" decode -m "$M0" a.png b.png
u "decode output .tiff" "b.tiff" "$CLI" decode -m "$M0" a.npy b.tiff
u "roundtrip from .npy" "a.npy" "$CLI" roundtrip -m "$M0" a.npy b.png
u "convert .png to .png" "a.png" "$CLI" convert a.png b.png
u "convert .npy to .NPY" "a.npy" "$CLI" convert a.npy b.NPY
u "--force=1" "--force" "$CLI" convert --force=1 a.png b.npy
u "--to without -o" "--to" "$CLI" decode -m "$M0" --to npy a.npy b.png
u "--to bmp" "bmp" "$CLI" decode -m "$M0" --to bmp -o out a.npy
u "--to without a value" "--to" "$CLI" decode -m "$M0" -o out a.npy --to
u "encode --to (decode only)" "--to" "$CLI" encode -m "$M0" --to npy -o out a.png
u "-o without inputs" "input" "$CLI" decode -m "$M0" -o out
u "-o without a value" "-o" "$CLI" decode -m "$M0" a.npy -o
u "--output-dir= empty" "--output-dir" "$CLI" decode -m "$M0" --output-dir= a.npy
u "roundtrip -o" "-o" "$CLI" roundtrip -m "$M0" -o out a.png
u "convert -o" "-o" "$CLI" convert -o out a.png
u "info -f" "-f" "$CLI" info -f -m "$M0"
u "decode three files without -o: hint" "-o DIR" "$CLI" decode -m "$M0" a.npy b.npy c.npy
u "batch decode of a .png: latents are .npy" "latents are .npy" "$CLI" decode -m "$M0" -o out a.npy b.png
u "batch encode of a .txt" "c.txt" "$CLI" encode -m "$M0" --output-dir out a.png c.txt
u "batch: input without a name before .npy" ".npy" "$CLI" decode -m "$M0" -o out "$work/.npy"

# The memory options: sizes are bytes or K/M/G/T (powers of 1024, any case),
# more than 0 and at most 2^64 - 1 bytes; a tile is a positive multiple of 8.
u "--max-memory abc" "'abc'" "$CLI" decode -m "$M0" --max-memory abc a.npy b.png
u "--max-memory 0" "zero" "$CLI" decode -m "$M0" --max-memory 0 a.npy b.png
u "--max-memory 0.0001K (rounds to 0 bytes)" "zero" "$CLI" encode -m "$M0" --max-memory=0.0001K a.png b.npy
u "--max-memory 1.5 (a fraction of a byte)" "whole number of bytes" "$CLI" decode -m "$M0" --max-memory 1.5 a.npy b.png
u "--max-memory 2GB (the suffix is G)" "'2GB'" "$CLI" decode -m "$M0" --max-memory 2GB a.npy b.png
u "--max-memory 2 G" "'2 G'" "$CLI" decode -m "$M0" --max-memory "2 G" a.npy b.png
u "--max-memory 1e9" "'1e9'" "$CLI" decode -m "$M0" --max-memory 1e9 a.npy b.png
u "--max-memory .5G" "'.5G'" "$CLI" decode -m "$M0" --max-memory .5G a.npy b.png
u "--max-memory 1.G" "'1.G'" "$CLI" decode -m "$M0" --max-memory 1.G a.npy b.png
u "--max-memory 1P (no such suffix)" "'1P'" "$CLI" decode -m "$M0" --max-memory 1P a.npy b.png
u "--max-memory -1" "'-1'" "$CLI" roundtrip -m "$M0" --max-memory -1 a.png b.png
u "--max-memory 2^64 bytes" "too large" "$CLI" decode -m "$M0" --max-memory 18446744073709551616 a.npy b.png
u "--max-memory 16777216T (2^64)" "too large" "$CLI" decode -m "$M0" --max-memory 16777216T a.npy b.png
u "--max-memory 99999999999999999999T" "too large" "$CLI" decode -m "$M0" --max-memory 99999999999999999999T a.npy b.png
u "--max-memory=" "--max-memory" "$CLI" decode -m "$M0" --max-memory= a.npy b.png
u "--max-memory without a value" "--max-memory" "$CLI" decode -m "$M0" a.npy b.png --max-memory
u "--tile 0" "positive" "$CLI" decode -m "$M0" --tile 0 a.npy b.png
u "--tile 100 (not a multiple of 8)" "96 or 104" "$CLI" decode -m "$M0" --tile 100 a.npy b.png
u "--tile 4" "multiple of 8" "$CLI" encode -m "$M0" --tile=4 a.png b.npy
u "--tile -8" "'-8'" "$CLI" decode -m "$M0" --tile -8 a.npy b.png
u "--tile 64px" "'64px'" "$CLI" decode -m "$M0" --tile 64px a.npy b.png
u "--tile 2147483648 (over int32)" "'2147483648'" "$CLI" roundtrip -m "$M0" --tile 2147483648 a.png b.png
u "--tile without a value" "--tile" "$CLI" decode -m "$M0" a.npy b.png --tile
u "--circular=1" "--circular" "$CLI" decode -m "$M0" --circular=1 a.npy b.png
u "--half-weights=yes" "--half-weights" "$CLI" encode -m "$M0" --half-weights=yes a.png b.npy
u "info --max-memory" "--max-memory" "$CLI" info -m "$M0" --max-memory 1G
u "info --tile" "--tile" "$CLI" info -m "$M0" --tile 64
u "info --circular" "--circular" "$CLI" info -m "$M0" --circular
u "convert --half-weights" "--half-weights" "$CLI" convert --half-weights a.png b.npy
# Sizes and tiles that parse: the command gets as far as loading the model.
for mm in 800000000 512M 512m 1.5G 1.5g 2t 16777215T 1K; do
    expect_fail "--max-memory $mm is a size (the missing model is what fails)" 1 "$M0" "" -- \
        "$CLI" decode -m "$M0" --max-memory "$mm" "$work/a.npy" "$work/b.png"
done
for tile in 8 64 512 2147483640; do
    expect_fail "--tile $tile is a tile side (the missing model is what fails)" 1 "$M0" "" -- \
        "$CLI" encode -m "$M0" --tile=$tile --circular --half-weights "$work/a.png" "$work/b.npy"
done

# ---- files without a model -------------------------------------------------------
d=$work/files
mkdir -p "$d"

mknpy_zeros "$d/a.npy" 1 3 16 16
expect_fail "missing model file: exit 1, names it, no output" 1 "$work/nope/model.safetensors" \
    "$d/lat.npy" -- "$CLI" encode -m "$work/nope/model.safetensors" "$d/a.npy" "$d/lat.npy"
expect_fail "info on a missing model" 1 "$work/nope.safetensors" "" -- \
    "$CLI" info -m "$work/nope.safetensors"
printf 'not a model' >"$d/junk.safetensors"
expect_fail "info on a malformed model" 1 "" "" -- "$CLI" info -m "$d/junk.safetensors"
expect_fail "convert a missing PNG" 1 "$d/nope.png" "$d/x.npy" -- "$CLI" convert "$d/nope.png" "$d/x.npy"
printf 'garbage garbage garbage' >"$d/bad.npy"
expect_fail "convert a malformed .npy" 1 "$d/bad.npy" "$d/bad.png" -- "$CLI" convert "$d/bad.npy" "$d/bad.png"
printf 'garbage garbage garbage' >"$d/bad.png"
expect_fail "convert a malformed PNG" 1 "$d/bad.png" "$d/bad2.npy" -- "$CLI" convert "$d/bad.png" "$d/bad2.npy"
expect_fail "output in a missing directory" 1 "$d/no/such/dir/x.png" "" -- \
    "$CLI" convert "$d/a.npy" "$d/no/such/dir/x.png"
mkdir -p "$d/adir.png"
expect_fail "output is a directory: no temporary left" 1 "adir.png" "" -- \
    "$CLI" convert "$d/a.npy" "$d/adir.png"
t=$(tmp_left "$d")
check "no temporary left beside a directory output" "${t:+left $t}"

cp "$d/a.npy" "$d/same.npy"
u "same file in and out" "same" "$CLI" encode -m "$M0" "$d/same.npy" "$d/same.npy"
u "same file by another name" "same" "$CLI" encode -m "$M0" "$d/same.npy" "$d/../files/same.npy"
expect "the same-file input is untouched" changed cmp -s "$d/a.npy" "$d/same.npy"
u "same file in and out, even with -f" "same" "$CLI" encode -f -m "$M0" "$d/same.npy" "$d/same.npy"
u "same file by another name, even with --force" "same" "$CLI" convert --force "$d/same.npy" "$d/../files/same.npy"
expect "the same-file input is still untouched" changed cmp -s "$d/a.npy" "$d/same.npy"

# ---- no data lost: an existing output is replaced only with -f --------------------
# expect_refused DESC TARGET -- CMD...: CMD exits 1 with one stderr line naming
# TARGET and suggesting --force, prints nothing on stdout, and TARGET is
# byte-identical afterwards, with no temporary beside it.
expect_refused() {
    local desc=$1 target=$2 why="" t
    shift 3
    cp "$target" "$work/refused.orig"
    run "$@"
    [ "$rc" -eq 1 ] || why="exit $rc, expected 1"
    [ "$(nlines "$ERR")" -eq 1 ] || why="$why; $(nlines "$ERR") stderr lines"
    grep -qF -- "$target" "$ERR" || why="$why; stderr does not name $target"
    grep -qF -- "--force" "$ERR" || why="$why; stderr does not suggest --force"
    [ -s "$OUT" ] && why="$why; stdout not empty"
    cmp -s "$target" "$work/refused.orig" || why="$why; $target changed"
    t=$(tmp_left "$(dirname "$target")")
    [ -n "$t" ] && why="$why; temporary $t left"
    [ -n "$why" ] && why="$why; stderr: $(firsterr)"
    check "$desc" "${why#; }"
}
expect_ok "convert to a new output" -- "$CLI" convert "$d/a.npy" "$d/exist.png"
expect_refused "convert refuses an existing output" "$d/exist.png" -- \
    "$CLI" convert "$d/a.npy" "$d/exist.png"
printf 'keep me' >"$d/keep-me.npy"
expect_refused "convert refuses an existing output that is not an image" "$d/keep-me.npy" -- \
    "$CLI" convert "$d/exist.png" "$d/keep-me.npy"
# Refused before the model is loaded: M0 does not exist.
expect_refused "encode refuses an existing output (before loading the model)" "$d/keep-me.npy" -- \
    "$CLI" encode -m "$M0" "$d/a.npy" "$d/keep-me.npy"
expect_refused "decode refuses an existing output" "$d/exist.png" -- \
    "$CLI" decode -m "$M0" "$d/a.npy" "$d/exist.png"
expect_refused "roundtrip refuses an existing output" "$d/exist.png" -- \
    "$CLI" roundtrip -m "$M0" "$d/in.png" "$d/exist.png"
ln -s "$d/nowhere" "$d/dangling.png"
run "$CLI" convert "$d/a.npy" "$d/dangling.png"
why=""
[ "$rc" -eq 1 ] || why="exit $rc"
grep -qF -- "--force" "$ERR" || why="$why; stderr: $(firsterr)"
[ -L "$d/dangling.png" ] && [ ! -e "$d/nowhere" ] || why="$why; the link was replaced or followed"
check "an existing output that is a dangling symlink is refused too" "${why#; }"
cp "$d/exist.png" "$d/exist.orig.png"
printf 'keep me' >"$d/replace.png"
expect_ok "convert -f replaces an existing output" -- "$CLI" convert -f "$d/a.npy" "$d/replace.png"
expect "convert -f wrote the new content" "content differs" cmp -s "$d/replace.png" "$d/exist.orig.png"
printf 'keep me' >"$d/replace.png"
expect_ok "convert --force replaces an existing output" -- "$CLI" convert "$d/a.npy" "$d/replace.png" --force
expect "convert --force wrote the new content" "content differs" cmp -s "$d/replace.png" "$d/exist.orig.png"
t=$(tmp_left "$d")
check "no temporary left after -f" "${t:+left $t}"
printf 'target' >"$d/target.png"
ln -s "$d/target.png" "$d/link.png"
run "$CLI" convert -f "$d/a.npy" "$d/link.png"
why=""
[ "$rc" -eq 0 ] || why="exit $rc: $(firsterr)"
[ -L "$d/link.png" ] && why="$why; link.png is still a link"
[ "$(cat "$d/target.png")" = "target" ] || why="$why; the link's target was written"
check "-f replaces a symlink output itself, never the file it points to" "${why#; }"
expect_fail "-f: an output that is a directory is still refused" 1 "adir.png" "" -- \
    "$CLI" convert -f "$d/a.npy" "$d/adir.png"

if [ "$have_py" -eq 1 ]; then
    py mkpng "$d/p.png" 24 16 "$d/p.ref.npy"
    expect_ok "convert png -> npy" -- "$CLI" convert "$d/p.png" "$d/p.npy"
    pycheck "png -> npy is 1x3xHxW of v/255*2-1" cmp "$d/p.npy" "$d/p.ref.npy" 1e-7
    expect_ok "convert npy -> png" -- "$CLI" convert "$d/p.npy" "$d/q.png"
    pycheck "npy -> png is a valid 24x16 8-bit RGB PNG" ihdr "$d/q.png" 24 16
    pycheck "png -> npy -> png keeps every pixel" pngeq "$d/p.png" "$d/q.png"
    expect_ok "convert options after nothing, upper-case extensions" -- \
        "$CLI" convert -- "$d/q.png" "$d/Q.NPY"
    expect "png -> npy -> png -> npy is bit-identical" differ cmp -s "$d/p.npy" "$d/Q.NPY"
    "$CLI" convert "$d/Q.NPY" "$d/r.PNG" 2>/dev/null
    expect "npy -> png -> npy -> png is bit-identical" differ cmp -s "$d/q.png" "$d/r.PNG"

    # A write that fails half-way (file size limit) leaves nothing behind.
    (ulimit -f 1 && exec "$CLI" convert "$d/p.png" "$d/big.npy") >"$OUT" 2>"$ERR"
    rc=$?
    why=""
    [ "$rc" -eq 1 ] || why="exit $rc"
    [ "$(nlines "$ERR")" -eq 1 ] || why="$why; $(nlines "$ERR") stderr lines"
    [ -e "$d/big.npy" ] && why="$why; big.npy created"
    t=$(tmp_left "$d")
    [ -n "$t" ] && why="$why; temporary $t left"
    check "a failed write (file size limit) leaves no file: $(firsterr)" "${why#; }"

    py mkarr3 "$d/chw.npy" 3 8 8 2
    expect_ok "convert a 3xHxW .npy to png" -- "$CLI" convert "$d/chw.npy" "$d/chw.png"
    pycheck "3xHxW png has the right size" ihdr "$d/chw.png" 8 8

    py mkspecial "$d/sp.npy"
    expect_ok "convert out-of-range and NaN values to png" -- "$CLI" convert "$d/sp.npy" "$d/sp.png"
    "$CLI" convert "$d/sp.png" "$d/sp2.npy" 2>/dev/null
    pycheck "png levels are round((x+1)/2*255) clamped, NaN -> 0" mapcheck "$d/sp.npy" "$d/sp2.npy"

    py mkarr "$d/b2.npy" 2 3 8 8 3
    expect_fail "batch of 2 to one PNG: error names the batch" 1 "2" "$d/b2.png" -- \
        "$CLI" convert "$d/b2.npy" "$d/b2.png"
    py mkarr "$d/c4.npy" 1 4 8 8 3
    expect_fail "4-channel .npy to PNG" 1 "4" "$d/c4.png" -- "$CLI" convert "$d/c4.npy" "$d/c4.png"
    printf 'keep me' >"$d/keep.png"
    run "$CLI" convert -f "$d/b2.npy" "$d/keep.png"
    why=""
    [ "$rc" -eq 1 ] || why="exit $rc"
    grep -q 'batch of 2' "$ERR" || why="$why; stderr: $(firsterr)"
    [ "$(cat "$d/keep.png")" = "keep me" ] || why="$why; file changed"
    t=$(tmp_left "$d")
    [ -n "$t" ] && why="$why; temporary $t left"
    check "a failed convert leaves an existing output untouched" "${why#; }"
else
    skip "convert checks" "no python3"
fi

# PngSuite through the reader: interlaced and plain decode to the same values.
suite=$SHARED/testdata/pngsuite
if [ -d "$suite" ]; then
    why=""
    n=0
    for f in "$suite"/basn*.png; do
        b=$(basename "$f" .png)
        if ! "$CLI" convert "$f" "$d/$b.npy" 2>"$ERR"; then
            why="$why; $b: $(firsterr)"
            continue
        fi
        n=$((n + 1))
        if [ -f "$suite/i$b.png" ]; then
            if ! "$CLI" convert "$suite/i$b.png" "$d/i$b.npy" 2>"$ERR"; then
                why="$why; i$b: $(firsterr)"
            elif ! cmp -s "$d/$b.npy" "$d/i$b.npy"; then
                why="$why; i$b differs from $b"
            fi
        fi
    done
    check "PngSuite basn*: $n converted, interlaced ones identical" "${why#; }"
    if [ "$have_py" -eq 1 ]; then
        pycheck "PngSuite basn2c16 (16-bit) is 1x3x32x32 in [-1, 1]" range "$d/basn2c16.npy" 1,3,32,32
        pycheck "PngSuite basn0g01 (1-bit gray) holds only -1 and 1" range "$d/basn0g01.npy" 1,3,32,32 binary
    fi
else
    skip "PngSuite conversions" "$suite not found"
fi

# ---- a small random model --------------------------------------------------------
# model_checks DIR MODEL: encode/decode/roundtrip/info checks on MODEL.
model_checks() {
    local m=$2 dir=$1 name
    name=$(basename "$dir")
    mkdir -p "$dir"

    run "$CLI" info -m "$m"
    cp "$OUT" "$dir/info.txt"
    local why=""
    [ "$rc" -eq 0 ] || why="exit $rc: $(firsterr)"
    for k in family naming levels block_out_channels layers_per_block latent_channels \
        norm_num_groups quant_conv post_quant_conv weight_dtype parameters \
        scaling_factor shift_factor downsample_factor; do
        grep -q "^$k: ." "$dir/info.txt" || why="$why; no '$k:' line"
    done
    check "$name: info prints every key" "${why#; }"
    local f c scale shift
    f=$(info_value downsample_factor "$dir/info.txt")
    c=$(info_value latent_channels "$dir/info.txt")
    scale=$(info_value scaling_factor "$dir/info.txt")
    shift=$(info_value shift_factor "$dir/info.txt")
    case "$f$c" in
        *[!0-9]* | "") nok "$name: info gives downsample_factor and latent_channels"; return ;;
    esac
    if [ "$have_py" -eq 0 ]; then
        skip "$name: encode/decode checks" "no python3"
        return
    fi
    local params got
    params=$(py params "$m")
    got=$(info_value parameters "$dir/info.txt")
    expect "$name: info parameters = $params (from the safetensors header)" "got '$got'" \
        [ "$got" = "$params" ]

    local H=$((4 * f)) W=$((6 * f))
    py mkarr "$dir/img.npy" 1 3 "$H" "$W" 1
    expect_ok "$name: encode .npy" -- "$CLI" encode -m "$m" "$dir/img.npy" "$dir/lat.npy"
    shape_is "$name: latent shape is 1x${c}x4x6" "$dir/lat.npy" "1,$c,4,6"
    expect_ok "$name: encode --raw, options after the files, --threads=1" -- \
        "$CLI" encode "$dir/img.npy" "$dir/raw.npy" --raw --threads=1 --model "$m"
    pycheck "$name: scaled latent = (raw - shift) * scale" scaled "$dir/raw.npy" "$dir/lat.npy" "$scale" "$shift"
    expect_ok "$name: encode --threads 2 -m after the files" -- \
        "$CLI" encode "$dir/img.npy" "$dir/lat2.npy" --threads 2 -m "$m"
    pycheck "$name: thread count does not change the latent" cmp "$dir/lat2.npy" "$dir/lat.npy" 1e-5
    expect_ok "$name: encode --threads 0 -mMODEL" -- \
        "$CLI" encode --threads 0 "-m$m" "$dir/img.npy" "$dir/lat0.npy"

    expect_ok "$name: encode --sample 7" -- "$CLI" encode -m "$m" --sample 7 "$dir/img.npy" "$dir/s7.npy"
    "$CLI" encode -m "$m" --sample=7 "$dir/img.npy" "$dir/s7b.npy" 2>/dev/null
    expect "$name: the same seed gives the same sample" differ cmp -s "$dir/s7.npy" "$dir/s7b.npy"
    "$CLI" encode -m "$m" --sample 18446744073709551615 "$dir/img.npy" "$dir/s8.npy" 2>/dev/null
    pycheck "$name: another seed gives another sample" differ "$dir/s7.npy" "$dir/s8.npy"
    pycheck "$name: a sample differs from the mean" differ "$dir/s7.npy" "$dir/lat.npy"

    expect_ok "$name: decode to .npy" -- "$CLI" decode -m "$m" "$dir/lat.npy" "$dir/dec.npy"
    shape_is "$name: decoded shape is 1x3x${H}x${W}" "$dir/dec.npy" "1,3,$H,$W"
    expect_ok "$name: decode --raw" -- "$CLI" decode --raw -m "$m" "$dir/raw.npy" "$dir/decraw.npy"
    pycheck "$name: decode --raw of raw = decode of scaled" cmp "$dir/decraw.npy" "$dir/dec.npy" 1e-4
    expect_ok "$name: decode to .png" -- "$CLI" decode -m "$m" "$dir/lat.npy" "$dir/dec.png"
    pycheck "$name: decoded PNG is a valid ${W}x${H} RGB8" ihdr "$dir/dec.png" "$W" "$H"
    "$CLI" convert "$dir/dec.npy" "$dir/dec2.png" 2>/dev/null
    pycheck "$name: decode to .png = decode to .npy + convert" pngeq "$dir/dec.png" "$dir/dec2.png"

    py mkarr3 "$dir/chw.npy" "$c" 4 6 1
    expect_ok "$name: decode a CxHxW latent" -- "$CLI" decode -m "$m" "$dir/chw.npy" "$dir/chw.png"
    pycheck "$name: CxHxW latent decodes to ${W}x${H}" ihdr "$dir/chw.png" "$W" "$H"

    # Batches: the second image of a batch is encoded as it is alone.
    py mkarr "$dir/img2.npy" 1 3 "$H" "$W" 2
    py cat "$dir/batch.npy" "$dir/img.npy" "$dir/img2.npy"
    expect_ok "$name: encode a batch of 2" -- "$CLI" encode -m "$m" "$dir/batch.npy" "$dir/blat.npy"
    "$CLI" encode -m "$m" "$dir/img2.npy" "$dir/lat_2.npy" 2>/dev/null
    py slice "$dir/blat.npy" "$dir/blat1.npy" 1 2>/dev/null
    pycheck "$name: batch element 1 = single encode" cmp "$dir/blat1.npy" "$dir/lat_2.npy" 1e-4
    expect_ok "$name: decode a batch of 2 to .npy" -- "$CLI" decode -m "$m" "$dir/blat.npy" "$dir/bdec.npy"
    shape_is "$name: decoded batch shape 2x3x${H}x${W}" "$dir/bdec.npy" "2,3,$H,$W"
    expect_fail "$name: decode a batch of 2 to one PNG" 1 "2" "$dir/bdec.png" -- \
        "$CLI" decode -m "$m" "$dir/blat.npy" "$dir/bdec.png"

    # PNG in: encode, roundtrip, sides that are not multiples of f.
    py mkpng "$dir/in.png" "$W" "$H"
    expect_ok "$name: encode .png" -- "$CLI" encode -m "$m" "$dir/in.png" "$dir/plat.npy"
    run "$CLI" roundtrip -m "$m" --threads 2 "$dir/in.png" "$dir/rt.png"
    why=""
    [ "$rc" -eq 0 ] || why="exit $rc: $(firsterr)"
    grep -Eq '^PSNR ([0-9]+\.[0-9][0-9]|inf) dB$' "$OUT" || why="$why; stdout '$(head -n 1 "$OUT")'"
    [ "$(nlines "$OUT")" -eq 1 ] || why="$why; $(nlines "$OUT") stdout lines"
    check "$name: roundtrip prints 'PSNR x.xx dB' ($(head -n 1 "$OUT"))" "${why#; }"
    pycheck "$name: roundtrip output is ${W}x${H}" ihdr "$dir/rt.png" "$W" "$H"
    if [ "$f" -gt 1 ]; then
        py mkpng "$dir/odd.png" $((W + 1)) "$H"
        expect_fail "$name: width not a multiple of $f" 1 "odd.png" "$dir/odd.npy" -- \
            "$CLI" encode -m "$m" "$dir/odd.png" "$dir/odd.npy"
        py mkpng "$dir/odd2.png" "$W" $((H + f / 2))
        expect_fail "$name: roundtrip, height not a multiple of $f" 1 "odd2.png" "$dir/odd2o.png" -- \
            "$CLI" roundtrip -m "$m" "$dir/odd2.png" "$dir/odd2o.png"
    fi

    # Failures leave nothing behind and keep existing outputs.
    py mkarr "$dir/c5.npy" 1 $((c + 1)) 4 6 1
    expect_fail "$name: decode a latent with $((c + 1)) channels" 1 "$((c + 1))" "$dir/c5.png" -- \
        "$CLI" decode -m "$m" "$dir/c5.npy" "$dir/c5.png"
    printf 'keep me' >"$dir/keep.npy"
    run "$CLI" decode -f -m "$m" "$dir/c5.npy" "$dir/keep.npy"
    why=""
    [ "$rc" -eq 1 ] || why="exit $rc"
    grep -q "channels" "$ERR" || why="$why; stderr: $(firsterr)"
    [ "$(cat "$dir/keep.npy")" = "keep me" ] || why="$why; file changed"
    t=$(tmp_left "$dir")
    [ -n "$t" ] && why="$why; temporary $t left"
    check "$name: a failed decode leaves an existing output untouched" "${why#; }"
    py mkarr "$dir/img4.npy" 1 4 "$H" "$W" 1
    expect_fail "$name: encode a 4-channel image" 1 "img4.npy" "$dir/img4l.npy" -- \
        "$CLI" encode -m "$m" "$dir/img4.npy" "$dir/img4l.npy"
}

if [ -x "$BIN/gen_vae" ]; then
    g=$work/gen
    if "$BIN/gen_vae" --channels 32,32 --groups 8 --layers 1 --seed 1 "$g" >"$OUT" 2>"$ERR" &&
        [ -f "$g/model.safetensors" ]; then
        ok "gen_vae made a small model"
        model_checks "$work/m-gen" "$g/model.safetensors"
        if [ "$have_py" -eq 1 ]; then
            for kv in "block_out_channels: 32,32" "norm_num_groups: 8" "layers_per_block: 1" "levels: 2"; do
                expect "gen: info says '$kv'" "$(grep "^${kv%%:*}:" "$work/m-gen/info.txt")" \
                    grep -qxF "$kv" "$work/m-gen/info.txt"
            done
        fi
    else
        nok "gen_vae made a small model (exit $?: $(firsterr))"
    fi
else
    nok "gen_vae is built at $BIN/gen_vae"
fi

# ---- -v, --quiet and the progress bar -------------------------------------------------
# On the project's own fixture: a 24x16 image, f = 2.
FX=${SDXLVAE_FIXTURES:-$root/test/fixtures}/micro-ldm-f32
# stages_are DESC FILE STAGE...: FILE holds exactly "STAGE  N.NNN s" lines, in
# order, besides the memory estimate's "memory  ..." lines.
stages_are() {
    local desc=$1 file=$2 got
    shift 2
    got=$(sed -E -n 's/^([a-z]+) +[0-9]+\.[0-9]{3} s$/\1/p' "$file" | tr '\n' ' ')
    if [ "$got" = "$* " ] && [ "$(grep -vc '^memory  ' "$file")" -eq $# ]; then ok "$desc"; else
        nok "$desc (stderr: $(tr '\n' '|' <"$file"))"; fi
}
if [ -f "$FX/model.safetensors" ]; then
    v=$work/verbose
    mkdir -p "$v"
    run "$CLI" encode -v -m "$FX" "$FX/image.npy" "$v/lat.npy"
    check "encode -v: exit 0, nothing on stdout" "$([ "$rc" -eq 0 ] || echo "exit $rc")$([ -s "$OUT" ] && echo '; stdout')"
    stages_are "encode -v times load, read, encode, write, total" "$ERR" load read encode write total
    "$CLI" encode -m "$FX" "$FX/image.npy" "$v/lat-plain.npy" 2>/dev/null
    expect "encode -v writes the same latent" differ cmp -s "$v/lat.npy" "$v/lat-plain.npy"
    run "$CLI" decode --verbose -m "$FX" "$v/lat.npy" "$v/dec.npy"
    stages_are "decode --verbose times load, read, decode, write, total" "$ERR" load read decode write total
    "$CLI" convert "$FX/image.npy" "$v/in.png" 2>/dev/null
    run "$CLI" roundtrip -v -m "$FX" "$v/in.png" "$v/rt.png"
    why=""
    [ "$rc" -eq 0 ] || why="exit $rc"
    grep -Eq '^PSNR [0-9.]+ dB$' "$OUT" && [ "$(nlines "$OUT")" -eq 1 ] || why="$why; stdout '$(head -n 1 "$OUT")'"
    check "roundtrip -v: stdout is still one PSNR line" "${why#; }"
    stages_are "roundtrip -v times load, read, encode, decode, write, total" "$ERR" \
        load read encode decode write total
    run "$CLI" info -v -m "$FX"
    stages_are "info -v times the load" "$ERR" load
    grep -q '^family: ' "$OUT" && ok "info -v still prints the model" || nok "info -v still prints the model"
    run "$CLI" convert -v "$v/in.png" "$v/in.npy"
    stages_are "convert -v times read, write, total" "$ERR" read write total

    expect_ok "encode -q" -- "$CLI" encode -q -m "$FX" "$FX/image.npy" "$v/lat-q.npy"
    expect "encode -q writes the same latent" differ cmp -s "$v/lat-q.npy" "$v/lat-plain.npy"
    expect_ok "decode --quiet" -- "$CLI" decode --quiet -m "$FX" "$v/lat.npy" "$v/dec-q.npy"
    expect "decode --quiet writes the same image" differ cmp -s "$v/dec-q.npy" "$v/dec.npy"
    expect_ok "roundtrip --quiet --threads 1" -- "$CLI" roundtrip --quiet --threads 1 -m "$FX" "$v/in.png" "$v/rt-q.png"
    u "--quiet=1" "--quiet" "$CLI" encode -m "$M0" --quiet=1 a.png b.npy
    u "--verbose=yes" "--verbose" "$CLI" decode -m "$M0" --verbose=yes a.npy b.png
    u "info -q (no bar to silence)" "-q" "$CLI" info -q -m "$M0"
    u "convert --quiet" "--quiet" "$CLI" convert --quiet a.png b.npy

    # The bar needs a terminal: script(1) gives the tool one. It appears
    # after SDXLVAE_PROGRESS_DELAY seconds (default 1), never with --quiet.
    if command -v script >/dev/null 2>&1 && script -qec true /dev/null >/dev/null 2>&1; then
        tty_run() { script -qec "$1" /dev/null >"$OUT" 2>&1 </dev/null; }
        tty_run "SDXLVAE_PROGRESS_DELAY=0 '$CLI' roundtrip -m '$FX' '$v/in.png' '$v/rt-tty.png'"
        why=""
        grep -q 'encoding \[' "$OUT" || why="no encoding bar"
        grep -q 'decoding \[' "$OUT" || why="$why; no decoding bar"
        grep -q '100\.0%' "$OUT" || why="$why; no 100.0%"
        grep -q 'PSNR' "$OUT" || why="$why; no PSNR"
        check "a terminal gets a progress bar for encode and decode" "${why#; }"
        tty_run "SDXLVAE_PROGRESS_DELAY=0 '$CLI' roundtrip --quiet -f -m '$FX' '$v/in.png' '$v/rt-tty.png'"
        expect "--quiet: no bar on a terminal" "$(tr '\r' '|' <"$OUT")" \
            sh -c "! grep -q 'coding \[' '$OUT' && grep -q PSNR '$OUT'"
        tty_run "'$CLI' roundtrip -f -m '$FX' '$v/in.png' '$v/rt-tty.png'"
        expect "no bar for work shorter than a second" "$(tr '\r' '|' <"$OUT")" \
            sh -c "! grep -q 'coding \[' '$OUT' && grep -q PSNR '$OUT'"
    else
        skip "progress bar on a terminal" "no script(1)"
    fi
else
    skip "-v, --quiet and the progress bar" "$FX not found"
fi

# ---- batch mode: -o DIR ---------------------------------------------------------------
# On the project's fixture: latents 1x4xhxw decode to 1x3x2hx2w.
if [ -f "$FX/model.safetensors" ]; then
    bt=$work/batch
    mkdir -p "$bt/in" "$bt/ref"
    cp "$FX/latent.npy" "$bt/in/a.npy"
    cp "$FX/zin.npy" "$bt/in/b.npy"
    mknpy_zeros "$bt/in/c.npy" 1 4 4 6
    # What the single-file commands write, to compare with.
    for s in a b c; do
        "$CLI" decode -m "$FX" "$bt/in/$s.npy" "$bt/ref/$s.png" 2>/dev/null
        "$CLI" decode -m "$FX" "$bt/in/$s.npy" "$bt/ref/$s.npy" 2>/dev/null
    done
    # same_outputs DESC DIR EXT STEM...: DIR holds exactly STEM.EXT..., each
    # identical to $bt/ref/STEM.EXT.
    same_outputs() {
        local desc=$1 dir=$2 ext=$3 why="" got want s
        shift 3
        for s in "$@"; do
            cmp -s "$dir/$s.$ext" "$bt/ref/$s.$ext" || why="$why; $s.$ext missing or different"
        done
        got=$(find "$dir" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | LC_ALL=C sort | tr '\n' ' ')
        want=$(printf "%s.$ext " "$@")
        [ "$got" = "$want" ] || why="$why; $dir holds '$got', expected '$want'"
        check "$desc" "${why#; }"
    }

    expect_ok "batch decode of 3 latents into a new directory" -- \
        "$CLI" decode -m "$FX" -o "$bt/png" "$bt/in/a.npy" "$bt/in/b.npy" "$bt/in/c.npy"
    same_outputs "batch decode writes DIR/<stem>.png, each as decode IN OUT does" "$bt/png" png a b c
    expect_ok "batch decode --to npy, --output-dir=, options after the files" -- \
        "$CLI" decode "$bt/in/a.npy" "$bt/in/b.npy" "$bt/in/c.npy" --output-dir="$bt/npy" --to npy -m "$FX"
    same_outputs "batch decode --to npy writes DIR/<stem>.npy" "$bt/npy" npy a b c
    expect_ok "batch decode --to png of one file, -oDIR" -- \
        "$CLI" decode -m "$FX" --to png "-o$bt/one" "$bt/in/b.npy"
    same_outputs "batch decode of one file" "$bt/one" png b

    # A directory as input: its .npy files in name order (any case), not
    # other files, subdirectories or hidden files.
    mkdir -p "$bt/dir/sub.npy"
    cp "$bt/in/b.npy" "$bt/dir/b.npy"
    cp "$bt/in/a.npy" "$bt/dir/a.NPY"
    cp "$bt/ref/a.png" "$bt/dir/x.png"
    printf 'notes' >"$bt/dir/notes.txt"
    printf 'garbage' >"$bt/dir/.hidden.npy"
    cp "$bt/in/c.npy" "$bt/dir/sub.npy/c.npy"
    run "$CLI" decode -v -m "$FX" -o "$bt/fromdir" "$bt/dir"
    check "batch decode of a directory: exit 0" "$([ "$rc" -eq 0 ] || echo "exit $rc: $(firsterr)")"
    same_outputs "a directory gives its .npy files, not .png, .txt, hidden files or subdirectories" \
        "$bt/fromdir" png a b
    got=$(sed -E -n 's/^([a-z]+) +[0-9]+\.[0-9]{3} s(  (.*))?$/\1:\3/p' "$ERR" | sed "s|$bt/dir/||" | tr '\n' ' ')
    want="load: read:a.NPY decode:a.NPY write:a.NPY read:b.npy decode:b.npy write:b.npy total: "
    expect "batch -v: load once, each file's stages named, in name order, then total" \
        "stderr: $(tr '\n' '|' <"$ERR")" [ "$got" = "$want" -a "$(grep -vc '^memory  ' "$ERR")" -eq 8 ]
    expect_ok "batch decode of a directory and a file" -- \
        "$CLI" decode -q -m "$FX" -o "$bt/mixdir" "$bt/dir/" "$bt/in/c.npy"
    same_outputs "a directory and a file together" "$bt/mixdir" png a b c

    # encode: .png and .npy images, named or in a directory.
    mkdir -p "$bt/imgs"
    cp "$FX/image.npy" "$bt/imgs/image.npy"
    "$CLI" convert "$FX/image.npy" "$bt/imgs/photo.png" 2>/dev/null
    "$CLI" encode -m "$FX" "$bt/imgs/image.npy" "$bt/ref/image.npy" 2>/dev/null
    "$CLI" encode -m "$FX" "$bt/imgs/photo.png" "$bt/ref/photo.npy" 2>/dev/null
    expect_ok "batch encode of a .npy and a .png" -- \
        "$CLI" encode -m "$FX" -o "$bt/lat" "$bt/imgs/photo.png" "$bt/imgs/image.npy"
    same_outputs "batch encode writes DIR/<stem>.npy, each as encode IN OUT does" "$bt/lat" npy image photo
    expect_ok "batch encode of a directory" -- "$CLI" encode -m "$FX" -o "$bt/lat2" "$bt/imgs"
    same_outputs "batch encode of a directory takes .png and .npy" "$bt/lat2" npy image photo

    # Refused before any work (usage errors): two inputs with one name, an
    # output that is an input (even with -f), a directory with no inputs.
    expect_fail "batch: two inputs with the same name are refused, naming both" 2 "a.NPY" "$bt/dup" -- \
        "$CLI" decode -m "$FX" -o "$bt/dup" "$bt/in/a.npy" "$bt/dir/a.NPY"
    expect_fail "batch: the same directory twice is refused" 2 "would both" "$bt/dup" -- \
        "$CLI" decode -m "$FX" -o "$bt/dup" "$bt/dir" "$bt/dir"
    cp "$bt/imgs/image.npy" "$bt/imgs/photo.npy"
    expect_fail "batch encode: photo.png and photo.npy in one directory are refused" 2 "photo" "$bt/dup" -- \
        "$CLI" encode -m "$FX" -o "$bt/dup" "$bt/imgs"
    rm -f "$bt/imgs/photo.npy"
    cp "$bt/in/a.npy" "$bt/a.orig"
    u "batch: an output that is its input is refused, even with -f" "same file" \
        "$CLI" decode -f -m "$FX" --to npy -o "$bt/in" "$bt/in/a.npy" "$bt/in/b.npy"
    u "batch: a directory into itself is refused" "same file" \
        "$CLI" decode -m "$FX" --to npy -o "$bt/in" "$bt/in"
    expect "batch: the inputs are untouched" changed cmp -s "$bt/in/a.npy" "$bt/a.orig"
    mkdir -p "$bt/empty"
    printf 'x' >"$bt/empty/readme.txt"
    expect_fail "batch: a directory without inputs is refused" 2 "$bt/empty" "$bt/none" -- \
        "$CLI" decode -m "$FX" -o "$bt/none" "$bt/empty"

    # DIR: created when only its last part is missing; nothing else.
    expect_fail "batch: DIR whose parent is missing: exit 1, nothing created" 1 "$bt/no/such" "$bt/no" -- \
        "$CLI" decode -m "$FX" -o "$bt/no/such" "$bt/in/a.npy"
    expect_fail "batch: DIR that is a file" 1 "not a directory" "" -- \
        "$CLI" decode -m "$FX" -o "$bt/a.orig" "$bt/in/a.npy"
    expect_fail "batch: a model that fails to load leaves no new DIR" 1 "$M0" "$bt/nomodel" -- \
        "$CLI" decode -m "$M0" -o "$bt/nomodel" "$bt/in/a.npy"

    # One bad file among good ones: its line, the others written, a summary.
    mkdir -p "$bt/mixed"
    cp "$bt/in/a.npy" "$bt/in/b.npy" "$bt/in/c.npy" "$bt/mixed/"
    printf 'garbage garbage garbage' >"$bt/mixed/bad.npy"
    mknpy_zeros "$bt/mixed/c5.npy" 1 5 4 6  # fails after its temporary exists
    run "$CLI" decode -m "$FX" -o "$bt/mixout" "$bt/mixed"
    why=""
    [ "$rc" -eq 1 ] || why="exit $rc"
    [ "$(nlines "$ERR")" -eq 3 ] || why="$why; $(nlines "$ERR") stderr lines"
    sed -n 1p "$ERR" | grep -q '^sdxlvae: .*bad\.npy' || why="$why; line 1 does not name bad.npy"
    sed -n 2p "$ERR" | grep -q '^sdxlvae: .*c5\.npy' || why="$why; line 2 does not name c5.npy"
    [ "$(sed -n 3p "$ERR")" = "sdxlvae: 2 of 5 files failed" ] || why="$why; last line '$(sed -n 3p "$ERR")'"
    [ -s "$OUT" ] && why="$why; stdout not empty"
    t=$(tmp_left "$bt/mixout")
    [ -n "$t" ] && why="$why; temporary $t left"
    check "batch: failed files are reported, the run goes on, exit 1, 'N of M files failed'" "${why#; }"
    same_outputs "batch: the good files are written, the bad ones not" "$bt/mixout" png a b c
    expect_fail "batch: one failed file alone prints one line, no summary" 1 "bad.npy" "$bt/mixout1/bad.png" -- \
        "$CLI" decode -m "$FX" -o "$bt/mixout1" "$bt/mixed/bad.npy"
    mknpy_zeros "$bt/b2.npy" 2 4 4 6
    expect_fail "batch: a batch of 2 latents to PNG suggests --to npy" 1 "--to npy" "$bt/b2out/b2.png" -- \
        "$CLI" decode -m "$FX" -o "$bt/b2out" "$bt/b2.npy"
    expect_ok "batch: a batch of 2 latents with --to npy" -- \
        "$CLI" decode -m "$FX" -o "$bt/b2out" --to npy "$bt/b2.npy"

    # Existing outputs: refused one by one without -f, replaced with -f.
    for s in a b c; do cp "$bt/png/$s.png" "$bt/$s.before"; done
    run "$CLI" decode -m "$FX" -o "$bt/png" "$bt/in/a.npy" "$bt/in/b.npy" "$bt/in/c.npy"
    why=""
    [ "$rc" -eq 1 ] || why="exit $rc"
    [ "$(grep -c -- 'already exists.*--force' "$ERR")" -eq 3 ] || why="$why; not 3 'already exists' lines"
    [ "$(tail -n 1 "$ERR")" = "sdxlvae: 3 of 3 files failed" ] || why="$why; last line '$(tail -n 1 "$ERR")'"
    for s in a b c; do cmp -s "$bt/png/$s.png" "$bt/$s.before" || why="$why; $s.png changed"; done
    check "batch again without -f: every existing output refused, untouched" "${why#; }"
    rm -f "$bt/png/b.png"
    run "$CLI" decode -m "$FX" -o "$bt/png" "$bt/in/a.npy" "$bt/in/b.npy" "$bt/in/c.npy"
    why=""
    [ "$rc" -eq 1 ] || why="exit $rc"
    grep -q "png/a.png: already exists" "$ERR" && grep -q "png/c.png: already exists" "$ERR" ||
        why="$why; a.png and c.png not refused"
    [ "$(tail -n 1 "$ERR")" = "sdxlvae: 2 of 3 files failed" ] || why="$why; last line '$(tail -n 1 "$ERR")'"
    check "batch: existing outputs are skipped with an error, the missing one written" "${why#; }"
    same_outputs "batch: the skipped outputs are untouched, the new one right" "$bt/png" png a b c
    printf 'junk' >"$bt/png/a.png"
    printf 'junk' >"$bt/png/c.png"
    expect_ok "batch -f replaces existing outputs" -- \
        "$CLI" decode -f -m "$FX" -o "$bt/png" "$bt/in/a.npy" "$bt/in/b.npy" "$bt/in/c.npy"
    same_outputs "batch -f wrote every output anew" "$bt/png" png a b c

    if command -v script >/dev/null 2>&1 && script -qec true /dev/null >/dev/null 2>&1; then
        script -qec "SDXLVAE_PROGRESS_DELAY=0 '$CLI' decode -m '$FX' -o '$bt/tty' '$bt/in/a.npy' '$bt/in/b.npy'" \
            /dev/null >"$OUT" 2>&1 </dev/null
        why=""
        grep -q 'decoding 1/2 \[' "$OUT" || why="no 'decoding 1/2' bar"
        grep -q 'decoding 2/2 \[' "$OUT" || why="$why; no 'decoding 2/2' bar"
        check "batch: the progress bar numbers the files" "${why#; }"
        script -qec "SDXLVAE_PROGRESS_DELAY=0 '$CLI' decode -q -f -m '$FX' -o '$bt/tty' '$bt/in/a.npy' '$bt/in/b.npy'" \
            /dev/null >"$OUT" 2>&1 </dev/null
        expect "batch --quiet: no bar" "$(tr '\r' '|' <"$OUT")" sh -c "! grep -q 'coding' '$OUT'"
    else
        skip "batch progress bar" "no script(1)"
    fi
else
    skip "batch mode" "$FX not found"
fi

# ---- memory: one half loaded, --half-weights, -v's estimate, --max-memory, --tile, --circular
# On the project's fixtures (f = 2). The tiling checks need the library's
# vae_estimate_memory; while it answers VAE_ERR_UNSUPPORTED they are skipped
# and the checks of a library without it run instead.
if [ -f "$FX/model.safetensors" ] && [ "$have_py" -eq 1 ]; then
    mem=$work/mem
    mkdir -p "$mem/noenc" "$mem/nodec"
    "$CLI" decode -m "$FX" "$FX/latent.npy" "$mem/ref-dec.npy" 2>/dev/null
    "$CLI" encode -m "$FX" "$FX/image.npy" "$mem/ref-lat.npy" 2>/dev/null

    # decode reads only the decoder's tensors, encode only the encoder's: a
    # model whose other half cannot load still works for them.
    cp "$FX/config.json" "$mem/noenc/"
    cp "$FX/config.json" "$mem/nodec/"
    py dtype "$FX/model.safetensors" "$mem/noenc/model.safetensors" encoder.conv_in.weight I32
    py dtype "$FX/model.safetensors" "$mem/nodec/model.safetensors" decoder.conv_in.weight I32
    expect_ok "decode loads only the decoder (an unloadable encoder tensor is not read)" -- \
        "$CLI" decode -m "$mem/noenc" "$FX/latent.npy" "$mem/noenc.npy"
    expect "decode without the encoder writes the same image" differ cmp -s "$mem/noenc.npy" "$mem/ref-dec.npy"
    expect_ok "batch decode loads only the decoder too" -- \
        "$CLI" decode -m "$mem/noenc" --to npy -o "$mem/noenc-batch" "$FX/latent.npy"
    expect "batch decode without the encoder writes the same image" differ \
        cmp -s "$mem/noenc-batch/latent.npy" "$mem/ref-dec.npy"
    expect_ok "encode loads only the encoder (an unloadable decoder tensor is not read)" -- \
        "$CLI" encode -m "$mem/nodec" "$FX/image.npy" "$mem/nodec.npy"
    expect "encode without the decoder writes the same latent" differ cmp -s "$mem/nodec.npy" "$mem/ref-lat.npy"
    expect_fail "encode reads the encoder's tensors" 1 "encoder.conv_in.weight" "$mem/x.npy" -- \
        "$CLI" encode -m "$mem/noenc" "$FX/image.npy" "$mem/x.npy"
    expect_fail "decode reads the decoder's tensors" 1 "decoder.conv_in.weight" "$mem/x.png" -- \
        "$CLI" decode -m "$mem/nodec" "$FX/latent.npy" "$mem/x.png"
    "$CLI" convert "$FX/image.npy" "$mem/in.png" 2>/dev/null
    expect_fail "roundtrip loads both halves" 1 "encoder.conv_in.weight" "$mem/rt.png" -- \
        "$CLI" roundtrip -m "$mem/noenc" "$mem/in.png" "$mem/rt.png"
    expect_fail "info loads both halves" 1 "decoder.conv_in.weight" "" -- "$CLI" info -m "$mem/nodec"

    # --half-weights: F16 weights are kept as stored, so results do not move;
    # F32 weights are rounded to F16.
    F16=${SDXLVAE_FIXTURES:-$root/test/fixtures}/micro-diffusers-f16
    if [ -f "$F16/model.safetensors" ]; then
        "$CLI" decode -m "$F16" "$F16/latent.npy" "$mem/f16-dec.npy" 2>/dev/null
        expect_ok "decode --half-weights of an F16 model" -- \
            "$CLI" decode --half-weights -m "$F16" "$F16/latent.npy" "$mem/f16-half.npy"
        pycheck "--half-weights on F16 weights: the same image to 1e-4" cmp "$mem/f16-half.npy" "$mem/f16-dec.npy" 1e-4
        "$CLI" encode -m "$F16" "$F16/image.npy" "$mem/f16-lat.npy" 2>/dev/null
        expect_ok "encode --half-weights of an F16 model" -- \
            "$CLI" encode --half-weights -m "$F16" "$F16/image.npy" "$mem/f16-lat-half.npy"
        pycheck "--half-weights on F16 weights: the same latent to 1e-4" cmp "$mem/f16-lat-half.npy" "$mem/f16-lat.npy" 1e-4
    else
        skip "--half-weights on F16 weights" "$F16 not found"
    fi
    expect_ok "decode --half-weights of an F32 model" -- \
        "$CLI" decode --half-weights -m "$FX" "$FX/latent.npy" "$mem/half.npy"
    pycheck "--half-weights on F32 weights: the image to 1e-2" cmp "$mem/half.npy" "$mem/ref-dec.npy" 1e-2
    run "$CLI" roundtrip --half-weights -m "$FX" "$mem/in.png" "$mem/rt-half.png"
    check "roundtrip --half-weights prints the PSNR" "$([ "$rc" -eq 0 ] && grep -q '^PSNR' "$OUT" || echo "exit $rc: $(firsterr)")"

    # -v: one "memory  ..." line before each run call's timing.
    run "$CLI" decode -v -m "$FX" "$FX/latent.npy" "$mem/v.npy"
    cp "$ERR" "$mem/v.err"
    tiling=1
    if grep -q '^memory  estimate unavailable: ' "$mem/v.err"; then tiling=0; fi
    why=""
    [ "$rc" -eq 0 ] || why="exit $rc"
    [ "$(grep -c '^memory  ' "$mem/v.err")" -eq 1 ] || why="$why; not one memory line"
    [ "$(sed -n '3p' "$mem/v.err" | cut -c1-8)" = "memory  " ] || why="$why; the memory line is not between read and decode"
    check "decode -v prints the memory estimate before decoding: $(grep '^memory' "$mem/v.err")" "${why#; }"
    run "$CLI" roundtrip -v -m "$FX" "$mem/in.png" "$mem/rt-v.png"
    n=$(grep -c '^memory  ' "$ERR")
    if [ "$tiling" -eq 1 ]; then
        expect "roundtrip -v: an estimate for the encode and one for the decode" "$n lines" [ "$n" -eq 2 ]
    else
        expect "roundtrip -v: 'estimate unavailable' said once" "$n lines" [ "$n" -eq 1 ]
    fi

    if [ "$tiling" -eq 0 ]; then
        echo "skipped: tiling not in this library ($(sed -n 's/^memory  estimate unavailable: //p' "$mem/v.err"))"
        expect_fail "--max-memory without the library's estimate: its message, nothing written" 1 \
            "memory estimate" "$mem/nomm.npy" -- \
            "$CLI" decode --max-memory 2G -m "$FX" "$FX/latent.npy" "$mem/nomm.npy"
        expect_fail "--circular with a library without it: one line naming --circular" 1 \
            "--circular" "$mem/nocirc.npy" -- \
            "$CLI" decode --circular -m "$FX" "$FX/latent.npy" "$mem/nocirc.npy"
        for t in "decode --tile 64 equals the untiled decode to 1e-4" \
            "encode --tile 64 equals the untiled encode to 1e-4" \
            "-v names the tile" "info prints weights_memory" \
            "--max-memory too small: the minimum is said" \
            "--max-memory at that minimum runs tiled, same image to 1e-4" \
            "--max-memory large runs untiled" "--tile with --max-memory" \
            "decode --circular: rolling the latent rolls the image" \
            "encode --circular" "encode --circular of sides that are multiples of f only"; do
            skip "$t" "tiling not in this library"
        done
    else
        # A latent and an image large enough for several tiles: 192 x 192 pixels.
        py mkarr "$mem/big-lat.npy" 1 4 96 96 5
        py mkarr "$mem/big-img.npy" 1 3 192 192 6
        "$CLI" decode -m "$FX" "$mem/big-lat.npy" "$mem/big-dec.npy" 2>/dev/null
        "$CLI" encode -m "$FX" "$mem/big-img.npy" "$mem/big-enc.npy" 2>/dev/null
        # --tile: tiled output equals untiled output up to rounding.
        run "$CLI" decode -v --tile 64 -m "$FX" "$mem/big-lat.npy" "$mem/big-dec-t64.npy"
        check "decode --tile 64 runs" "$([ "$rc" -eq 0 ] || echo "exit $rc: $(firsterr)")"
        pycheck "decode --tile 64 equals the untiled decode to 1e-4" cmp "$mem/big-dec-t64.npy" "$mem/big-dec.npy" 1e-4
        expect "-v names the tile" "$(grep '^memory' "$ERR")" grep -q '^memory  decode 192x192: tiled, tile 64,' "$ERR"
        expect_ok "encode --tile 64" -- "$CLI" encode --tile 64 -m "$FX" "$mem/big-img.npy" "$mem/big-enc-t64.npy"
        pycheck "encode --tile 64 equals the untiled encode to 1e-4" cmp "$mem/big-enc-t64.npy" "$mem/big-enc.npy" 1e-4
        run "$CLI" info -m "$FX"
        wm=$(info_value weights_memory "$OUT" | cut -d' ' -f1)
        case $wm in
        '' | *[!0-9]*) nok "info prints weights_memory (got '$wm')" ;;
        *) expect "info prints weights_memory ($wm bytes)" "zero" [ "$wm" -gt 0 ] ;;
        esac

        # --max-memory: the whole process. One byte is too little; the error
        # says the minimum, which then runs (tiled: 192 x 192 untiled needs more).
        expect_fail "--max-memory too small: the minimum is said" 1 "at least" "$mem/mm1.npy" -- \
            "$CLI" decode --max-memory 1 -m "$FX" "$mem/big-lat.npy" "$mem/mm1.npy"
        need=$(sed -n 's/.*needs at least \([0-9]*\)M.*/\1/p' "$ERR")
        if [ -n "$need" ]; then
            run "$CLI" decode -v --max-memory "${need}M" -m "$FX" "$mem/big-lat.npy" "$mem/mm.npy"
            why=""
            [ "$rc" -eq 0 ] || why="exit $rc: $(firsterr)"
            grep -q '^memory  decode 192x192: tiled, tile [0-9]*,' "$ERR" || why="$why; $(grep '^memory' "$ERR")"
            check "--max-memory ${need}M (the minimum said) runs tiled" "${why#; }"
            pycheck "--max-memory at that minimum runs tiled, same image to 1e-4" cmp "$mem/mm.npy" "$mem/big-dec.npy" 1e-4
        else
            nok "--max-memory at that minimum runs tiled, same image to 1e-4 (no minimum in '$(firsterr)')"
        fi
        run "$CLI" decode -v --max-memory 64G -m "$FX" "$mem/big-lat.npy" "$mem/mm64.npy"
        expect "--max-memory large runs untiled" "$(grep '^memory' "$ERR")" grep -q '^memory  decode 192x192: untiled,' "$ERR"
        run "$CLI" decode -v --max-memory 64G --tile 32 -m "$FX" "$mem/big-lat.npy" "$mem/mmt.npy"
        expect "--tile with --max-memory" "$(grep '^memory' "$ERR")" grep -q '^memory  decode 192x192: tiled, tile 32,' "$ERR"

        # --circular: wrap-around padding commutes with rolling the input.
        py roll "$mem/big-lat.npy" "$mem/big-lat-r.npy" 5 7
        expect_ok "decode --circular" -- "$CLI" decode --circular -m "$FX" "$mem/big-lat.npy" "$mem/circ.npy"
        expect_ok "decode --circular of the rolled latent" -- \
            "$CLI" decode --circular -m "$FX" "$mem/big-lat-r.npy" "$mem/circ-r.npy"
        py roll "$mem/circ.npy" "$mem/circ-rolled.npy" 10 14
        pycheck "decode --circular: rolling the latent rolls the image" cmp "$mem/circ-r.npy" "$mem/circ-rolled.npy" 1e-4
        expect_ok "encode --circular" -- "$CLI" encode --circular -m "$FX" "$mem/big-img.npy" "$mem/circ-lat.npy"
        # 22 x 34: multiples of f = 2 only; wrap-around needs nothing more
        py mkarr "$mem/img22.npy" 1 3 22 34 1
        expect_ok "encode --circular of sides that are multiples of f only" -- \
            "$CLI" encode --circular -m "$FX" "$mem/img22.npy" "$mem/circ22.npy"
    fi
else
    skip "memory options" "$FX or python3 not found"
fi

# ---- the reference fixtures in ../shared -------------------------------------------
fx=$SHARED/fixtures
if [ -d "$fx/tiny-ldm-f32" ]; then
    for fixture in tiny-ldm-f32 small-diffusers-f16 flux16-diffusers-bf16 tiny3-legacy-f32; do
        fd=$fx/$fixture
        [ -f "$fd/model.safetensors" ] || continue
        o=$work/fx-$fixture
        mkdir -p "$o"
        m=$fd/model.safetensors
        expect_ok "$fixture: encode --raw image.npy" -- "$CLI" encode --raw -m "$m" "$fd/image.npy" "$o/latent.npy"
        pycheck "$fixture: latent matches the reference to 1e-4" cmp "$o/latent.npy" "$fd/latent.npy" 1e-4
        expect_ok "$fixture: decode --raw latent.npy" -- "$CLI" decode --raw -m "$m" "$fd/latent.npy" "$o/decoded.npy"
        pycheck "$fixture: decoded matches the reference to 1e-4" cmp "$o/decoded.npy" "$fd/decoded.npy" 1e-4
        expect_ok "$fixture: decode --raw zin.npy" -- "$CLI" decode --raw -m "$m" "$fd/zin.npy" "$o/zdecoded.npy"
        pycheck "$fixture: zdecoded matches the reference to 1e-4" cmp "$o/zdecoded.npy" "$fd/zdecoded.npy" 1e-4
        run "$CLI" info -m "$m"
        cp "$OUT" "$o/info.txt"
        if [ "$have_py" -eq 1 ]; then
            want=$(py params "$m")
            got=$(info_value parameters "$o/info.txt")
            check "$fixture: info parameters: $want" "$([ "$got" = "$want" ] || echo "got '$got'")"
        fi
    done
    # The model checks again on real architectures: 4 levels (f = 8), and 16
    # latent channels with a shift factor and no quant convs.
    model_checks "$work/m-tiny-ldm-f32" "$fx/tiny-ldm-f32/model.safetensors"
    if [ -f "$fx/flux16-diffusers-bf16/model.safetensors" ]; then
        model_checks "$work/m-flux16-diffusers-bf16" "$fx/flux16-diffusers-bf16/model.safetensors"
    fi
    o=$work/fx-tiny-ldm-f32
    why=""
    for kv in "naming: ldm" "levels: 4" "block_out_channels: 32,64,64,64" "layers_per_block: 2" \
        "latent_channels: 4" "norm_num_groups: 32" "weight_dtype: F32" \
        "scaling_factor: 0.13025" "downsample_factor: 8" "quant_conv: yes"; do
        grep -qxF "$kv" "$o/info.txt" || why="$why; no '$kv'"
    done
    check "tiny-ldm-f32: info describes the architecture" "${why#; }"
    if [ "$have_py" -eq 1 ]; then
        py mkpng "$o/odd.png" 20 12
        expect_fail "tiny-ldm-f32: a 20x12 PNG is refused (multiples of 8)" 1 "odd.png" "$o/odd.npy" -- \
            "$CLI" encode -m "$fx/tiny-ldm-f32/model.safetensors" "$o/odd.png" "$o/odd.npy"
        expect_ok "tiny-ldm-f32: --crop encodes a 20x12 PNG as 16x8" -- \
            "$CLI" encode --crop -m "$fx/tiny-ldm-f32/model.safetensors" "$o/odd.png" "$o/odd.npy"
        shape_is "tiny-ldm-f32: --crop latent shape" "$o/odd.npy" "1,4,1,2"
        run "$CLI" roundtrip --crop -m "$fx/tiny-ldm-f32/model.safetensors" "$o/odd.png" "$o/odd-rt.png"
        why=""
        [ "$rc" -eq 0 ] || why="exit $rc: $(firsterr)"
        grep -qE '^PSNR [0-9.]+ dB$' "$OUT" || why="$why; no PSNR line"
        check "tiny-ldm-f32: roundtrip --crop of a 20x12 PNG" "${why#; }"
        pycheck "tiny-ldm-f32: roundtrip --crop writes 16x8" ihdr "$o/odd-rt.png" 16 8
    fi
else
    skip "reference fixtures" "$fx/tiny-ldm-f32 not found"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
