#!/usr/bin/env python3
"""make_corpus.py - (re)writes the seed corpora of test/fuzz/corpus/.

    python3 test/fuzz/make_corpus.py          # from the repository root

Needs build/bin/gen_vae (`make tools`) and, for the PNG seeds, the PngSuite
images of ../shared/testdata/pngsuite (skipped with a message when absent:
the PNG seeds already committed stay). Deterministic: gen_vae is seeded.
Every seed is small (the loader's are a few KB) so that libFuzzer's
mutations stay fast; the whole corpus is well under 1 MB.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
OUT = os.path.join(ROOT, 'test', 'fuzz', 'corpus')
GEN = os.path.join(ROOT, 'build', 'bin', 'gen_vae')
FIX = os.path.join(ROOT, 'test', 'fixtures')
PNGSUITE = os.path.join(ROOT, '..', 'shared', 'testdata', 'pngsuite')


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- safetensors ----------------------------------------------------------------

def st_parse(b):
    n = struct.unpack('<Q', b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_build(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, bytes) -> file bytes, data
    contiguous in list order, header padded with spaces to 8 bytes."""
    hdr, off, data = {}, 0, b''
    if metadata is not None:
        hdr['__metadata__'] = metadata
    for name, dtype, shape, raw in tensors:
        hdr[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [off, off + len(raw)]}
        off += len(raw)
        data += raw
    h = json.dumps(hdr, separators=(',', ':')).encode()
    if pad:
        h += b' ' * ((8 - len(h) % 8) % 8)
    return struct.pack('<Q', len(h)) + h + data


def st_tensors(b):
    """file bytes -> [(name, dtype, shape, bytes)] sorted by name."""
    hdr, data = st_parse(b)
    out = []
    for k, v in hdr.items():
        if k == '__metadata__':
            continue
        o0, o1 = v['data_offsets']
        out.append((k, v['dtype'], v['shape'], data[o0:o1]))
    out.sort(key=lambda t: t[0])
    return out


def gen(outdir, *args):
    subprocess.run([GEN, *args, outdir], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(outdir, 'model.safetensors'), 'rb') as f:
        st = f.read()
    with open(os.path.join(outdir, 'config.json'), 'rb') as f:
        cfg = f.read()
    return st, cfg


def loader_input(st, cfg=b'', named=False):
    w = len(cfg) | (0x80000000 if named else 0)
    return struct.pack('<I', w) + cfg + st


