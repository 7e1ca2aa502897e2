#!/bin/bash
# Lexical and hybrid search on SciFact (issue 13 section 1; docs/hybrid.md), side by side in
# one run: `colplaid eval` of the late, lexical and hybrid modes (default fusion, linear at
# several alphas with z-score and min-max normalisation, RRF) on the test queries, k = 10,
# single-threaded, with each mode's mean latency as a ratio to late's from the same run.
# Builds the index (static model, nbits 2) unless WORK_DIR/scifact.db exists.
#
# usage: bench/hybrid_scifact.sh [BUILD_DIR] [MODEL_DIR] [WORK_DIR]
#   BUILD_DIR  cmake build folder with colplaid (default: build)
#   MODEL_DIR  the static model (default: models/glove; scripts/fetch-glove-model.sh)
#   WORK_DIR   default /tmp/colplaid_hybrid_bench
#   Environment: SCIFACT (default ../shared/data/scifact), QRELS (default test; "train" to
#   choose weights on held-out queries), ALPHAS (default "0.6 0.7 0.75 0.8 0.9"), ROUNDS
#   (default 5: rounds of the latency comparison below; 0 skips it).
# Then, the latency target (hybrid at k = 10 <= 1.5x late): bench/bench_hybrid alternates
# late and hybrid query by query in one process, ROUNDS rounds, and prints the median
# ratios hybrid / late of wall time and of process CPU time, with the load average.
set -euo pipefail
BUILD=${1:-build}
MODEL=${2:-models/glove}
WORK=${3:-/tmp/colplaid_hybrid_bench}
SCIFACT=${SCIFACT:-../shared/data/scifact}
QRELS=${QRELS:-test}
ALPHAS=${ALPHAS:-"0.6 0.7 0.75 0.8 0.9"}
ROUNDS=${ROUNDS:-5}
COLPLAID=$BUILD/colplaid
mkdir -p "$WORK"
idx=$WORK/scifact.db
if [ ! -f "$idx" ]; then
  "$COLPLAID" index build --corpus "$SCIFACT" --model "$MODEL" --nbits 2 --index "$idx" --quiet
fi
"$COLPLAID" index lexical --index "$idx" --quiet # an index built before the lexical side
late_ms=""
row() {
  local name=$1
  shift
  local j
  j=$("$COLPLAID" eval --index "$idx" --model "$MODEL" --queries "$SCIFACT/queries.jsonl" \
        --qrels "$SCIFACT/qrels/$QRELS.tsv" --k 10 --threads 1 --format json "$@")
  python3 - "$name" "$j" "$late_ms" <<'PY'
import json, sys
name, j, late = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ms = j["latency_ms"]["mean"]
ratio = "%.2f" % (ms / float(late)) if late else "1.00"
print("| %-34s | %.4f | %.4f | %7.2f | %s |" % (name, j["ndcg@10"], j["recall@10"], ms, ratio))
PY
  if [ -z "$late_ms" ]; then
    late_ms=$(echo "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["mean"])')
  fi
}
echo "SciFact $QRELS queries, static model, nbits 2, k = 10, one thread; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| mode | nDCG@10 | Recall@10 | mean ms | latency / late |"
echo "|---|---|---|---|---|"
row "late (PLAID)" --mode late
row "lexical (FTS5 bm25)" --mode lexical
row "hybrid (default)" --mode hybrid
row "hybrid rrf" --mode hybrid --fusion rrf
for a in $ALPHAS; do
  row "hybrid linear z-score alpha $a" --mode hybrid --alpha "$a"
done
for a in $ALPHAS; do
  row "hybrid linear min-max alpha $a" --mode hybrid --alpha "$a" --normalize minmax
done
if [ "$ROUNDS" -gt 0 ]; then
  echo
  echo "Latency, hybrid against late side by side (bench_hybrid, $ROUNDS rounds):"
  "$BUILD/bench/bench_hybrid" "$idx" "$MODEL" "$SCIFACT/queries.jsonl" \
    "$SCIFACT/qrels/$QRELS.tsv" "$ROUNDS" 10
fi
