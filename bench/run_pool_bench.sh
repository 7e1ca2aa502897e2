#!/usr/bin/env bash
# Token pooling figures side by side (issue 13 §2, docs/pooling.md):
#  1. real ColBERTv2 vectors (tests/data/colbert-miyazaki, nbits 8 and 4): imported, exported
#     decompressed, and run through bench_pool (top-k overlap of pooled against unpooled
#     exact MaxSim for pseudo-queries, per factor and linkage; pooling CPU ns per token);
#  2. with --scifact: SciFact with the static model, nbits 2, built at each pool factor
#     (--factors, default 1,2,3) and evaluated with `colplaid eval`: nDCG@10, the share of
#     tokens kept, and pooling's share of the build (the build's own "pooling: ... s" line
#     against its wall time, with and without the calibration that follows the build).
#
# usage: bench/run_pool_bench.sh BUILD_DIR [--scifact] [--model DIR] [--factors 1,2,3]
#                                [--linkage ward|average] [--work DIR]
# SciFact is read from $CP_SHARED_DATA/scifact (default ../shared/data/scifact beside the
# clone); the model defaults to BUILD_DIR/test-cache/glove (scripts/fetch-glove-model.sh).
# SciFact builds take minutes each: run it under nice on a shared machine.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: run_pool_bench.sh BUILD_DIR [--scifact] ...}" && pwd)
shift
scifact=0 model="$build/test-cache/glove" factors=1,2,3 linkage=ward work=""
while [ $# -gt 0 ]; do
  case $1 in
    --scifact) scifact=1 ;;
    --model) model=$2; shift ;;
    --factors) factors=$2; shift ;;
    --linkage) linkage=$2; shift ;;
    --work) work=$2; shift ;;
    *) echo "run_pool_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
cp=$build/colplaid
[ -n "$work" ] || { work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; }
mkdir -p "$work"

echo "== ColBERTv2 Miyazaki vectors: pooled vs unpooled exact MaxSim (load $(cut -d' ' -f1-3 /proc/loadavg))"
for nb in 8 4; do
  "$cp" index import --index "$work/m$nb.db" --colbert "$src/tests/data/colbert-miyazaki/nbits$nb" \
    --force --quiet
  "$cp" index export --index "$work/m$nb.db" --out "$work/m$nb.emb.npy" --doclens-out "$work/m$nb.lens.npy"
  echo "-- nbits$nb"
  "$build/bench/bench_pool" --emb "$work/m$nb.emb.npy" --doclens "$work/m$nb.lens.npy" \
    --factors 2,3,4 --queries 300
done

[ $scifact = 1 ] || exit 0
data="${CP_SHARED_DATA:-$src/../shared/data}/scifact"
[ -f "$data/corpus.jsonl" ] || { echo "no SciFact at $data" >&2; exit 1; }
ndcg() { sed -n 's/.*"ndcg@10": \([0-9.]*\).*/\1/p'; }
echo
echo "== SciFact, static model, nbits 2, --pool-linkage $linkage (load $(cut -d' ' -f1-3 /proc/loadavg))"
printf "%-7s %10s %8s %9s %9s %9s %11s %9s %11s\n" factor tokens share nDCG@10 "pool s" \
  "build s" "pool/build" "calib s" "pool/build-calib"
IFS=, read -ra fs <<<"$factors"
for f in "${fs[@]}"; do
  opts=(--pool-factor "$f")
  [ "$f" -gt 1 ] && opts+=(--pool-linkage "$linkage")
  start=$(date +%s.%N)
  "$cp" index build --index "$work/sf$f.db" --corpus "$data" --model "$model" --nbits 2 --force \
    "${opts[@]}" 2>"$work/sf$f.log"
  end=$(date +%s.%N)
  tokens=$("$cp" index info --index "$work/sf$f.db" --format json |
    sed -n 's/^ *"n_tokens": \([0-9]*\).*/\1/p' | head -1)
  [ "$f" = 1 ] && base_tokens=$tokens
  pool=$(sed -n 's/^pooling: .*, \([0-9.]*\) s$/\1/p' "$work/sf$f.log")
  calib=$(sed -n 's/^calibrate: .*exhaustive \([0-9.]*\) s, settings \([0-9.]*\) s$/\1 \2/p' \
    "$work/sf$f.log")
  score=$("$cp" eval --index "$work/sf$f.db" --queries "$data/queries.jsonl" \
    --qrels "$data/qrels/test.tsv" --model "$model" --format json | ndcg)
  awk -v f="$f" -v t="$tokens" -v b="$base_tokens" -v n="$score" -v p="${pool:-0}" \
    -v s0="$start" -v s1="$end" -v c="${calib:-0 0}" 'BEGIN {
      w = s1 - s0; split(c, cc, " "); c = cc[1] + cc[2]
      printf "%-7s %10d %7.1f%% %9.4f %9.2f %9.1f %10.1f%% %9.1f %10.1f%%\n", f, t, 100 * t / b, n,
        p, w, 100 * p / w, c, 100 * p / (w - c) }'
done
echo "(load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
