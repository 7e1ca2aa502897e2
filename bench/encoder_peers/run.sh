#!/bin/sh
# Encoder speed side by side in one run: colplaid (its default kernel, and OpenBLAS with
# and without OPENBLAS_CORETYPE) and PyTorch (OPENBLAS_CORETYPE set to the CPU's real
# type), BERT-base shape (12 x 768, FFN 3072, dim 128), batch 8 x 128 tokens, at 1 and 2
# threads. Prints a table with ratios and writes the JSON records to $OUT (default
# bench_encoder.json).
#
# Usage: bench/encoder_peers/run.sh BUILD_DIR [MODEL_DIR]
#   MODEL_DIR is created with tests/encoder/torch_reference.py when missing.
set -eu
BUILD=${1:?usage: run.sh BUILD_DIR [MODEL_DIR]}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=${2:-${TMPDIR:-/tmp}/colplaid_bench_bert_base}
OUT=${OUT:-bench_encoder.json}
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
for t in 1 2; do
  "$BUILD/bench/bench_encoder" "$MODEL" --threads $t >> "$OUT"
  OPENBLAS_CORETYPE=$CORETYPE OPENBLAS_NUM_THREADS=$t CP_GEMM=blas \
    "$BUILD/bench/bench_encoder" "$MODEL" --threads $t | sed 's/"kernel":"openblas"/"kernel":"openblas-coretype"/' >> "$OUT"
  env -u OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS=$t CP_GEMM=blas \
    "$BUILD/bench/bench_encoder" "$MODEL" --threads $t 2>/dev/null | sed 's/"kernel":"openblas"/"kernel":"openblas-default"/' >> "$OUT"
  OPENBLAS_CORETYPE=$CORETYPE OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t \
    $PY "$SRC/bench/encoder_peers/torch_peer.py" --threads $t --vocab-size "$VSIZE" >> "$OUT"
done
$PY - "$OUT" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'engine':34} {'thr':>3} {'tokens/s':>10} {'tok/CPU-s':>10} {'vs torch':>9}")
for t in (1, 2):
    peer = next(r for r in rows if r["threads"] == t and r["engine"].startswith("pytorch"))
    for r in rows:
        if r["threads"] != t:
            continue
        name = r["engine"] + (" " + r["kernel"] if "kernel" in r else "")
        print(f"{name:34} {t:>3} {r['tokens_per_s']:>10.1f} {r['tokens_per_cpu_s']:>10.1f} "
              f"{r['tokens_per_s'] / peer['tokens_per_s']:>8.2f}x")
PYEOF
