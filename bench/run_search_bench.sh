#!/bin/bash
# Search benchmark, end to end: generate synthetic corpora (easy: bench/gen_synthetic's
# concept pools; hard: --hard, issue 11's structure: shared function words, Zipfian topic
# vocabulary, noisy paraphrasing queries, [MASK]-like padding), build indexes with
# `colplaid index build --embeddings` (which calibrates them), then run bench_search: PLAID's
# fixed defaults and the calibrated settings at recall targets 0.90 / 0.97 / 0.99 for k=10
# and k=100, the index's exhaustive search (--exact) and fp32 exhaustive MaxSim over the
# original vectors, all single-threaded, side by side in one run. Recall is reported against
# both the index's own exhaustive top-k and the uncompressed one.
#
# usage: bench/run_search_bench.sh [BUILD_DIR] [WORK_DIR] [CONFIGS...]
#   BUILD_DIR  cmake build folder with colplaid, bench/gen_synthetic, bench/bench_search
#              (default: build); WORK_DIR (default /tmp/colplaid_search_bench);
#   CONFIGS    any of easy10k hard10k easy100k hard100k (default: easy10k hard10k).
#              Environment: KMEANS_ITERS (default 4), NQ (queries measured, default 100),
#              NX (exhaustive fp32 queries, default 20).
set -euo pipefail
BUILD=${1:-build}
WORK=${2:-/tmp/colplaid_search_bench}
shift 2 2>/dev/null || true
CONFIGS=${*:-"easy10k hard10k"}
COLPLAID=$BUILD/colplaid
GEN=$BUILD/bench/gen_synthetic
BENCH=$BUILD/bench/bench_search
NQ=${NQ:-100}
NX=${NX:-20}
mkdir -p "$WORK"
for exe in "$COLPLAID" "$GEN" "$BENCH"; do
  [ -x "$exe" ] || { echo "missing $exe: build the colplaid, gen_synthetic and bench_search targets" >&2; exit 1; }
done

run_config() {
  local name=$1 docs=$2 mode=$3 seed=$4
  local dir=$WORK/$name
  if [ ! -f "$dir/queries.npy" ]; then
    local gopt=()
    [ "$mode" = hard ] && gopt=(--hard)
    "$GEN" --out "$dir" --docs "$docs" --tokens 70 --queries 200 --seed "$seed" "${gopt[@]}"
  fi
  if [ ! -f "$dir/idx.db" ]; then
    "$COLPLAID" index build --index "$dir/idx.db" --embeddings "$dir/emb.npy" \
      --doclens "$dir/doclens.npy" --nbits 2 --kmeans-iters "${KMEANS_ITERS:-4}" --force
  fi
  echo "== $name: $docs docs x ~70 tokens ($mode) =="
  "$COLPLAID" index info --index "$dir/idx.db" | grep -A10 '^calibration'
  "$BENCH" --index "$dir/idx.db" --queries "$dir/queries.npy" --emb "$dir/emb.npy" \
    --doclens "$dir/doclens.npy" --n "$NQ" --n-exhaustive "$NX" --label "$name" --json "$WORK/$name.json"
}

for c in $CONFIGS; do
  case $c in
    easy10k) run_config easy10k 10000 easy 2 ;;
    hard10k) run_config hard10k 10000 hard 3 ;;
    easy100k) run_config easy100k 100000 easy 1 ;;
    hard100k) run_config hard100k 100000 hard 4 ;;
    *) echo "unknown config $c" >&2; exit 2 ;;
  esac
done
echo "JSON records:"; cat "$WORK"/*.json
