#!/usr/bin/env node
// onnxruntime-node peer for bench_encoder: runs the ONNX export of the model torch_peer.py
// times (export_onnx.py: BERT + ColBERT projection + L2 normalisation, float32) on the same
// 8 x 128 token ids (MODEL.ids), CPU execution provider, graph optimisation level "all",
// intraOpNumThreads T, interOpNumThreads 1, sequential execution. One warm-up run (whose
// output is checked against torch's, MODEL.ref), then REPS timed runs; prints one JSON line
// like bench_encoder: the best wall time, and tokens per CPU-second of that run
// (process.cpuUsage: user + system of the whole process, i.e. all ORT threads).
//
// Usage: node ort_peer.js MODEL.onnx [--threads 1] [--reps 5]
// onnxruntime-node is loaded from bench/encoder_peers/node/node_modules (see run.sh).
'use strict';
const fs = require('fs');
const path = require('path');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : def;
}

async function main() {
  const model = process.argv[2];
  if (!model || model.startsWith('--')) {
    console.error('usage: ort_peer.js MODEL.onnx [--threads T] [--reps R]');
    process.exit(2);
  }
  const threads = arg('--threads', 1), reps = arg('--reps', 5), batch = 8, len = 128;
  const ort = require(path.join(__dirname, 'node', 'node_modules', 'onnxruntime-node'));
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const raw = fs.readFileSync(model + '.ids');
  const ids = new BigInt64Array(raw.buffer, raw.byteOffset, raw.length / 8);
  if (ids.length !== batch * len) throw new Error(`${model}.ids: expected ${batch * len} ids`);
  const feeds = {
    ids: new ort.Tensor('int64', ids, [batch, len]),
    attend: new ort.Tensor('bool', new Uint8Array(batch * len).fill(1), [batch, len]),
  };
  let best = Infinity, cpuAtBest = 0, maxDiff = NaN;
  for (let r = 0; r <= reps; r++) { // run 0 is warm-up
    const c0 = process.cpuUsage(), w0 = process.hrtime.bigint();
    const out = await session.run(feeds);
    const w = Number(process.hrtime.bigint() - w0) / 1e9;
    const c = process.cpuUsage(c0), cpu = (c.user + c.system) / 1e6;
    if (r === 0) {
      const got = out.vectors.data, refRaw = fs.readFileSync(model + '.ref');
      const ref = new Float32Array(refRaw.buffer.slice(refRaw.byteOffset, refRaw.byteOffset + refRaw.length));
      if (got.length !== ref.length) throw new Error(`output has ${got.length} values, torch ${ref.length}`);
      maxDiff = 0;
      for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i] - ref[i]));
      if (!(maxDiff <= 1e-4)) throw new Error(`output differs from torch's by ${maxDiff}`);
    } else if (w < best) {
      best = w, cpuAtBest = cpu;
    }
  }
  const n = batch * len;
  console.log(JSON.stringify({
    engine: 'onnxruntime-node ' + ort.env.versions.node, threads, batch, tokens: len,
    seconds: Number(best.toFixed(4)), tokens_per_s: Number((n / best).toFixed(1)),
    tokens_per_cpu_s: Number((n / cpuAtBest).toFixed(1)), max_abs_diff_vs_torch: maxDiff,
  }));
}

main().catch((e) => { console.error('ort_peer: ' + (e && e.message ? e.message : e)); process.exit(1); });
