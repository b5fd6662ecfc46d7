#!/usr/bin/python3
"""export_onnx.py - the benchmark's VAE as ONNX files, for the ONNX Runtime peer.

Builds the project's PyTorch model (test/reference/vae_ref.py) from a
safetensors file exactly as torch_bench.py does (same reader, key mapping and
float32 parameters), and exports, for each (work, size), one fp32 ONNX graph
with fixed input and output shapes:
  encode S   image  1 x 3 x S x S        -> latent 1 x C x S/8 x S/8 (posterior mean, raw)
  decode S   latent 1 x C x S/8 x S/8    -> image  1 x 3 x S x S     (raw, not clamped)
Fixed shapes let ONNX Runtime fold every shape computation at load time, so
the peer is timed at its best rather than with dynamic axes.

Beside each OUTDIR/WORK-SIZE.onnx it writes
  WORK-SIZE.input.npy   the input torch_bench.py times (its make_input)
  WORK-SIZE.torch.npy   PyTorch's output for that input (float32)
  WORK-SIZE.json        what was exported from what; written last
ort_bench.mjs runs the .onnx on the .input.npy and reports its max relative
error against the .torch.npy, so every timing also checks that ONNX Runtime
computes the same function.

An export whose .json names the same weights file (path, size, mtime), the
same opset and the same version of this script is up to date and is kept
(--force exports again).

Usage (Debian's python3-torch: run it with /usr/bin/python3):
  /usr/bin/python3 test/bench/export_onnx.py -m MODEL -o OUTDIR [--sizes 256,512]
      [--only encode|decode] [--opset 17] [-t THREADS] [--force]

torch.onnx.export needs no `onnx` Python package (torch 1.13 serialises the
graph itself). Exit status 3: PyTorch cannot be imported; 1: an export failed.
"""

import argparse
import json
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_bench  # noqa: E402  (resolve_model, load_model, make_input)

EXIT_NO_TORCH = torch_bench.EXIT_NO_TORCH
# Bumped whenever the exported graph or the files beside it change meaning:
# exports made by another format version are made again.
FORMAT = 1
DEFAULT_OPSET = 17  # the highest torch 1.13 writes; onnxruntime 1.30 runs opsets 7 to 23


def log(msg):
    print("export_onnx: " + msg, file=sys.stderr, flush=True)


def weights_id(weights):
    st = os.stat(weights)
    return {"weights": os.path.abspath(weights), "weights_bytes": st.st_size,
            "weights_mtime_ns": st.st_mtime_ns}


def up_to_date(stem, want):
    try:
        with open(stem + ".json") as f:
            have = json.load(f)
    except (OSError, ValueError):
        return False
    if any(have.get(k) != v for k, v in want.items()):
        return False
    return all(os.path.isfile(stem + ext) for ext in (".onnx", ".input.npy", ".torch.npy"))


def wrap(torch, model, work):
    """model.encode or model.decode as a Module of its own, for torch.onnx.export."""
    class Work(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            return self.m.encode(x) if work == "encode" else self.m.decode(x)
    return Work().eval()


def export_one(torch, np, model, cfg, work, size, stem, opset, ident):
    x = torch_bench.make_input(np, cfg, work, size)
    xt = torch.from_numpy(x)
    mod = wrap(torch, model, work)
    in_name, out_name = ("image", "latent") if work == "encode" else ("latent", "image")
    t0 = time.perf_counter()
    with torch.inference_mode():
        ref = mod(xt).numpy()
    ref_s = time.perf_counter() - t0
    tmp = stem + ".onnx.tmp"
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes on constant shapes: the shapes are fixed on purpose
        warnings.simplefilter("ignore")
        torch.onnx.export(mod, (xt,), tmp, export_params=True, opset_version=opset,
                          do_constant_folding=True, input_names=[in_name],
                          output_names=[out_name], dynamic_axes=None)
    export_s = time.perf_counter() - t0
    os.replace(tmp, stem + ".onnx")
    np.save(stem + ".input.npy", np.ascontiguousarray(x, dtype="<f4"), allow_pickle=False)
    np.save(stem + ".torch.npy", np.ascontiguousarray(ref, dtype="<f4"), allow_pickle=False)
    meta = dict(ident)
    meta.update({"input_name": in_name, "output_name": out_name,
                 "input_shape": list(x.shape), "output_shape": list(ref.shape),
                 "torch_version": torch.__version__, "onnx_bytes": os.path.getsize(stem + ".onnx"),
                 "export_s": export_s, "torch_reference_s": ref_s})
    with open(stem + ".json.tmp", "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    os.replace(stem + ".json.tmp", stem + ".json")
    log("%s %d: wrote %s (%.0f MiB, export %.1f s, torch reference %.1f s)"
        % (work, size, stem + ".onnx", meta["onnx_bytes"] / 2.0 ** 20, export_s, ref_s))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True, help="a .safetensors file or model folder")
    ap.add_argument("-o", "--outdir", required=True, help="folder for the .onnx files (created)")
    ap.add_argument("--sizes", type=torch_bench.parse_sizes, default=[256, 512],
                    help="image sides (default 256,512)")
    ap.add_argument("--only", choices=("encode", "decode"), help="one work only")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                    help="ONNX opset (default %d)" % DEFAULT_OPSET)
    ap.add_argument("-t", "--threads", type=int, default=0,
                    help="torch threads for the reference output (0: every usable CPU)")
    ap.add_argument("--force", action="store_true", help="export even when up to date")
    a = ap.parse_args(argv)
    if a.threads <= 0:
        a.threads = len(os.sched_getaffinity(0))

    weights, _ = torch_bench.resolve_model(a.model)
    works = [a.only] if a.only else ["encode", "decode"]
    ident = weights_id(weights)
    ident.update({"format": FORMAT, "opset": a.opset})
    todo = []
    for size in a.sizes:
        for work in works:
            stem = os.path.join(a.outdir, "%s-%d" % (work, size))
            want = dict(ident, work=work, size=size)
            if not a.force and up_to_date(stem, want):
                log("%s %d: %s.onnx is up to date" % (work, size, stem))
            else:
                todo.append((work, size, stem, want))
    if not todo:
        return 0

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as torch_bench.py: before torch loads
    try:
        import numpy as np
        import torch
    except ImportError as e:
        log("PyTorch is not available to %s (%s): install Debian's python3-torch and run this "
            "with /usr/bin/python3" % (sys.executable, e))
        return EXIT_NO_TORCH
    sys.path.insert(0, torch_bench.REFERENCE)
    import vae_ref

    torch.set_num_threads(a.threads)
    os.makedirs(a.outdir, exist_ok=True)
    model, cfg = torch_bench.load_model(a.model, torch, np, vae_ref)
    rc = 0
    for work, size, stem, want in todo:
        try:
            export_one(torch, np, model, cfg, work, size, stem, a.opset, want)
        except Exception as e:  # noqa: BLE001 - report and go on with the other exports
            log("%s %d: FAILED: %s: %s" % (work, size, type(e).__name__, e))
            for ext in (".json", ".onnx.tmp"):
                try:
                    os.remove(stem + ext)
                except OSError:
                    pass
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
