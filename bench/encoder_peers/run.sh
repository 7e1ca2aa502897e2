#!/bin/sh
# Encoder speed side by side in one run: colplaid (its default fp32 kernel, the opt-in bf16
# kernel with its cosine drift, and OpenBLAS with and without OPENBLAS_CORETYPE) and PyTorch (OPENBLAS_CORETYPE set to the CPU's real
# type), BERT-base shape (12 x 768, FFN 3072, dim 128), batch 8 x 128 tokens, at 1 and 2
# threads. Prints a table with ratios and writes the JSON records to $OUT (default
# bench_encoder.json).
#
# Usage: [ROUNDS=2] [REPS=5] [OUT=file] bench/encoder_peers/run.sh BUILD_DIR [MODEL_DIR]
#   MODEL_DIR is created with tests/encoder/torch_reference.py when missing.
set -eu
BUILD=${1:?usage: run.sh BUILD_DIR [MODEL_DIR]}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${2:-${TMPDIR:-/tmp}/colplaid_bench_bert_base}
OUT=${OUT:-bench_encoder.json}
REPS=${REPS:-5}   # timed runs per engine (after one warm-up); the best is kept
PY=/usr/bin/python3
CORETYPE=$(grep -q avx512f /proc/cpuinfo && echo SkylakeX || echo Haswell)
VOCAB="$SRC/../shared/data/vocab/bert-base-uncased-vocab.txt"
[ -f "$VOCAB" ] && VOCAB_ARG="--vocab $VOCAB" || VOCAB_ARG=""
if [ ! -f "$MODEL/model.safetensors" ]; then
  echo "writing a random BERT-base-shaped checkpoint to $MODEL" >&2
  $PY "$SRC/tests/encoder/torch_reference.py" --out "$MODEL" --hidden 768 --layers 12 \
    --heads 12 --intermediate 3072 --max-pos 512 --dim 128 --query-maxlen 32 \
    --doc-maxlen 180 $VOCAB_ARG
fi
VSIZE=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$MODEL/config.json")
: > "$OUT"
# Several rounds, interleaved, best of each: a shared machine's load hits every engine alike.
for round in $(seq "${ROUNDS:-2}"); do
for t in 1 2; do
  "$BUILD/bench/bench_encoder" "$MODEL" --threads $t --reps $REPS >> "$OUT"
  CP_GEMM=bf16 "$BUILD/bench/bench_encoder" "$MODEL" --threads $t --reps $REPS >> "$OUT"
  OPENBLAS_CORETYPE=$CORETYPE OPENBLAS_NUM_THREADS=$t CP_GEMM=blas \
    "$BUILD/bench/bench_encoder" "$MODEL" --threads $t --reps $REPS | sed 's/"kernel":"openblas"/"kernel":"openblas-coretype"/' >> "$OUT"
  env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=$t CP_GEMM=blas \
    "$BUILD/bench/bench_encoder" "$MODEL" --threads $t --reps $REPS 2>/dev/null | sed 's/"kernel":"openblas"/"kernel":"openblas-default"/' >> "$OUT"
  OPENBLAS_CORETYPE=$CORETYPE OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
    $PY "$SRC/bench/encoder_peers/torch_peer.py" --threads $t --reps $REPS --vocab-size "$VSIZE" >> "$OUT"
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
print(f"{'engine':30} {'thr':>3} {'tokens/s':>9} {'tok/CPU-s':>9} {'vs torch':>8} "
      f"{'(CPU-s)':>8}  cos vs fp32 (mean/min)")
for (t, name), r in sorted(best.items()):
    peer = next(v for (tt, n), v in best.items() if tt == t and n.startswith("pytorch"))
    drift = (f"  {r['cos_vs_fp32_mean']:.6f}/{r['cos_vs_fp32_min']:.6f}"
             if "cos_vs_fp32_mean" in r else "")
    print(f"{name:30} {t:>3} {r['tokens_per_s']:>9.1f} {r['tokens_per_cpu_s']:>9.1f} "
          f"{r['tokens_per_s'] / peer['tokens_per_s']:>7.2f}x "
          f"{r['tokens_per_cpu_s'] / peer['tokens_per_cpu_s']:>7.2f}x{drift}")
PYEOF
