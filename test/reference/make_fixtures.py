#!/usr/bin/python3
"""make_fixtures.py - writes the project's own small VAE fixtures.

  /usr/bin/python3 test/reference/make_fixtures.py [--out test/fixtures] [NAME ...]

Each folder test/fixtures/<name>/ has the file set of ../shared/fixtures:
config.json (absent for micro-noconfig-*), model.safetensors, image.npy,
moments.npy, latent.npy, decoded.npy, zin.npy, zdecoded.npy, plus weights.json
(seed, key list, how it was made).  Weights are random (fixed seeds), rounded
to the stored dtype; the reference outputs are computed by vae_ref.py in
float64 from exactly the stored weights and the stored float32 inputs, then
rounded to float32.  decoded.npy is the decode of latent.npy as stored.
After writing, every folder is re-checked with vae_ref.py in float64 and float32.
Needs torch and numpy: use Debian's /usr/bin/python3.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vae_ref  # noqa: E402

# name, seed, block_out_channels, layers_per_block, latent, groups, dtype,
# naming, prefix, write config.json, quant convs, scaling, shift,
# image (N, H, W), zin (H, W)
SPECS = [
    dict(name="micro-ldm-f32", seed=1001, channels=[8, 16], layers=1, latent=4,
         groups=4, dtype="F32", naming="ldm", prefix="", config=True, quant=True,
         scaling=0.13025, shift=None, image=(1, 16, 24), zin=(5, 7)),
    dict(name="micro-diffusers-f16", seed=1002, channels=[8, 8, 16], layers=1, latent=4,
         groups=8, dtype="F16", naming="diffusers", prefix="", config=True, quant=True,
         scaling=0.18215, shift=None, image=(2, 16, 16), zin=(4, 6)),
    dict(name="micro-flux-bf16", seed=1003, channels=[8, 16], layers=2, latent=16,
         groups=2, dtype="BF16", naming="legacy", prefix="", config=True, quant=False,
         scaling=0.3611, shift=0.1159, image=(1, 24, 16), zin=(12, 8)),
    # No config.json: the architecture must come from the shapes, and the
    # groups from the default (32), so the channels are [32, 32].  F16 keeps
    # the file at ~430 KB (F32 would be ~860 KB).
    dict(name="micro-noconfig-f16", seed=1004, channels=[32, 32], layers=1, latent=4,
         groups=32, dtype="F16", naming="ldm", prefix="first_stage_model.", config=False,
         quant=True, scaling=0.13025, shift=None, image=(1, 16, 16), zin=(8, 8)),
]


def diffusers_config(s):
    n = len(s["channels"])
    cfg = {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": list(s["channels"]),
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "force_upcast": True,
        "in_channels": 3,
        "latent_channels": s["latent"],
        "layers_per_block": s["layers"],
        "norm_num_groups": s["groups"],
        "out_channels": 3,
        "sample_size": 1024,
        "scaling_factor": s["scaling"],
    }
    if not s["quant"]:
        cfg["use_quant_conv"] = False
        cfg["use_post_quant_conv"] = False
    if s["shift"] is not None:
        cfg["shift_factor"] = s["shift"]
    return cfg


# encoder.conv_in and decoder.conv_in are scaled down so that the first
# GroupNorm of each half sees a small variance (~1e-3): then GroupNorm's
# eps = 1e-6 matters, and an implementation using 1e-5 misses by ~1e-3
# instead of hiding under the 1e-4 tolerance.  The first resnet brings the
# activations back to O(1).
CONV_IN_GAIN = 0.05


def random_weights(model, rng, dtype):
    """ldm-named float64 weights, already rounded to dtype.  Conv weights
    N(0, 1/fan_in) keep every activation O(1); biases N(0, 0.1^2); GroupNorm
    scale 1 + N(0, 0.2^2), shift N(0, 0.2^2); conv_in see CONV_IN_GAIN."""
    sd = {}
    for k, p in sorted(model.state_dict().items()):
        shape = tuple(p.shape)
        if k.endswith("conv_in.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            w = CONV_IN_GAIN * rng.standard_normal(shape) / np.sqrt(fan_in)
        elif k.endswith("conv_in.bias"):
            w = CONV_IN_GAIN * 0.1 * rng.standard_normal(shape)
        elif k.endswith(".weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            w = rng.standard_normal(shape) / np.sqrt(fan_in)
        elif ".norm" in k and k.endswith(".weight"):
            w = 1.0 + 0.2 * rng.standard_normal(shape)
        elif ".norm" in k and k.endswith(".bias"):
            w = 0.2 * rng.standard_normal(shape)
        elif k.endswith(".bias"):
            w = 0.1 * rng.standard_normal(shape)
        else:
            raise ValueError("no init rule for %s" % k)
        sd[k] = vae_ref.quantize(w, dtype)
    return sd


def smooth_image(rng, n, h, w):
    """In (-1, 1): bilinear-upsampled coarse noise plus a little fine noise."""
    coarse = torch.from_numpy(rng.standard_normal((n, 3, max(h // 4, 2), max(w // 4, 2))))
    x = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).numpy()
    x = x + 0.15 * rng.standard_normal((n, 3, h, w))
    return np.tanh(1.2 * x)


def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def make(s, outdir):
    d = os.path.join(outdir, s["name"])
    os.makedirs(d, exist_ok=True)
    cfg = vae_ref.default_config()
    cfg.update(block_out_channels=list(s["channels"]), layers_per_block=s["layers"],
               latent_channels=s["latent"], norm_num_groups=s["groups"],
               scaling_factor=s["scaling"], shift_factor=s["shift"],
               use_quant_conv=s["quant"], use_post_quant_conv=s["quant"])
    torch.manual_seed(0)
    model64 = vae_ref.AutoencoderKL(cfg).double()
    rng = np.random.default_rng(s["seed"])
    sd = random_weights(model64, rng, s["dtype"])
    model64 = vae_ref.build_model(cfg, sd, torch.float64)

    n, h, w = s["image"]
    image = f32(smooth_image(rng, n, h, w))
    zin = f32(rng.standard_normal((n, s["latent"]) + tuple(s["zin"])))
    moments = vae_ref.run(model64, image, "moments", torch.float64)
    latent = f32(moments[:, :s["latent"]])
    decoded = vae_ref.run(model64, latent, "decode", torch.float64)
    zdecoded = vae_ref.run(model64, zin, "decode", torch.float64)

    stored = vae_ref.rename(sd, s["naming"], s["prefix"])
    vae_ref.write_safetensors(os.path.join(d, "model.safetensors"), stored, s["dtype"],
                              metadata={"format": "pt"})
    cpath = os.path.join(d, "config.json")
    if s["config"]:
        with open(cpath, "w") as f:
            json.dump(diffusers_config(s), f, indent=2)
            f.write("\n")
    elif os.path.exists(cpath):
        os.remove(cpath)
    for fname, arr in (("image", image), ("moments", moments), ("latent", latent),
                       ("decoded", decoded), ("zin", zin), ("zdecoded", zdecoded)):
        vae_ref.save_npy(os.path.join(d, fname + ".npy"), arr)
    info = {
        "seed": s["seed"],
        "generator": "test/reference/make_fixtures.py: numpy default_rng(seed) (PCG64); "
                     "weights drawn in sorted ldm key order, then image, then zin",
        "reference": "test/reference/vae_ref.py (sgm AutoencoderKL), float64 from the stored "
                     "weights and float32 inputs; outputs rounded to float32",
        "dtype": s["dtype"],
        "naming": s["naming"],
        "prefix": s["prefix"],
        "config_json": s["config"],
        "architecture": {k: cfg[k] for k in ("block_out_channels", "layers_per_block",
                                             "latent_channels", "norm_num_groups",
                                             "use_quant_conv", "use_post_quant_conv",
                                             "scaling_factor", "shift_factor")},
        "parameters": int(sum(v.size for v in sd.values())),
        "decoded_input": "latent.npy",
        "tensors": len(stored),
    }
    with open(os.path.join(d, "weights.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    return d, cfg


def verify(d, cfg):
    """Re-reads the folder; float64 must reproduce it to float32 rounding,
    float32 must agree to ~1e-6."""
    model, got, info = vae_ref.load_model_dir(d, torch.float64)
    for k in ("block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups",
              "use_quant_conv", "use_post_quant_conv"):
        if got[k] != cfg[k]:
            raise SystemExit("%s: %s read back as %r, expected %r" % (d, k, got[k], cfg[k]))
    ok64 = vae_ref.check(d, torch.float64, 1e-7)
    ok32 = vae_ref.check(d, torch.float32, 1e-5)
    if not (ok64 and ok32):
        raise SystemExit("%s: verification failed" % d)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "fixtures")))
    ap.add_argument("names", nargs="*", help="only these fixtures (default: all)")
    a = ap.parse_args()
    torch.set_num_threads(1)   # one summation order, for reproducible float64 sums
    specs = [s for s in SPECS if not a.names or s["name"] in a.names]
    total = 0
    for s in specs:
        d, cfg = make(s, a.out)
        verify(d, cfg)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        total += size
        print("wrote %s (%d bytes)" % (d, size))
    print("total %d bytes" % total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
