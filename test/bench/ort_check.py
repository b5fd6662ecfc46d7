#!/usr/bin/python3
"""ort_check.py - do ONNX Runtime, PyTorch and libsdxlvae compute the same VAE?

The ONNX Runtime peer of build/bin/bench --ort is only a fair comparison if
the exported graph is the same function as ours. This runs the whole chain on
a small model and prints, for encode and decode, the max relative error
max|a - b| / max|b| between each pair of the three outputs on one input:

  1. export_onnx.py exports the model at --size and saves the input and
     PyTorch's (test/reference/vae_ref.py) output for it;
  2. ort_bench.mjs runs the .onnx in onnxruntime-node on that input and saves
     its output;
  3. build/bin/sdxlvae encode/decode --raw runs libsdxlvae on the same input.

Without -m, a small random-weight model (channels 32,64,64, one resnet per
level, 8 groups) is generated with build/bin/gen_vae into build/bench/ort-check/.
Everything runs on one thread (-t). Exit status 0 when every error is within
--tol, 1 when one is not or a step failed, 77 when node, onnxruntime-node or
PyTorch is missing (the check is skipped, with the reason).

  /usr/bin/python3 test/bench/ort_check.py [-m MODEL] [--size 64] [--tol 1e-4]
"""

import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
EXIT_SKIP = 77
EXIT_MISSING = 3  # export_onnx.py (no torch) and ort_bench.mjs (no onnxruntime-node)


def log(msg):
    print("ort_check: " + msg, flush=True)


def run(cmd, quiet_stdout=False):
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=False,
                          stdout=subprocess.DEVNULL if quiet_stdout else None).returncode


def rel_err(np, a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError("shape %s != %s" % (a.shape, b.shape))
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", help="a .safetensors file or model folder (default: a small "
                    "generated one)")
    ap.add_argument("--size", type=int, default=64, help="image side (default 64)")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest relative error (default 1e-4)")
    ap.add_argument("-t", "--threads", type=int, default=1, help="threads for all three (default 1)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the build folder")
    ap.add_argument("--node", default=shutil.which("node") or "node", help="node executable")
    ap.add_argument("--ort-dir", help="folder whose node_modules/ has onnxruntime-node "
                    "(default: BUILD/ort)")
    a = ap.parse_args(argv)
    bindir = os.path.join(a.build, "bin")
    work_dir = os.path.join(a.build, "bench", "ort-check")
    ort_dir = a.ort_dir or os.path.join(a.build, "ort")

    try:
        import numpy as np
    except ImportError:
        log("skipped: numpy is not available to %s" % sys.executable)
        return EXIT_SKIP
    if not shutil.which(a.node):
        log("skipped: node is not installed (Debian: apt-get install nodejs)")
        return EXIT_SKIP
    cli = os.path.join(bindir, "sdxlvae")
    if not os.path.isfile(cli):
        log("%s is missing: run make first" % cli)
        return 1

    model = a.model
    if not model:
        model = os.path.join(work_dir, "model")
        if not os.path.isfile(os.path.join(model, "config.json")):
            gen = os.path.join(bindir, "gen_vae")
            if run([gen, "--channels", "32,64,64", "--layers", "1", "--groups", "8",
                    "--seed", "1", model]) != 0:
                log("%s failed (make tools builds it)" % gen)
                return 1
    onnx_dir = os.path.join(work_dir, "onnx")
    rc = run([sys.executable, os.path.join(HERE, "export_onnx.py"), "-m", model, "-o", onnx_dir,
              "--sizes", str(a.size), "-t", str(a.threads)])
    if rc == EXIT_MISSING:
        log("skipped: PyTorch is missing (Debian: apt-get install python3-torch)")
        return EXIT_SKIP
    if rc != 0:
        return 1

    errs, ok = [], True
    for work in ("encode", "decode"):
        stem = os.path.join(onnx_dir, "%s-%d" % (work, a.size))
        ort_out, ours_out = stem + ".ort.npy", stem + ".ours.npy"
        rc = run([a.node, os.path.join(HERE, "ort_bench.mjs"), stem + ".onnx", "-n", "1",
                  "-t", str(a.threads), "--ort-dir", ort_dir, "--save", ort_out], quiet_stdout=True)
        if rc == EXIT_MISSING:
            log("skipped: onnxruntime-node is missing (make bench-ort-deps installs it)")
            return EXIT_SKIP
        if rc != 0:
            return 1
        if run([cli, work, "--raw", "-q", "-f", "--threads", str(a.threads), "-m", model,
                stem + ".input.npy", ours_out]) != 0:
            return 1
        torch_y, ort_y, ours_y = (np.load(p) for p in (stem + ".torch.npy", ort_out, ours_out))
        for name, x, ref in (("ort vs torch", ort_y, torch_y), ("ours vs torch", ours_y, torch_y),
                             ("ort vs ours", ort_y, ours_y)):
            e = rel_err(np, x, ref)
            bad = not e <= a.tol
            ok = ok and not bad
            errs.append("  %s %dx%d  %-13s max|a-b|/max|b| = %.3e%s"
                        % (work, a.size, a.size, name, e, "  > tol %.0e FAIL" % a.tol if bad else ""))
    print("ort_check: %s, output shapes: encode %s, decode %s"
          % (model, np.load(os.path.join(onnx_dir, "encode-%d.torch.npy" % a.size)).shape,
             np.load(os.path.join(onnx_dir, "decode-%d.torch.npy" % a.size)).shape))
    print("\n".join(errs))
    print("ort_check: %s" % ("OK: ONNX Runtime, PyTorch and libsdxlvae agree" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