def main():
    if not os.access(GEN, os.X_OK):
        sys.exit('make_corpus.py: build/bin/gen_vae is missing: run `make tools` first')
    for h in ('safetensors', 'config', 'loader', 'npy'):
        shutil.rmtree(os.path.join(OUT, h), ignore_errors=True)
    tmp = tempfile.mkdtemp()
    try:
        models = {
            # 1 level, 1 channel: the smallest model gen_vae writes
            'ldm-c1-f16': gen(os.path.join(tmp, 'a'), '--channels', '1', '--layers', '1',
                              '--groups', '1', '--latent', '1', '--dtype', 'f16'),
            'legacy-c1-f16-noquant': gen(os.path.join(tmp, 'b'), '--channels', '1', '--layers',
                                         '1', '--groups', '1', '--latent', '1', '--dtype',
                                         'f16', '--naming', 'legacy', '--no-quant-conv'),
            # 2 levels (a Downsample and an Upsample), 2 latent channels
            'diffusers-c2x2-bf16': gen(os.path.join(tmp, 'c'), '--channels', '2,2', '--layers',
                                       '1', '--groups', '2', '--latent', '2', '--dtype', 'bf16',
                                       '--naming', 'diffusers', '--seed', '1'),
            'ldm-c1x2-f32': gen(os.path.join(tmp, 'd'), '--channels', '1,2', '--layers', '1',
                                '--groups', '1', '--latent', '1', '--scale', '0.18215',
                                '--shift', '0.1', '--seed', '2'),
        }

        # safetensors: whole tiny models, cut-down fixtures, hand-made edge cases
        for name, (st, _) in models.items():
            put('safetensors', name + '.safetensors', st)
        for fx in sorted(os.listdir(FIX)):
            p = os.path.join(FIX, fx, 'model.safetensors')
            if not os.path.exists(p):
                continue
            with open(p, 'rb') as f:
                ts = st_tensors(f.read())
            # the header's first few tensors (names and dtypes as released)
            # with their data: a valid file of a few hundred bytes
            small = [t for t in ts if len(t[3]) <= 256][:6]
            put('safetensors', fx + '-head.safetensors', st_build(small, {'format': 'pt'}))
        f32 = struct.pack('<4f', 1.0, -2.0, 0.5, 3.0)
        put('safetensors', 'empty-header.safetensors', st_build([], pad=False))
        put('safetensors', 'one-f32.safetensors', st_build([('w', 'F32', [2, 2], f32)]))
        put('safetensors', 'scalar-and-empty.safetensors',
            st_build([('s', 'F16', [], b'\x00\x3c'), ('e', 'BF16', [0, 3], b''),
                      ('i', 'I64', [1], struct.pack('<q', 7))]))
        put('safetensors', 'all-dtypes.safetensors',
            st_build([(d, d, [1], b'\x01' * n) for d, n in
                      [('F64', 8), ('I32', 4), ('U32', 4), ('I16', 2), ('U16', 2), ('I8', 1),
                       ('U8', 1), ('BOOL', 1), ('F8_E4M3', 1), ('F8_E5M2', 1), ('U64', 8)]],
                     {'k': 'v'}))

        # config: every config.json we have, and variants
        cfgs = {}
        for fx in sorted(os.listdir(FIX)):
            p = os.path.join(FIX, fx, 'config.json')
            if os.path.exists(p):
                with open(p, 'rb') as f:
                    cfgs[fx] = f.read()
        for name, (_, cfg) in models.items():
            cfgs['gen-' + name] = cfg
        sdxl = json.loads(cfgs['micro-ldm-f32'])
        cfgs['unet'] = json.dumps({'_class_name': 'UNet2DConditionModel',
                                   'block_out_channels': [320, 640, 1280]}).encode()
        v = dict(sdxl, shift_factor=None, use_quant_conv=True, norm_eps=1e-6)
        cfgs['nulls'] = json.dumps(v).encode()
        cfgs['minimal'] = b'{}'
        cfgs['flux-compact'] = json.dumps({'_class_name': 'AutoencoderKL',
                                           'block_out_channels': [128, 256, 512, 512],
                                           'latent_channels': 16, 'scaling_factor': 0.3611,
                                           'shift_factor': 0.1159, 'use_quant_conv': False,
                                           'use_post_quant_conv': False},
                                          separators=(',', ':')).encode()
        for name, data in cfgs.items():
            put('config', name + '.json', data)

        # loader: [len][config.json][model.safetensors]
        for name, (st, cfg) in models.items():
            put('loader', name + '.bin', loader_input(st, cfg))
        st, cfg = models['ldm-c1-f16']
        put('loader', 'ldm-c1-f16-noconfig.bin', loader_input(st))
        put('loader', 'ldm-c1-f16-named-config.bin', loader_input(st, cfg, named=True))
        put('loader', 'ldm-c1-f16-unet-config.bin', loader_input(st, cfgs['unet']))
        # with the prefix of a full checkpoint, decoder-only, encoder-only
        ts = st_tensors(st)
        put('loader', 'ldm-c1-f16-prefixed-noconfig.bin',
            loader_input(st_build([('first_stage_model.' + t[0],) + t[1:] for t in ts])))
        st2, cfg2 = models['diffusers-c2x2-bf16']
        ts2 = st_tensors(st2)
        put('loader', 'diffusers-c2x2-decoder-only.bin',
            loader_input(st_build([t for t in ts2 if not t[0].startswith(('encoder.', 'quant_conv'))]),
                         cfg2))
        put('loader', 'diffusers-c2x2-encoder-only.bin',
            loader_input(st_build([t for t in ts2 if not t[0].startswith(('decoder.', 'post_quant'))]),
                         cfg2))

        # npy: the small fixture arrays and every dtype/version
        for fx in sorted(os.listdir(FIX)):
            for a in ('latent.npy', 'zin.npy', 'moments.npy'):
                p = os.path.join(FIX, fx, a)
                if os.path.exists(p) and os.path.getsize(p) <= 4096:
                    with open(p, 'rb') as f:
                        put('npy', fx + '-' + a, f.read())

        def npy(descr, shape, raw, major=1, extra=''):
            d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, %s}" % (descr, shape, extra)
            pre = 10 if major == 1 else 12
            d += ' ' * ((64 - (pre + len(d) + 1) % 64) % 64) + '\n'
            hl = struct.pack('<H', len(d)) if major == 1 else struct.pack('<I', len(d))
            return b'\x93NUMPY' + bytes([major, 0]) + hl + d.encode('latin1') + raw
        put('npy', 'f2-2x2.npy', npy('<f2', '(2, 2)', struct.pack('<4e', 1, -1, 0.5, 65504)))
        put('npy', 'f8-3.npy', npy('<f8', '(3,)', struct.pack('<3d', 1e39, -1e-46, 2.5)))
        put('npy', 'f4-0d.npy', npy('<f4', '()', struct.pack('<f', 7.0)))
        put('npy', 'f4-empty.npy', npy('<f4', '(0, 3)', b''))
        put('npy', 'f4-v2.npy', npy('<f4', '(1, 1, 2)', struct.pack('<2f', 1, 2), major=2))
        put('npy', 'f4-v3-long.npy', npy('<f4', '(2L,)', struct.pack('<2f', 3, 4), major=3))

        # png: a handful of small PngSuite images (every colour type and
        # depth, interlaced and not, a palette with transparency)
        pngs = ['basn0g01', 'basn0g02', 'basn0g04', 'basn0g08', 'basn0g16', 'basn2c08',
                'basn2c16', 'basn3p01', 'basn3p02', 'basn3p04', 'basn4a08', 'basn6a08',
                'ibasn0g01', 'ibasn0g16', 'ibasn2c08', 'ibasn3p04', 'ibasn4a08', 'ibasn6a08',
                'ftbbn0g01', 'ftbbn0g04']
        if os.path.isdir(PNGSUITE):
            shutil.rmtree(os.path.join(OUT, 'png'), ignore_errors=True)
            for p in pngs:
                with open(os.path.join(PNGSUITE, p + '.png'), 'rb') as f:
                    put('png', p + '.png', f.read())
        else:
            print('make_corpus.py: %s is absent: PNG seeds left as they are' % PNGSUITE)
    finally:
        shutil.rmtree(tmp)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print('make_corpus.py: %d bytes in %s' % (total, OUT))


if __name__ == '__main__':
    main()
