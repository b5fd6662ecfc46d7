#!/usr/bin/env python3
"""sdxlvae_ctypes.py - libsdxlvae from Python with ctypes alone: no numpy, no
compiler, no build step. Copy this file next to your code.

As a module:

    import array, sdxlvae_ctypes as sv
    vae = sv.Model("sdxl_vae.safetensors")
    latent = vae.encode(image, 1, 1024, 1024)   # image: 3*1024*1024 floats in [-1, 1]
    pixels = vae.decode(latent, 1, 128, 128)    # array('f'), NCHW
    vae.close()

`image` may be anything with the buffer protocol holding float32 values
(array.array('f'), a ctypes array, a numpy float32 array, bytes); results are
array.array('f'). Failures raise sv.Error with the library's message.

As a program:

    sdxlvae_ctypes.py info MODEL
    sdxlvae_ctypes.py encode MODEL IMAGE.npy LATENT.npy [--raw]
    sdxlvae_ctypes.py decode MODEL LATENT.npy IMAGE.npy [--raw]
    sdxlvae_ctypes.py --check FIXTURE_DIR...

--check decodes FIXTURE_DIR/latent.npy and encodes FIXTURE_DIR/image.npy
(both raw, as in test/fixtures and ../shared/fixtures) and compares them with
decoded.npy and latent.npy: max|ours - ref| / max|ref| must be <= 1e-4. That
is also the quickest way to compare this library with your own pipeline:
save diffusers' output as .npy and point --check at the folder.

The library is found as "libsdxlvae.so.1" (the SONAME: installed, or on
LD_LIBRARY_PATH); set SDXLVAE_LIBRARY to a path to use another file.
"""

import array
import ast
import ctypes as C
import os
import struct
import sys

# ---- the C API ------------------------------------------------------------------


def _load_library():
    name = os.environ.get("SDXLVAE_LIBRARY") or "libsdxlvae.so.1"
    try:
        return C.CDLL(name)
    except OSError as e:
        sys.exit("cannot load %s: %s (install libsdxlvae, or set LD_LIBRARY_PATH or "
                 "SDXLVAE_LIBRARY)" % (name, e))


lib = _load_library()

PROGRESS_FN = C.CFUNCTYPE(C.c_int32, C.c_void_p, C.c_float, C.c_int32)


class RunOptions(C.Structure):
    _fields_ = [("size", C.c_uint32), ("flags", C.c_uint32),
                ("n_threads", C.c_int32), ("reserved", C.c_int32),
                ("seed", C.c_uint64),
                ("progress", PROGRESS_FN), ("progress_user", C.c_void_p)]


class LoadOptions(C.Structure):
    _fields_ = [("size", C.c_uint32), ("flags", C.c_uint32),
                ("n_threads", C.c_int32), ("reserved", C.c_int32),
                ("config_path", C.c_char_p)]


class ModelInfo(C.Structure):
    _fields_ = [("size", C.c_uint32), ("latent_channels", C.c_int32),
                ("levels", C.c_int32), ("block_out_channels", C.c_int32 * 8),
                ("layers_per_block", C.c_int32), ("norm_num_groups", C.c_int32),
                ("downsample_factor", C.c_int32), ("has_quant_conv", C.c_int32),
                ("has_post_quant_conv", C.c_int32), ("weight_dtype", C.c_int32),
                ("has_encoder", C.c_int32), ("has_decoder", C.c_int32),
                ("scaling_factor", C.c_float), ("shift_factor", C.c_float),
                ("norm_eps", C.c_float), ("parameter_count", C.c_uint64),
                ("family", C.c_char * 32), ("naming", C.c_char * 16)]


