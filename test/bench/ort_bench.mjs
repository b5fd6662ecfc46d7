#!/usr/bin/env node
// ort_bench.mjs - times one exported VAE graph in ONNX Runtime (onnxruntime-node).
//
//   node test/bench/ort_bench.mjs FILE.onnx [-n 3] [-t THREADS] [--input X.npy]
//        [--ref Y.npy] [--save OUT.npy] [--ort-dir DIR] [--no-spin] [--json FILE]
//
// FILE.onnx comes from export_onnx.py, which writes FILE.input.npy (the input
// torch_bench.py times) and FILE.torch.npy (PyTorch's output for it) beside it;
// --input and --ref default to those. The session runs on the CPU execution
// provider with intraOpNumThreads = THREADS (default: every CPU), interOpNumThreads
// = 1, sequential execution and graphOptimizationLevel "all"; ONNX Runtime's other
// settings are its defaults (its intra-op threads spin while waiting for work,
// unless --no-spin). One warm-up run, whose output is compared with the
// reference (max |ort - torch| / max |torch|), then N timed runs of session.run.
//
// Prints one JSON object on stdout (build/bin/bench --ort reads it) and a readable
// line on stderr. Exit status 3: onnxruntime-node cannot be loaded (install it
// with `make bench-ort-deps`, which puts it in build/ort/); 1: anything else failed.
//
// onnxruntime-node is looked for in --ort-dir (a folder holding node_modules/)
// alone when it is given; otherwise in $SDXLVAE_ORT_DIR, then by the usual Node
// resolution from this script's folder (test/bench/node_modules), then in
// build/ort/ of this source tree.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXIT_NO_ORT = 3;

function log(msg) {
  process.stderr.write(`ort_bench: ${msg}\n`);
}

function usage(code) {
  (code ? process.stderr : process.stdout).write(
    'usage: node ort_bench.mjs FILE.onnx [-n RUNS] [-t THREADS] [--input X.npy] [--ref Y.npy]\n' +
      '                         [--save OUT.npy] [--ort-dir DIR] [--no-spin] [--json FILE]\n');
  process.exit(code);
}

function parseArgs(argv) {
  const a = { onnx: null, runs: 3, threads: 0, input: null, ref: null, save: null, ortDir: null,
    spin: true, json: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) {
        log(`${arg} wants a value`);
        usage(2);
      }
      return argv[++i];
    };
    const int = (lo) => {
      const s = val();
      const v = Number(s);
      if (!Number.isInteger(v) || v < lo) {
        log(`${arg} wants an integer >= ${lo}, not '${s}'`);
        usage(2);
      }
      return v;
    };
    switch (arg) {
      case '-n': case '--runs': a.runs = int(1); break;
      case '-t': case '--threads': a.threads = int(0); break;
      case '--input': a.input = val(); break;
      case '--ref': a.ref = val(); break;
      case '--save': a.save = val(); break;
      case '--ort-dir': a.ortDir = val(); break;
      case '--no-spin': a.spin = false; break;
      case '--json': a.json = val(); break;
      case '-h': case '--help': usage(0); break;
      default:
        if (arg.startsWith('-') || a.onnx) usage(2);
        a.onnx = arg;
    }
  }
  if (!a.onnx) usage(2);
  if (a.threads === 0) a.threads = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  const stem = a.onnx.replace(/\.onnx$/, '');
  if (!a.input) a.input = `${stem}.input.npy`;
  if (!a.ref && fs.existsSync(`${stem}.torch.npy`)) a.ref = `${stem}.torch.npy`;
  a.meta = fs.existsSync(`${stem}.json`) ? JSON.parse(fs.readFileSync(`${stem}.json`, 'utf8')) : {};
  return a;
}

// onnxruntime-node from the first place that has it; null when none does.
function loadOrt(ortDir) {
  const tries = [];
  if (ortDir) {
    tries.push(path.resolve(ortDir)); // given: that one only
  } else {
    if (process.env.SDXLVAE_ORT_DIR) tries.push(path.resolve(process.env.SDXLVAE_ORT_DIR));
    tries.push(HERE);
    tries.push(path.resolve(HERE, '..', '..', 'build', 'ort'));
  }
  const errors = [];
  for (const dir of tries) {
    const req = createRequire(path.join(dir, 'noop.js'));
    try {
      const where = req.resolve('onnxruntime-node');
      return { ort: req('onnxruntime-node'), where };
    } catch (e) {
      errors.push(`${dir}: ${String(e.message).split('\n')[0]}`);
    }
  }
  log(`onnxruntime-node is not available (tried ${errors.join('; ')}); ` +
    'install it with `make bench-ort-deps` (npm, into build/ort/)');
  return null;
}

