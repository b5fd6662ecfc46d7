#!/usr/bin/python3
"""vae_ref.py - a self-contained PyTorch reference of the Stable Diffusion VAE.

A re-implementation of the AutoencoderKL encoder and decoder of Stability AI's
generative-models (sgm/modules/diffusionmodules/model.py, the code that trained
the SDXL VAE), written so that it needs nothing but torch and numpy:

  ResnetBlock   GroupNorm(eps=1e-6, affine) -> SiLU -> conv3x3, twice; a 1x1
                "nin_shortcut" on the skip path when the channel count changes
  Downsample    zero pad (left 0, right 1, top 0, bottom 1), conv3x3 stride 2
  Upsample      nearest-neighbour 2x, conv3x3
  AttnBlock     GroupNorm, 1x1 q/k/v, one head, softmax(q k^T / sqrt(C)) v,
                1x1 proj_out, residual
  Encoder       conv_in; per level layers_per_block resnets and a Downsample on
                all but the last level; mid = block_1, attn_1, block_2;
                norm_out, SiLU, conv_out to 2 * latent_channels (mean, logvar)
  Decoder       conv_in; mid; the levels from the last (widest) to level 0,
                layers_per_block + 1 resnets each and an Upsample on all but
                level 0; norm_out, SiLU, conv_out to 3 channels
  quant_conv / post_quant_conv: 1x1 convolutions, both optional (absent in the
  16-channel Flux VAE).

Weights load from safetensors (F32, F16, BF16, F64; parsed here, no safetensors
package needed) in any of three namings: the original ldm/sgm names
(encoder.down.0.block.0..., mid.attn_1.q as 1x1 convs), diffusers names
(encoder.down_blocks.0.resnets.0..., mid_block.attentions.0.to_q as [C, C]
linears) and the older diffusers attention names (query/key/value/proj_attn),
with an optional "first_stage_model." or "vae." prefix.  The architecture comes
from config.json (diffusers style) or, without one, is inferred from the tensor
shapes (norm_num_groups cannot be inferred: 32 is assumed).

Usage (use Debian's /usr/bin/python3, which has torch):
  /usr/bin/python3 test/reference/vae_ref.py --check DIR [--double] [--tol T]
      runs the model on a fixture folder and prints max|ours-ref|/max|ref| for
      moments, latent, decoded and zdecoded; exits 1 if any exceeds --tol.
  /usr/bin/python3 test/reference/vae_ref.py --run MODELDIR [--size HxW]
      a forward pass on a random image (smoke test for generated weights).
"""

import argparse
import json
import os
import re
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GN_EPS = 1e-6

# ---------------------------------------------------------------------------
# safetensors and npy
# ---------------------------------------------------------------------------

_ST_DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
              "F64": ("<f8", 8)}


def read_safetensors(path):
    """Returns ({name: float32 or float64 ndarray}, {name: dtype}, metadata).
    F16 and BF16 widen exactly to float32."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (hlen,) = struct.unpack("<Q", blob[:8])
    if 8 + hlen > len(blob):
        raise ValueError("%s: header length %d past end of file" % (path, hlen))
    header = json.loads(blob[8:8 + hlen].decode("utf-8"))
    data = memoryview(blob)[8 + hlen:]
    meta = header.pop("__metadata__", None)
    tensors, dtypes = {}, {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
        npdt, size = _ST_DTYPES[dt]
        shape = tuple(int(s) for s in info["shape"])
        a, b = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if b - a != count * size or b > len(data):
            raise ValueError("%s: tensor %s has bad data_offsets" % (path, name))
        raw = np.frombuffer(data[a:b], dtype=npdt)
        if dt == "BF16":
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        elif dt == "F64":
            arr = raw.astype(np.float64)
        else:
            arr = raw.astype(np.float32)
        tensors[name] = arr.reshape(shape)
        dtypes[name] = dt
    return tensors, dtypes, meta


def _bf16_bits(x):
    """float -> bfloat16 bit patterns, round to nearest even (no NaN input)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def quantize(x, dtype):
    """The float64 values that x becomes when stored as dtype (F32/F16/BF16/F64)."""
    x = np.asarray(x, dtype=np.float64)
    if dtype == "F64":
        return x.copy()
    if dtype == "F32":
        return x.astype(np.float32).astype(np.float64)
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float64)
    if dtype == "BF16":
        # float64 -> float32 -> bf16 can double-round; values from quantize()
        # are exact already, and weights drawn here are far from ties.
        return (_bf16_bits(x).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    raise ValueError("unknown dtype %s" % dtype)


def _encode(x, dtype):
    x = np.asarray(x, dtype=np.float64)
    if dtype == "F64":
        return x.astype("<f8").tobytes()
    if dtype == "F32":
        return x.astype("<f4").tobytes()
    if dtype == "F16":
        return x.astype("<f2").tobytes()
    if dtype == "BF16":
        return _bf16_bits(x).astype("<u2").tobytes()
    raise ValueError("unknown dtype %s" % dtype)


def write_safetensors(path, tensors, dtype, metadata=None):
    """Writes {name: ndarray} with every tensor in one dtype; keys sorted, data
    contiguous in key order, header padded with spaces to a multiple of 8."""
    header, chunks, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        raw = _encode(arr, dtype)
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def load_npy(path):
    return np.load(path, allow_pickle=False)


def save_npy(path, x):
    np.save(path, np.ascontiguousarray(np.asarray(x, dtype="<f4")), allow_pickle=False)


# ---------------------------------------------------------------------------
# key names: ldm (canonical here) <-> diffusers / legacy diffusers
# ---------------------------------------------------------------------------

PREFIXES = ("first_stage_model.", "vae.")
_ATTN_FROM = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v",
              "to_out.0": "proj_out", "query": "q", "key": "k", "value": "v",
              "proj_attn": "proj_out"}
