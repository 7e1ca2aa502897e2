#!/bin/sh
# Encoder speed side by side in one run: colplaid (its default fp32 kernel, the opt-in bf16
# kernel with its cosine drift, and OpenBLAS with and without OPENBLAS_CORETYPE), PyTorch
# (OPENBLAS_CORETYPE set to the CPU's real type) and onnxruntime-node 1.30 (the ONNX export
# of PyTorch's model, export_onnx.py), BERT-base shape (12 x 768, FFN 3072, dim 128), batch
# 8 x 128 tokens, at 1 and 2 threads. Every engine times the same work: BERT forward pass,
# ColBERT projection and L2 normalisation. Prints a table with ratios and writes the JSON
# records to $OUT (default bench_encoder.json).
#
# Usage: [ROUNDS=2] [REPS=5] [OUT=file] [KERNELS="default bf16 blas-coretype blas-default"]
#        bench/encoder_peers/run.sh BUILD_DIR [MODEL_DIR]
#   MODEL_DIR is created with tests/encoder/torch_reference.py when missing; the ONNX export
#   goes to MODEL_DIR/peer.onnx. onnxruntime-node is installed with `npm ci` into
#   bench/encoder_peers/node/ (package-lock.json there); when npm or the install fails, the
#   ORT peer is skipped with a message. KERNELS picks the colplaid variants to run.
set -eu
BUILD=${1:?usage: run.sh BUILD_DIR [MODEL_DIR]}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${2:-${TMPDIR:-/tmp}/colplaid_bench_bert_base}
OUT=${OUT:-bench_encoder.json}
REPS=${REPS:-5}   # timed runs per engine (after one warm-up); the best is kept
PY=/usr/bin/python3
CORETYPE=$(grep -q avx512f /proc/cpuinfo && echo SkylakeX || echo Haswell)
VOCAB="$SRC/tests/data/vocab/bert-base-uncased-vocab.txt"
[ -f "$VOCAB" ] && VOCAB_ARG="--vocab $VOCAB" || VOCAB_ARG=""
if [ ! -f "$MODEL/model.safetensors" ]; then
  echo "writing a random BERT-base-shaped checkpoint to $MODEL" >&2
  $PY "$SRC/tests/encoder/torch_reference.py" --out "$MODEL" --hidden 768 --layers 12 \
    --heads 12 --intermediate 3072 --max-pos 512 --dim 128 --query-maxlen 32 \
    --doc-maxlen 180 $VOCAB_ARG
fi
VSIZE=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$MODEL/config.json")
KERNELS=${KERNELS:-default bf16 blas-coretype blas-default}

# onnxruntime-node peer: the npm package (CPU binaries are in the package; the install
# script would only fetch CUDA binaries from nuget.org, so it is told to skip) and the model.
NODE_DIR="$SRC/bench/encoder_peers/node"
ORT=""
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "run.sh: node/npm not found: skipping the onnxruntime-node peer" >&2
elif [ ! -f "$NODE_DIR/node_modules/onnxruntime-node/package.json" ] &&
     ! (cd "$NODE_DIR" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >&2); then
  echo "run.sh: npm ci of onnxruntime-node failed (registry unreachable?): skipping the onnxruntime-node peer" >&2
elif [ ! -f "$MODEL/peer.onnx.ref" ] &&
     ! $PY "$SRC/bench/encoder_peers/export_onnx.py" --out "$MODEL/peer.onnx" \
         --vocab-size "$VSIZE" 2>"$MODEL/export_onnx.log"; then
  echo "run.sh: ONNX export failed (see $MODEL/export_onnx.log): skipping the onnxruntime-node peer" >&2
else
  ORT=1
fi

: > "$OUT"
# Several rounds, interleaved, best of each: a shared machine's load hits every engine alike.
for round in $(seq "${ROUNDS:-2}"); do
for t in 1 2; do
  for k in $KERNELS; do
    case $k in
    default) "$BUILD/bench/bench_encoder" "$MODEL" --threads $t --reps $REPS >> "$OUT" ;;
    bf16) CP_GEMM=bf16 "$BUILD/bench/bench_encoder" "$MODEL" --threads $t --reps $REPS >> "$OUT" ;;
    blas-coretype) OPENBLAS_CORETYPE=$CORETYPE OPENBLAS_NUM_THREADS=$t CP_GEMM=blas \
      "$BUILD/bench/bench_encoder" "$MODEL" --threads $t --reps $REPS | sed 's/"kernel":"openblas"/"kernel":"openblas-coretype"/' >> "$OUT" ;;
    blas-default) env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=$t CP_GEMM=blas \
      "$BUILD/bench/bench_encoder" "$MODEL" --threads $t --reps $REPS 2>/dev/null | sed 's/"kernel":"openblas"/"kernel":"openblas-default"/' >> "$OUT" ;;
    *) echo "run.sh: unknown kernel $k in KERNELS" >&2; exit 2 ;;
    esac
  done
  OPENBLAS_CORETYPE=$CORETYPE OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
    $PY "$SRC/bench/encoder_peers/torch_peer.py" --threads $t --reps $REPS --vocab-size "$VSIZE" >> "$OUT"
  if [ -n "$ORT" ]; then
    node "$SRC/bench/encoder_peers/ort_peer.js" "$MODEL/peer.onnx" --threads $t --reps $REPS >> "$OUT" ||
      echo "run.sh: the onnxruntime-node peer failed at $t thread(s)" >&2
  fi
done
done
$PY - "$OUT" <<'PYEOF'
import json, sys
best = {}
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    r = json.loads(line)
    key = (r["threads"], r["engine"] + (" " + r["kernel"] if "kernel" in r else ""))
    b = best.setdefault(key, dict(r))
    b["tokens_per_s"] = max(b["tokens_per_s"], r["tokens_per_s"])
    b["tokens_per_cpu_s"] = max(b["tokens_per_cpu_s"], r["tokens_per_cpu_s"])
PEERS = ("pytorch", "onnxruntime")
ratio = lambda r, p: (f"{r['tokens_per_s'] / p['tokens_per_s']:.2f}x/"
                      f"{r['tokens_per_cpu_s'] / p['tokens_per_cpu_s']:.2f}x") if p else "-"
print("ratios are wall (tokens/s) / CPU (tokens per CPU-s); 'faster peer' is PyTorch or "
      "onnxruntime, whichever is higher on each measure")
print(f"{'engine':30} {'thr':>3} {'tokens/s':>9} {'tok/CPU-s':>9} {'vs torch':>12} "
      f"{'vs ort':>12} {'vs faster peer':>14}  cos vs fp32 (mean/min)")
for t in sorted({t for t, _ in best}):
    rows = sorted((n, r) for (tt, n), r in best.items() if tt == t)
    torch_r = next((r for n, r in rows if n.startswith("pytorch")), None)
    ort_r = next((r for n, r in rows if n.startswith("onnxruntime")), None)
    peers = [p for p in (torch_r, ort_r) if p]
    fast = {"tokens_per_s": max(p["tokens_per_s"] for p in peers),
            "tokens_per_cpu_s": max(p["tokens_per_cpu_s"] for p in peers)} if peers else None
    for name, r in rows:
        drift = (f"  {r['cos_vs_fp32_mean']:.6f}/{r['cos_vs_fp32_min']:.6f}"
                 if "cos_vs_fp32_mean" in r else "")
        print(f"{name:30} {t:>3} {r['tokens_per_s']:>9.1f} {r['tokens_per_cpu_s']:>9.1f} "
              f"{ratio(r, torch_r):>12} {ratio(r, ort_r):>12} {ratio(r, fast):>14}{drift}")
PYEOF