// ---- .npy: little-endian float32, C order ------------------------------------

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || descr[1] !== '<f4' || !fortran || fortran[1] !== 'False' || !shape)
    throw new Error(`${file}: not a C-order little-endian float32 array (${header.trim()})`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const count = dims.reduce((x, y) => x * y, 1);
  const off = hstart + hlen;
  if (buf.length - off !== 4 * count) throw new Error(`${file}: ${buf.length - off} data bytes for ${count} floats`);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(off + 4 * i);
  return { dims, data };
}

function writeNpy(file, dims, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims.join(', ')}${dims.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const out = Buffer.alloc(10 + header.length + 4 * data.length);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  for (let i = 0; i < data.length; i++) out.writeFloatLE(data[i], 10 + header.length + 4 * i);
  fs.writeFileSync(file, out);
}

// ---- memory -------------------------------------------------------------------

function resetPeakRss() {
  try {
    fs.writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function vmHwmKib() {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : -1;
  } catch {
    return -1;
  }
}

function median(v) {
  const s = [...v].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

// ---- main -----------------------------------------------------------------------

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const found = loadOrt(a.ortDir);
  if (!found) return EXIT_NO_ORT;
  const { ort, where } = found;
  const ortVersion = (ort.env && ort.env.versions && (ort.env.versions.node || ort.env.versions.common)) || 'unknown';

  const input = readNpy(a.input);
  const ref = a.ref ? readNpy(a.ref) : null;
  const sessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  if (!a.spin) sessionOptions.extra = { session: { intra_op: { allow_spinning: '0' } } };

  let t0 = now();
  const session = await ort.InferenceSession.create(a.onnx, sessionOptions);
  const loadS = now() - t0;
  const inName = session.inputNames[0];
  const outName = session.outputNames[0];
  const feeds = { [inName]: new ort.Tensor('float32', input.data, input.dims) };

  const rssReset = resetPeakRss();
  let out = (await session.run(feeds))[outName]; // the warm-up
  let maxRelErr = null;
  if (ref) {
    if (ref.data.length !== out.data.length || ref.dims.join('x') !== out.dims.join('x'))
      throw new Error(`output ${out.dims.join('x')} but the reference is ${ref.dims.join('x')}`);
    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < ref.data.length; i++) {
      const d = Math.abs(out.data[i] - ref.data[i]);
      if (!(d <= maxDiff)) maxDiff = d; // NaN propagates
      maxRef = Math.max(maxRef, Math.abs(ref.data[i]));
    }
    maxRelErr = maxDiff / Math.max(maxRef, 1e-30);
  }
  if (a.save) writeNpy(a.save, out.dims, out.data);

  const times = [];
  for (let i = 0; i < a.runs; i++) {
    t0 = now();
    out = (await session.run(feeds))[outName];
    times.push(now() - t0);
  }
  let nonfinite = 0;
  for (let i = 0; i < out.data.length; i++) if (!Number.isFinite(out.data[i])) nonfinite++;
  const runRss = rssReset ? vmHwmKib() : -1;
  await session.release();

  const res = {
    tool: 'ort_bench.mjs',
    onnx: path.resolve(a.onnx),
    work: a.meta.work ?? null,
    size: a.meta.size ?? null,
    opset: a.meta.opset ?? null,
    threads: a.threads,
    inter_op_threads: 1,
    graph_optimization: 'all',
    allow_spinning: a.spin,
    times,
    median_s: median(times),
    min_s: Math.min(...times),
    load_s: loadS,
    peak_rss_kib: Math.max(process.resourceUsage().maxRSS, runRss),
    run_rss_kib: runRss,
    max_rel_err_vs_torch: maxRelErr,
    nonfinite_outputs: nonfinite,
    env: { ort_version: ortVersion, node_version: process.version, onnxruntime_node: where },
  };
  const label = res.work ? `${res.work} ${res.size}` : path.basename(a.onnx);
  log(`${label}: median ${res.median_s.toFixed(3)} s, min ${res.min_s.toFixed(3)} s, load ${loadS.toFixed(2)} s, ` +
    `peak RSS ${(res.peak_rss_kib / 1024).toFixed(0)} MiB (ONNX Runtime ${ortVersion}, ${a.threads} intra-op thread${a.threads === 1 ? '' : 's'}` +
    `${a.spin ? '' : ', no spinning'})` +
    (maxRelErr === null ? '; no reference to check against' : `; max|ort-torch|/max|torch| = ${maxRelErr.toExponential(2)}`));
  const text = JSON.stringify(res);
  process.stdout.write(text + '\n');
  if (a.json) fs.writeFileSync(a.json, text + '\n');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    log(`FAILED: ${e && e.stack ? e.stack : e}`);
    process.stdout.write(JSON.stringify({ tool: 'ort_bench.mjs', error: String(e && e.message ? e.message : e) }) + '\n');
    process.exit(1);
  });