_ATTN_TO = {"diffusers": {"norm": "group_norm", "q": "to_q", "k": "to_k",
                          "v": "to_v", "proj_out": "to_out.0"},
            "legacy": {"norm": "group_norm", "q": "query", "k": "key",
                       "v": "value", "proj_out": "proj_attn"}}


def strip_prefix(sd):
    """Drops a first_stage_model. / vae. prefix (and every key without it,
    e.g. the UNet of a full checkpoint)."""
    for p in PREFIXES:
        if any(k.startswith(p) for k in sd):
            return {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}, p
    return dict(sd), ""


def _num_levels(keys):
    lv = set()
    for k in keys:
        m = re.match(r"(?:encoder\.down|encoder\.down_blocks|decoder\.up|decoder\.up_blocks)\.(\d+)\.", k)
        if m:
            lv.add(int(m.group(1)))
    if not lv:
        raise ValueError("no encoder/decoder level keys found")
    return max(lv) + 1


def to_ldm_key(k, nlev):
    """One key (prefix already stripped) in ldm naming."""
    m = re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$", k)
    if m:
        return "encoder.down.%s.block.%s.%s" % (m.group(1), m.group(2),
                                               m.group(3).replace("conv_shortcut", "nin_shortcut"))
    m = re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$", k)
    if m:
        return "encoder.down.%s.downsample.conv.%s" % (m.group(1), m.group(2))
    m = re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$", k)
    if m:
        return "decoder.up.%d.block.%s.%s" % (nlev - 1 - int(m.group(1)), m.group(2),
                                             m.group(3).replace("conv_shortcut", "nin_shortcut"))
    m = re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$", k)
    if m:
        return "decoder.up.%d.upsample.conv.%s" % (nlev - 1 - int(m.group(1)), m.group(2))
    m = re.match(r"(encoder|decoder)\.mid_block\.resnets\.([01])\.(.*)$", k)
    if m:
        return "%s.mid.block_%d.%s" % (m.group(1), int(m.group(2)) + 1, m.group(3))
    m = re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)$", k)
    if m:
        if m.group(2) not in _ATTN_FROM:
            raise ValueError("unknown attention tensor %s" % k)
        return "%s.mid.attn_1.%s.%s" % (m.group(1), _ATTN_FROM[m.group(2)], m.group(3))
    m = re.match(r"(encoder|decoder)\.conv_norm_out\.(.*)$", k)
    if m:
        return "%s.norm_out.%s" % (m.group(1), m.group(2))
    return k


