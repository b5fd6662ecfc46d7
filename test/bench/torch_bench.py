#!/usr/bin/python3
"""torch_bench.py - times the same VAE work as build/bin/bench, in PyTorch.

The model is the project's own PyTorch re-implementation of the AutoencoderKL
(test/reference/vae_ref.py), loaded from the same safetensors file with that
module's reader and key mapping, in float32, in eval mode under
torch.inference_mode().  For each (work, size): one warm-up, then N timed
runs of
  encode   a 1 x 3 x S x S image  -> moments -> the posterior mean (raw)
  decode   a 1 x C x S/8 x S/8 raw latent -> the 1 x 3 x S x S image
Each (work, size) runs in a process of its own, so that its peak RSS
(resource.getrusage ru_maxrss) is that work's alone, weights included.

Usage (Debian's python3-torch: run it with /usr/bin/python3):
  /usr/bin/python3 test/bench/torch_bench.py -m MODEL [-n 3] [-t 0]
      [--sizes 256,512] [--big] [--only encode|decode] [--json FILE]

Prints one JSON document on stdout (build/bin/bench --peer reads it) and a
readable summary on stderr, including the torch version, whether MKLDNN is
available and which convolution kernels actually ran, and which BLAS library
the process loaded.  Exit status 3: PyTorch cannot be imported.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "reference")
EXIT_NO_TORCH = 3
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors",
                "vae/diffusion_pytorch_model.safetensors")


def log(msg):
    print("torch_bench: " + msg, file=sys.stderr, flush=True)


def resolve_model(path):
    """(weights file, config.json or None), as libsdxlvae's loader finds them."""
    if os.path.isdir(path):
        for name in WEIGHT_NAMES:
            w = os.path.join(path, name)
            if os.path.isfile(w):
                c = os.path.join(os.path.dirname(w), "config.json")
                return w, (c if os.path.isfile(c) else None)
        raise SystemExit("torch_bench: %s: no %s in this folder" % (path, " or ".join(WEIGHT_NAMES)))
    if not os.path.isfile(path):
        raise SystemExit("torch_bench: %s: no such file" % path)
    c = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    return path, (c if os.path.isfile(c) else None)


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark (VmHWM) of this process; False if it can't."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def vm_hwm_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def blas_in_use():
    """Which BLAS / LAPACK / MKL the process has mapped (from /proc/self/maps)."""
    paths = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                p = line.split()[-1] if len(line.split()) >= 6 else ""
                b = os.path.basename(p)
                if "blas" in b or "mkl" in b or "lapack" in b:
                    paths.add(p)
    except OSError:
        pass
    paths = sorted(paths)
    joined = " ".join(paths)
    if "openblas-pthread" in joined:
        name = "OpenBLAS (pthread)"
    elif "openblas-openmp" in joined:
        name = "OpenBLAS (OpenMP)"
    elif "openblas" in joined:
        name = "OpenBLAS"
    elif "mkl" in joined:
        name = "MKL"
    elif "blis" in joined:
        name = "BLIS"
    elif "atlas" in joined:
        name = "ATLAS"
    elif "/blas/libblas" in joined:
        name = "reference BLAS (netlib: slow; install libopenblas0-pthread)"
    elif paths:
        name = "unknown"
    else:
        name = "none found"
    return {"name": name, "paths": paths}


def load_model(path, torch, np, vae_ref):
    """vae_ref's reader and key mapping, straight into float32 parameters
    (vae_ref.build_model stages the weights in float64, which would double
    the load-time memory this benchmark reports)."""
    weights, config = resolve_model(path)
    raw, _, _ = vae_ref.read_safetensors(weights)
    sd, _ = vae_ref.strip_prefix(raw)
    del raw
    sd = vae_ref.canonicalize(sd)
    cfg = vae_ref.load_config(config) if config else vae_ref.infer_config(sd)
    model = vae_ref.AutoencoderKL(cfg).float()
    state = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}
    del sd
    model.load_state_dict(state, strict=True)
    del state
    return model.eval(), cfg


