#!/bin/bash
# Search benchmark, end to end: generate synthetic clustered corpora, build indexes with
# `colplaid index build --embeddings`, then run bench_search (PLAID at k=10 and k=100
# defaults, exact mode, and exhaustive fp32 MaxSim over the original vectors, all
# single-threaded, side by side) and collect the JSON records.
#
#   config "100k": 100,000 docs x ~70 tokens (~7M tokens), dim 128, nbits 2, PLAID's default K
#                 targets: recall@10 >= 0.95 of exact (k=10 defaults), recall@100 >= 0.99
#                 (k=100 defaults), >= 30x faster than exhaustive fp32 MaxSim
#   config "20k":  20,000 docs x ~60 tokens, K = 16384; target < 5 ms/query single-threaded
#
# usage: bench/run_search_bench.sh [BUILD_DIR] [WORK_DIR] [CONFIGS...]
#   BUILD_DIR  cmake build folder with colplaid, bench/gen_synthetic, bench/bench_search
#              (default: build); WORK_DIR (default /tmp/colplaid_search_bench);
#   CONFIGS    any of 100k 20k (default: both). Environment: CENTROIDS_100K (default: PLAID's
#              formula; set e.g. 8192 when the build machine is slow), KMEANS_ITERS (default 4),
#              NQ (queries measured, default 100), NX (exhaustive fp32 queries, default 20).
set -euo pipefail
BUILD=${1:-build}
WORK=${2:-/tmp/colplaid_search_bench}
shift 2 2>/dev/null || true
CONFIGS=${*:-"100k 20k"}
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
  local name=$1 docs=$2 tokens=$3 topics=$4 centroids=$5 seed=$6
  local dir=$WORK/$name
  if [ ! -f "$dir/queries.npy" ]; then
    "$GEN" --out "$dir" --docs "$docs" --tokens "$tokens" --topics "$topics" --queries 200 --seed "$seed"
  fi
  if [ ! -f "$dir/idx.db" ]; then
    local kopt=()
    [ -n "$centroids" ] && kopt=(--centroids "$centroids")
    "$COLPLAID" index build --index "$dir/idx.db" --embeddings "$dir/emb.npy" \
      --doclens "$dir/doclens.npy" --nbits 2 --kmeans-iters "${KMEANS_ITERS:-4}" "${kopt[@]}" --force
  fi
  echo "== $name: $docs docs x ~$tokens tokens =="
  "$BENCH" --index "$dir/idx.db" --queries "$dir/queries.npy" --emb "$dir/emb.npy" \
    --doclens "$dir/doclens.npy" --n "$NQ" --n-exhaustive "$NX" --label "$name" --json "$WORK/$name.json"
}

for c in $CONFIGS; do
  case $c in
    100k) run_config 100k 100000 70 2000 "${CENTROIDS_100K:-}" 1 ;;
    20k) run_config 20k 20000 60 400 16384 2 ;;
    *) echo "unknown config $c" >&2; exit 2 ;;
  esac
done
echo "JSON records:"; cat "$WORK"/*.json