def from_ldm_key(k, naming, nlev):
    """One ldm key in `naming` (ldm, diffusers or legacy); no prefix."""
    if naming == "ldm":
        return k
    m = re.match(r"encoder\.down\.(\d+)\.block\.(\d+)\.(.*)$", k)
    if m:
        return "encoder.down_blocks.%s.resnets.%s.%s" % (
            m.group(1), m.group(2), m.group(3).replace("nin_shortcut", "conv_shortcut"))
    m = re.match(r"encoder\.down\.(\d+)\.downsample\.conv\.(.*)$", k)
    if m:
        return "encoder.down_blocks.%s.downsamplers.0.conv.%s" % (m.group(1), m.group(2))
    m = re.match(r"decoder\.up\.(\d+)\.block\.(\d+)\.(.*)$", k)
    if m:
        return "decoder.up_blocks.%d.resnets.%s.%s" % (
            nlev - 1 - int(m.group(1)), m.group(2), m.group(3).replace("nin_shortcut", "conv_shortcut"))
    m = re.match(r"decoder\.up\.(\d+)\.upsample\.conv\.(.*)$", k)
    if m:
        return "decoder.up_blocks.%d.upsamplers.0.conv.%s" % (nlev - 1 - int(m.group(1)), m.group(2))
    m = re.match(r"(encoder|decoder)\.mid\.block_([12])\.(.*)$", k)
    if m:
        return "%s.mid_block.resnets.%d.%s" % (m.group(1), int(m.group(2)) - 1, m.group(3))
    m = re.match(r"(encoder|decoder)\.mid\.attn_1\.(\w+)\.(weight|bias)$", k)
    if m:
        return "%s.mid_block.attentions.0.%s.%s" % (m.group(1), _ATTN_TO[naming][m.group(2)], m.group(3))
    m = re.match(r"(encoder|decoder)\.norm_out\.(.*)$", k)
    if m:
        return "%s.conv_norm_out.%s" % (m.group(1), m.group(2))
    return k


def _is_attn_proj_weight(ldm_key):
    return re.match(r"(encoder|decoder)\.mid\.attn_1\.(q|k|v|proj_out)\.weight$", ldm_key) is not None


def canonicalize(sd):
    """Any naming -> ldm naming with the attention projections as 1x1 convs."""
    sd, _ = strip_prefix(sd)
    nlev = _num_levels(sd.keys())
    out = {}
    for k, v in sd.items():
        nk = to_ldm_key(k, nlev)
        if _is_attn_proj_weight(nk) and v.ndim == 2:
            v = v.reshape(v.shape[0], v.shape[1], 1, 1)
        if nk in out:
            raise ValueError("two tensors map to %s" % nk)
        out[nk] = v
    return out


def rename(sd_ldm, naming, prefix=""):
    """ldm naming -> naming (ldm, diffusers, legacy), with a prefix; diffusers
    and legacy store the attention projections as [C, C] linears."""
    nlev = _num_levels(sd_ldm.keys())
    out = {}
    for k, v in sd_ldm.items():
        if naming != "ldm" and _is_attn_proj_weight(k):
            v = v.reshape(v.shape[0], v.shape[1])
        out[prefix + from_ldm_key(k, naming, nlev)] = v
    return out


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------

def default_config():
    return {"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
            "latent_channels": 4, "norm_num_groups": 32, "in_channels": 3,
            "out_channels": 3, "scaling_factor": 0.13025, "shift_factor": None,
            "use_quant_conv": True, "use_post_quant_conv": True}


def load_config(path):
    cfg = default_config()
    with open(path) as f:
        user = json.load(f)
    for k in cfg:
        if k in user:
            cfg[k] = user[k]
    if cfg["use_quant_conv"] is None:
        cfg["use_quant_conv"] = True
    if cfg["use_post_quant_conv"] is None:
        cfg["use_post_quant_conv"] = True
    return cfg


def infer_config(sd_ldm):
    """The architecture from the shapes of an ldm-named state dict.
    norm_num_groups and scaling_factor are not in the shapes: SDXL's defaults."""
    cfg = default_config()
    nlev = _num_levels(sd_ldm.keys())
    cfg["block_out_channels"] = [int(sd_ldm["encoder.down.%d.block.0.conv1.weight" % i].shape[0])
                                 for i in range(nlev)]
    nblk = set()
    for k in sd_ldm:
        m = re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)
        if m:
            nblk.add(int(m.group(1)))
    cfg["layers_per_block"] = max(nblk) + 1
    cfg["latent_channels"] = int(sd_ldm["decoder.conv_in.weight"].shape[1])
    cfg["in_channels"] = int(sd_ldm["encoder.conv_in.weight"].shape[1])
    cfg["out_channels"] = int(sd_ldm["decoder.conv_out.weight"].shape[0])
    cfg["use_quant_conv"] = "quant_conv.weight" in sd_ldm
    cfg["use_post_quant_conv"] = "post_quant_conv.weight" in sd_ldm
    return cfg