def make_input(np, cfg, work, size):
    """The float32 input of (work, size): an image in [-1, 1] for encode, a
    standard normal raw latent for decode; the same values on every call
    (export_onnx.py saves them, so ONNX Runtime is timed on them too)."""
    f = 2 ** (len(cfg["block_out_channels"]) - 1)
    lat = int(cfg["latent_channels"])
    if size % f:
        raise ValueError("size %d is not a multiple of %d" % (size, f))
    rng = np.random.default_rng(size * 2 + (work == "decode"))
    if work == "encode":
        return rng.uniform(-1.0, 1.0, (1, 3, size, size)).astype(np.float32)
    return rng.standard_normal((1, lat, size // f, size // f)).astype(np.float32)


def conv_kernels(prof):
    """{aten op: calls} of the convolution implementations that ran."""
    # the dispatch layers above the kernels (thnn_conv2d wraps _slow_conv2d_forward)
    generic = {"aten::conv2d", "aten::convolution", "aten::_convolution", "aten::thnn_conv2d"}
    out = {}
    for ev in prof.key_averages():
        k = ev.key
        if k.startswith("aten::") and "conv" in k and k not in generic:
            out[k] = out.get(k, 0) + ev.count
    return out


def worker(a):
    """One (work, size) in this process: prints one JSON object on stdout."""
    try:
        import numpy as np
        import torch
    except ImportError as e:
        log("PyTorch is not available (%s): install Debian's python3-torch and run this "
            "with /usr/bin/python3" % e)
        return EXIT_NO_TORCH
    sys.path.insert(0, REFERENCE)
    import vae_ref

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model, cfg = load_model(a.model, torch, np, vae_ref)
    load_s = time.perf_counter() - t0
    import gc
    gc.collect()

    work, size = a.only, a.sizes[0]
    try:
        x = torch.from_numpy(make_input(np, cfg, work, size))
    except ValueError as e:
        print(json.dumps({"work": work, "size": size, "error": str(e)}))
        return 1
    fn = model.encode if work == "encode" else model.decode

    rss_reset = reset_peak_rss()
    impl = {}
    with torch.inference_mode():
        try:  # the warm-up, under the profiler: which convolution kernels ran
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                out = fn(x)
            impl = conv_kernels(prof)
            del prof
        except Exception as e:  # noqa: BLE001 - a profiler problem must not stop the timing
            log("profiler unavailable (%s); warm-up without it" % e)
            out = fn(x)
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            out = fn(x)
            times.append(time.perf_counter() - t)
    nonfinite = int((~torch.isfinite(out)).sum())

    import resource
    env = {
        "torch_version": torch.__version__,
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "openmp_available": bool(torch.backends.openmp.is_available()),
        "threads": torch.get_num_threads(),
        "blas": blas_in_use(),
        "python": sys.version.split()[0],
        "environment": {k: os.environ.get(k) for k in
                        ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")},
    }
    res = {
        "work": work, "size": size, "threads": torch.get_num_threads(),
        "times": times, "median_s": statistics.median(times), "min_s": min(times),
        "load_s": load_s,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "run_rss_kib": vm_hwm_kib() if rss_reset else -1,
        "conv_impl": impl, "nonfinite_outputs": nonfinite,
        "env": env,
    }
    print(json.dumps(res))
    return 0


def parse_sizes(s):
    try:
        sizes = [int(t) for t in s.split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError("sizes are integers, e.g. 256,512")
    if not sizes or any(v < 8 for v in sizes):
        raise argparse.ArgumentTypeError("sizes are image sides >= 8, e.g. 256,512")
    return sizes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True, help="a .safetensors file or model folder")
    ap.add_argument("-n", "--runs", type=int, default=3, help="timed runs after a warm-up (default 3)")
    ap.add_argument("-t", "--threads", type=int, default=0, help="threads (0: every usable CPU)")
    ap.add_argument("--sizes", type=parse_sizes, default=[256, 512], help="image sides (default 256,512)")
    ap.add_argument("--big", action="store_true", help="adds 1024")
    ap.add_argument("--only", choices=("encode", "decode"), help="one work only")
    ap.add_argument("--json", metavar="FILE", help="also write the JSON document here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.runs < 1:
        ap.error("-n must be at least 1")
    if a.threads <= 0:
        a.threads = len(os.sched_getaffinity(0))
    if a.worker:
        return worker(a)

    import importlib.util
    if importlib.util.find_spec("torch") is None:
        log("PyTorch is not available to %s: install Debian's python3-torch and run this "
            "with /usr/bin/python3" % sys.executable)
        return EXIT_NO_TORCH
    resolve_model(a.model)  # fail early on a bad path

    sizes = list(a.sizes) + ([1024] if a.big and 1024 not in a.sizes else [])
    works = [a.only] if a.only else ["encode", "decode"]
    # The OpenMP and BLAS thread pools follow -t too (set before torch is
    # imported). Idle OpenMP threads sleep instead of spinning, as
    # libsdxlvae's pool does: with GNU OpenMP's default active wait, torch's
    # spinning threads fight OpenBLAS's own threads (and anything else on
    # the machine) for the cores; on a busy 2-core machine that made a
    # decode 10 to 40 times slower. An OMP_WAIT_POLICY already in the
    # environment is kept.
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results, info, rc = [], None, 0
    for size in sizes:
        for work in works:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", "-m", a.model,
                   "-n", str(a.runs), "-t", str(a.threads), "--sizes", str(size), "--only", work]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, check=False)
            if p.returncode == EXIT_NO_TORCH:
                return EXIT_NO_TORCH
            try:
                r = json.loads(p.stdout.decode("utf-8").strip().splitlines()[-1])
            except (ValueError, IndexError):
                r = {"work": work, "size": size,
                     "error": "the worker exited with status %d and no report" % p.returncode}
            if p.returncode != 0 and "error" not in r:
                r["error"] = "the worker exited with status %d" % p.returncode
            if "error" in r:
                rc = 1
                log("%s %d: FAILED: %s" % (work, size, r["error"]))
            else:
                info = info or r.get("env")
                r.pop("env", None)
                log("%s %dx%d: median %.3f s, min %.3f s, peak RSS %.0f MiB (%d threads)"
                    % (work, size, size, r["median_s"], r["min_s"], r["peak_rss_kib"] / 1024.0,
                       r["threads"]))
            results.append(r)
    if info:
        log("PyTorch %s, MKLDNN %s%s, OpenMP %s, BLAS: %s"
            % (info["torch_version"], "available" if info["mkldnn_available"] else "not available",
               "" if info["mkldnn_enabled"] else " (disabled)",
               "yes" if info["openmp_available"] else "no", info["blas"]["name"]))
        for r in results:
            if r.get("conv_impl"):
                log("%s %d: convolutions ran as %s" % (r["work"], r["size"], ", ".join(
                    "%s x%d" % kv for kv in sorted(r["conv_impl"].items()))))
    doc = {"tool": "torch_bench.py", "model": a.model, "threads": a.threads, "runs": a.runs,
           "env": info, "results": results}
    text = json.dumps(doc, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