_FLOATS = C.POINTER(C.c_float)
_SIGNATURES = {
    "vae_version_string": (C.c_char_p, []),
    "vae_abi_version": (C.c_uint32, []),
    "vae_strerror": (C.c_char_p, [C.c_int32]),
    "vae_load_options_init": (None, [C.POINTER(LoadOptions), C.c_uint32]),
    "vae_load": (C.c_int32, [C.c_char_p, C.POINTER(LoadOptions), C.POINTER(C.c_void_p)]),
    "vae_free": (None, [C.c_void_p]),
    "vae_get_info": (C.c_int32, [C.c_void_p, C.POINTER(ModelInfo)]),
    "vae_latent_channels": (C.c_int32, [C.c_void_p]),
    "vae_downsample_factor": (C.c_int32, [C.c_void_p]),
    "vae_run_options_init": (None, [C.POINTER(RunOptions), C.c_uint32]),
    "vae_encoded_size": (C.c_int32, [C.c_void_p, C.c_int32, C.c_int32, C.c_int32,
                                     C.POINTER(C.c_uint64)]),
    "vae_decoded_size": (C.c_int32, [C.c_void_p, C.c_int32, C.c_int32, C.c_int32,
                                     C.POINTER(C.c_uint64)]),
    "vae_encode": (C.c_int32, [C.c_void_p, _FLOATS, C.c_int32, C.c_int32, C.c_int32,
                               _FLOATS, C.c_uint64, C.POINTER(RunOptions)]),
    "vae_decode": (C.c_int32, [C.c_void_p, _FLOATS, C.c_int32, C.c_int32, C.c_int32,
                               _FLOATS, C.c_uint64, C.POINTER(RunOptions)]),
    "vae_last_error": (C.c_char_p, [C.c_void_p]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype, _fn.argtypes = _res, _args

# Every constant is a function too, so nothing is copied from the header.
for _name in ("vae_ok", "vae_err_cancelled", "vae_dtype_f32", "vae_dtype_f16",
              "vae_dtype_bf16", "vae_dtype_mixed", "vae_max_levels"):
    getattr(lib, _name).restype = C.c_int32
for _name in ("vae_flag_raw_latent", "vae_flag_sample", "vae_flag_direct_conv",
              "vae_run_options_size", "vae_load_options_size", "vae_model_info_size"):
    getattr(lib, _name).restype = C.c_uint32
OK = lib.vae_ok()
ERR_CANCELLED = lib.vae_err_cancelled()
FLAG_RAW_LATENT = lib.vae_flag_raw_latent()
FLAG_SAMPLE = lib.vae_flag_sample()
FLAG_DIRECT_CONV = lib.vae_flag_direct_conv()
DTYPES = {lib.vae_dtype_f32(): "F32", lib.vae_dtype_f16(): "F16",
          lib.vae_dtype_bf16(): "BF16", lib.vae_dtype_mixed(): "mixed"}

# The structs above must not be larger than the library's: it would refuse
# them only if a field it does not know were set, but a smaller library is
# older than this file, which then should not be used with it.
for _cls, _fn in ((RunOptions, lib.vae_run_options_size), (LoadOptions, lib.vae_load_options_size),
                  (ModelInfo, lib.vae_model_info_size)):
    if C.sizeof(_cls) > _fn():
        sys.exit("%s is %d bytes here, %d in the library: the library is older than "
                 "this binding" % (_cls.__name__, C.sizeof(_cls), _fn()))
if lib.vae_max_levels() != 8:  # ModelInfo.block_out_channels
    sys.exit("VAE_MAX_LEVELS is %d, this binding expects 8" % lib.vae_max_levels())


class Error(Exception):
    """A failed call: .status is the VAE_ERR_* code."""

    def __init__(self, status, message):
        super().__init__(message or lib.vae_strerror(status).decode())
        self.status = status


def _float_buffer(data, count, what):
    """A ctypes float pointer over data (no copy when it is writable)."""
    mv = memoryview(data).cast("B")
    if mv.nbytes != 4 * count:
        raise Error(-1, "%s holds %d bytes, %d floats (%d bytes) expected"
                    % (what, mv.nbytes, count, 4 * count))
    if mv.readonly:
        mv = memoryview(bytearray(mv))
    return C.cast((C.c_char * mv.nbytes).from_buffer(mv), _FLOATS)


class Model:
    """A loaded VAE; close() it (or use `with`) to free it."""

    def __init__(self, path, n_threads=0, config_path=None):
        lo = LoadOptions()
        # the size of *this* struct: the library zeroes exactly that many bytes
        lib.vae_load_options_init(C.byref(lo), C.sizeof(lo))
        lo.n_threads = n_threads
        lo.config_path = config_path.encode() if config_path else None
        self._h = C.c_void_p()
        rc = lib.vae_load(os.fsencode(path), C.byref(lo), C.byref(self._h))
        if rc != OK:
            # no handle yet: the message is the calling thread's
            raise Error(rc, lib.vae_last_error(None).decode())

    def close(self):
        if self._h:
            lib.vae_free(self._h)
            self._h = C.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check(self, rc):
        if rc != OK:
            raise Error(rc, lib.vae_last_error(self._h).decode())

    @property
    def latent_channels(self):
        return lib.vae_latent_channels(self._h)

    @property
    def downsample_factor(self):
        return lib.vae_downsample_factor(self._h)

    def info(self):
        info = ModelInfo()
        info.size = C.sizeof(ModelInfo)
        self._check(lib.vae_get_info(self._h, C.byref(info)))
        return info

    def _options(self, flags, progress):
        ro = RunOptions()
        lib.vae_run_options_init(C.byref(ro), C.sizeof(ro))
        ro.flags = flags
        if progress is not None:
            # progress(fraction, stage) -> truthy to cancel; the ctypes
            # callback must stay alive for the call: it lives in ro.
            ro.progress = PROGRESS_FN(lambda _user, frac, stage: 1 if progress(frac, stage) else 0)
        return ro

    def encode(self, image, n, height, width, raw=False, progress=None):
        """n x 3 x height x width floats in [-1, 1] -> latents, array('f')."""
        count = C.c_uint64()
        self._check(lib.vae_encoded_size(self._h, n, height, width, C.byref(count)))
        out = array.array("f", bytes(4 * count.value))
        ro = self._options(FLAG_RAW_LATENT if raw else 0, progress)
        src = _float_buffer(image, n * 3 * height * width, "image")
        self._check(lib.vae_encode(self._h, src, n, height, width,
                                   _float_buffer(out, count.value, "latent"), count.value,
                                   C.byref(ro)))
        return out

    def decode(self, latent, n, lheight, lwidth, raw=False, progress=None):
        """n x C x lheight x lwidth latents -> images, array('f'), NCHW."""
        count = C.c_uint64()
        self._check(lib.vae_decoded_size(self._h, n, lheight, lwidth, C.byref(count)))
        out = array.array("f", bytes(4 * count.value))
        ro = self._options(FLAG_RAW_LATENT if raw else 0, progress)
        src = _float_buffer(latent, n * self.latent_channels * lheight * lwidth, "latent")
        self._check(lib.vae_decode(self._h, src, n, lheight, lwidth,
                                   _float_buffer(out, count.value, "image"), count.value,
                                   C.byref(ro)))
        return out


# ---- .npy without numpy ------------------------------------------------------------


def npy_read(path):
    """(shape, array('f')) of a little-endian float32 C-order .npy."""
    with open(path, "rb") as f:
        b = f.read()
    if b[:6] != b"\x93NUMPY":
        raise ValueError("%s: not a .npy file" % path)
    if b[6] == 1:
        hlen, off = struct.unpack("<H", b[8:10])[0], 10
    else:
        hlen, off = struct.unpack("<I", b[8:12])[0], 12
    hdr = ast.literal_eval(b[off:off + hlen].decode("latin1"))
    if hdr["descr"] not in ("<f4", "=f4") or hdr["fortran_order"]:
        raise ValueError("%s: not little-endian float32 in C order: %r" % (path, hdr))
    shape = tuple(hdr["shape"])
    count = 1
    for d in shape:
        count *= d
    a = array.array("f")
    a.frombytes(b[off + hlen:off + hlen + 4 * count])
    if len(a) != count:
        raise ValueError("%s: truncated" % path)
    if sys.byteorder == "big":
        a.byteswap()
    return shape, a


def npy_write(path, shape, data):
    a = array.array("f", data)
    if sys.byteorder == "big":
        a.byteswap()
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (tuple(shape),)
    hdr += " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode("latin1"))
        f.write(a.tobytes())


def rel_err(ours, ref):
    """max|ours - ref| / max|ref|, the project's parity measure."""
    num = max((abs(x - y) if x == x else float("inf") for x, y in zip(ours, ref)), default=0.0)
    den = max((abs(y) for y in ref), default=0.0)
    return num / den if den > 0 else num


# ---- the program -------------------------------------------------------------------


def _nchw(shape, what):
    if len(shape) == 3:
        shape = (1,) + shape
    if len(shape) != 4:
        raise ValueError("%s: expected N x C x H x W, got %r" % (what, shape))
    return shape


def cmd_info(model_path):
    with Model(model_path) as vae:
        i = vae.info()
        print("libsdxlvae %s: %s, %s names, block_out_channels %s, %d latent channels, "
              "%s weights, %d parameters, scaling factor %g, shift %g"
              % (lib.vae_version_string().decode(), i.family.decode(), i.naming.decode(),
                 list(i.block_out_channels[:i.levels]), i.latent_channels,
                 DTYPES.get(i.weight_dtype, "?"), i.parameter_count, i.scaling_factor,
                 i.shift_factor))


def cmd_run(verb, model_path, src, dst, raw):
    shape, data = npy_read(src)
    n, c, h, w = _nchw(shape, src)
    with Model(model_path) as vae:
        f = vae.downsample_factor
        if verb == "encode":
            out = vae.encode(data, n, h, w, raw=raw)
            oshape = (n, vae.latent_channels, h // f, w // f)
        else:
            out = vae.decode(data, n, h, w, raw=raw)
            oshape = (n, 3, h * f, w * f)
    npy_write(dst, oshape, out)
    print("%s: %s %r -> %s %r" % (verb, src, (n, c, h, w), dst, oshape))


def check_fixture(folder):
    """Decode and encode a fixture folder; returns True when within 1e-4."""
    good = True
    with Model(folder) as vae:
        i = vae.info()
        f = vae.downsample_factor
        seen = []

        def progress(frac, stage):
            seen.append((frac, stage))
            return False

        shape, lat = npy_read(os.path.join(folder, "latent.npy"))
        n, _, lh, lw = _nchw(shape, "latent.npy")
        img = vae.decode(lat, n, lh, lw, raw=True, progress=progress)
        _, ref = npy_read(os.path.join(folder, "decoded.npy"))
        e = rel_err(img, ref)
        fr = [s[0] for s in seen]
        ordered = all(a <= b for a, b in zip(fr, fr[1:])) and fr and fr[-1] == 1.0
        print("%s (%s, %s): decode %dx%dx%dx%d -> %dx3x%dx%d: max|ours - ref| / max|ref| = %.3g,"
              " %d progress reports%s"
              % (os.path.basename(folder.rstrip("/")), i.family.decode(),
                 DTYPES.get(i.weight_dtype, "?"), n, i.latent_channels, lh, lw, n, lh * f,
                 lw * f, e, len(fr), " monotonic to 1.0" if ordered else " NOT monotonic to 1.0"))
        good = good and e <= 1e-4 and ordered

        shape, image = npy_read(os.path.join(folder, "image.npy"))
        n, _, h, w = _nchw(shape, "image.npy")
        lat2 = vae.encode(image, n, h, w, raw=True)
        e = rel_err(lat2, lat)
        print("%s: encode %dx3x%dx%d -> %dx%dx%dx%d: max|ours - ref| / max|ref| = %.3g"
              % (os.path.basename(folder.rstrip("/")), n, h, w, n, i.latent_channels, h // f,
                 w // f, e))
        good = good and e <= 1e-4

        # Cancelling: the first report says stop; the handle stays usable.
        try:
            vae.decode(lat, n, lh, lw, raw=True, progress=lambda frac, stage: True)
            print("cancel: the call was not cancelled")
            good = False
        except Error as err:
            again = vae.decode(lat, n, lh, lw, raw=True)
            same = again == img
            print("cancel: status %d (%s), then decoded again: %s"
                  % (err.status, lib.vae_strerror(err.status).decode(),
                     "identical" if same else "DIFFERENT"))
            good = good and err.status == ERR_CANCELLED and same
    return good


def main(argv):
    args = [a for a in argv if a != "--raw"]
    raw = len(args) != len(argv)
    if len(args) >= 2 and args[0] == "--check":
        ok = all([check_fixture(d) for d in args[1:]])
        print("check: %s" % ("ok" if ok else "FAILED"))
        return 0 if ok else 1
    if len(args) == 2 and args[0] == "info":
        cmd_info(args[1])
        return 0
    if len(args) == 4 and args[0] in ("encode", "decode"):
        cmd_run(args[0], args[1], args[2], args[3], raw)
        return 0
    sys.stderr.write(__doc__.split("As a program:")[1].split("--check decodes")[0])
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (Error, ValueError, OSError) as e:
        sys.exit("sdxlvae_ctypes: %s" % e)