# ---------------------------------------------------------------------------
# the model (module names equal the ldm keys, so loading is strict)
# ---------------------------------------------------------------------------

def Normalize(c, groups):
    return nn.GroupNorm(num_groups=groups, num_channels=c, eps=GN_EPS, affine=True)


def nonlinearity(x):
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = Normalize(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = Normalize(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x):
        h = self.conv1(nonlinearity(self.norm1(x)))
        h = self.conv2(nonlinearity(self.norm2(h)))   # dropout is 0 in the VAE
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    """Single head over all H*W positions, scale 1/sqrt(C)."""

    def __init__(self, c, groups):
        super().__init__()
        self.norm = Normalize(c, groups)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)        # b, hw, c
        k = k.reshape(b, c, hh * ww)                         # b, c, hw
        w_ = torch.bmm(q, k) * (float(c) ** -0.5)            # b, hw(q), hw(k)
        w_ = torch.softmax(w_, dim=2)
        v = v.reshape(b, c, hh * ww)
        h_ = torch.bmm(v, w_.permute(0, 2, 1)).reshape(b, c, hh, ww)
        return x + self.proj_out(h_)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Mid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, groups)
        self.attn_1 = AttnBlock(c, groups)
        self.block_2 = ResnetBlock(c, c, groups)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(self, chans, layers, latent, groups, in_ch=3):
        super().__init__()
        self.conv_in = nn.Conv2d(in_ch, chans[0], 3, 1, 1)
        self.down = nn.ModuleList()
        cin = chans[0]
        for i, c in enumerate(chans):
            lvl = nn.Module()
            lvl.block = nn.ModuleList()
            for _ in range(layers):
                lvl.block.append(ResnetBlock(cin, c, groups))
                cin = c
            if i != len(chans) - 1:
                lvl.downsample = Downsample(c)
            self.down.append(lvl)
        self.mid = Mid(cin, groups)
        self.norm_out = Normalize(cin, groups)
        self.conv_out = nn.Conv2d(cin, 2 * latent, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lvl in self.down:
            for blk in lvl.block:
                h = blk(h)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        h = self.mid(h)
        return self.conv_out(nonlinearity(self.norm_out(h)))


class Decoder(nn.Module):
    """up[0] is the LAST level run (lowest channel count, no Upsample);
    the decoder runs up[n-1] first."""

    def __init__(self, chans, layers, latent, groups, out_ch=3):
        super().__init__()
        cin = chans[-1]
        self.conv_in = nn.Conv2d(latent, cin, 3, 1, 1)
        self.mid = Mid(cin, groups)
        levels = []
        for i in reversed(range(len(chans))):
            lvl = nn.Module()
            lvl.block = nn.ModuleList()
            for _ in range(layers + 1):
                lvl.block.append(ResnetBlock(cin, chans[i], groups))
                cin = chans[i]
            if i != 0:
                lvl.upsample = Upsample(cin)
            levels.insert(0, lvl)
        self.up = nn.ModuleList(levels)
        self.norm_out = Normalize(cin, groups)
        self.conv_out = nn.Conv2d(cin, out_ch, 3, 1, 1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            lvl = self.up[i]
            for blk in lvl.block:
                h = blk(h)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(h)
        return self.conv_out(nonlinearity(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, L = list(cfg["block_out_channels"]), int(cfg["layers_per_block"])
        lat, g = int(cfg["latent_channels"]), int(cfg["norm_num_groups"])
        self.latent_channels = lat
        self.encoder = Encoder(ch, L, lat, g, int(cfg.get("in_channels", 3)))
        self.decoder = Decoder(ch, L, lat, g, int(cfg.get("out_channels", 3)))
        if cfg.get("use_quant_conv", True):
            self.quant_conv = nn.Conv2d(2 * lat, 2 * lat, 1)
        if cfg.get("use_post_quant_conv", True):
            self.post_quant_conv = nn.Conv2d(lat, lat, 1)

    def moments(self, x):
        """encoder + quant_conv: [mean, logvar] on the channel axis."""
        h = self.encoder(x)
        if hasattr(self, "quant_conv"):
            h = self.quant_conv(h)
        return h

    def encode(self, x):
        """The posterior mean, raw (no scaling_factor / shift_factor)."""
        return self.moments(x)[:, :self.latent_channels]

    def decode(self, z):
        """Raw decode (z unscaled), not clamped."""
        if hasattr(self, "post_quant_conv"):
            z = self.post_quant_conv(z)
        return self.decoder(z)


def build_model(cfg, sd_ldm, dtype=torch.float32):
    """An AutoencoderKL with the weights of an ldm-named dict of ndarrays."""
    model = AutoencoderKL(cfg).to(dtype)
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in sd_ldm.items()}
    model.load_state_dict(state, strict=True)   # copies, casting to dtype
    return model.eval()


def load_model_dir(path, dtype=torch.float32):
    """(model, cfg, info) from a folder with model.safetensors [+ config.json]."""
    raw, dtypes, _ = read_safetensors(os.path.join(path, "model.safetensors"))
    sd, prefix = strip_prefix(raw)
    sd = canonicalize(sd)
    cpath = os.path.join(path, "config.json")
    if os.path.exists(cpath):
        cfg, src = load_config(cpath), "config.json"
    else:
        cfg, src = infer_config(sd), "inferred from shapes"
    info = {"prefix": prefix, "config": src, "dtypes": sorted(set(dtypes.values())),
            "params": int(sum(v.size for v in sd.values()))}
    return build_model(cfg, sd, dtype), cfg, info


def run(model, x, fn, dtype):
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(dtype)
        return getattr(model, fn)(t).double().numpy()


def rel_err(ours, ref):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        raise ValueError("shape %s != reference %s" % (ours.shape, ref.shape))
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-30))


def check(path, dtype, tol):
    torch.manual_seed(0)
    model, cfg, info = load_model_dir(path, dtype)
    print("%s: %s, layers %d, latent %d, groups %d, quant_conv %s/%s, weights %s%s, %d params, config %s"
          % (path, cfg["block_out_channels"], cfg["layers_per_block"], cfg["latent_channels"],
             cfg["norm_num_groups"], cfg["use_quant_conv"], cfg["use_post_quant_conv"],
             "/".join(info["dtypes"]), (", prefix " + info["prefix"]) if info["prefix"] else "",
             info["params"], info["config"]))
    ld = lambda n: load_npy(os.path.join(path, n))
    image, latent, zin = ld("image.npy"), ld("latent.npy"), ld("zin.npy")
    results = []
    mom = run(model, image, "moments", dtype)
    results.append(("moments", rel_err(mom, ld("moments.npy"))))
    results.append(("latent", rel_err(mom[:, :cfg["latent_channels"]], latent)))
    # decode the fixture's own latent, so the decoder is checked on its own
    results.append(("decoded", rel_err(run(model, latent, "decode", dtype), ld("decoded.npy"))))
    results.append(("zdecoded", rel_err(run(model, zin, "decode", dtype), ld("zdecoded.npy"))))
    ok = True
    for name, e in results:
        bad = e > tol
        ok = ok and not bad
        print("  %-9s max|ours-ref|/max|ref| = %.3e%s" % (name, e, "  > tol %.0e FAIL" % tol if bad else ""))
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", metavar="DIR", nargs="+", help="fixture folder(s) to check")
    g.add_argument("--run", metavar="MODELDIR", help="forward pass on a random image")
    ap.add_argument("--double", action="store_true", help="compute in float64 (default float32)")
    ap.add_argument("--tol", type=float, default=1e-5, help="--check tolerance (default 1e-5)")
    ap.add_argument("--size", default="32x32", help="--run image size HxW (default 32x32)")
    a = ap.parse_args(argv)
    dtype = torch.float64 if a.double else torch.float32
    if a.check:
        ok = all([check(d, dtype, a.tol) for d in a.check])
        print("OK" if ok else "FAILED")
        return 0 if ok else 1
    h, w = (int(s) for s in a.size.lower().split("x"))
    model, cfg, info = load_model_dir(a.run, dtype)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(1, 3, h, w))
    mom = run(model, x, "moments", dtype)
    dec = run(model, mom[:, :cfg["latent_channels"]], "decode", dtype)
    print("%s: %d params (%s, config %s%s), moments %s std %.3f, decoded %s std %.3f, finite %s"
          % (a.run, info["params"], "/".join(info["dtypes"]), info["config"],
             (", prefix " + info["prefix"]) if info["prefix"] else "", mom.shape, mom.std(),
             dec.shape, dec.std(), bool(np.isfinite(mom).all() and np.isfinite(dec).all())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
