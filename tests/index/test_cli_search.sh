#!/usr/bin/env bash
# End-to-end test of `colplaid search` and `colplaid eval` on a small synthetic index
# (bench/gen_synthetic writes the .npy files, `colplaid index build` indexes them): output
# formats (tsv, trec, json), --exact against PLAID with nothing pruned, eval metrics and
# JSON keys, and bad usage / bad input exiting 2 / 1 with one clear line on stderr.
set -u
: "${COLPLAID:?COLPLAID must point at the colplaid binary}"
GEN=${CP_BINARY_DIR:-.}/bench/gen_synthetic
if [ ! -x "$GEN" ]; then
    echo "FAIL: $GEN (target gen_synthetic, built with everything) is missing"
    exit 1
fi
work=$(mktemp -d /tmp/cp_test_cli_search.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

"$GEN" --out "$work" --docs 400 --tokens 20 --dim 64 --topics 20 --queries 12 --fp32 2>/dev/null ||
    { echo "FAIL: gen_synthetic"; exit 1; }
"$COLPLAID" index build --index "$work/idx.db" --embeddings "$work/emb.npy" \
    --doclens "$work/doclens.npy" --centroids 64 --threads 2 --quiet >/dev/null 2>"$work/err" ||
    { echo "FAIL: index build: $(cat "$work/err")"; exit 1; }
Q="$work/queries.npy"

# tsv: qid, docid, rank from 1, non-increasing scores; 12 queries x 5 hits
"$COLPLAID" search --index "$work/idx.db" --query-embeddings "$Q" --k 5 >"$work/tsv" 2>"$work/err" ||
    fail "search tsv: $(cat "$work/err")"
[ "$(wc -l <"$work/tsv")" -eq 60 ] || fail "tsv: expected 60 lines, got $(wc -l <"$work/tsv")"
awk -F'\t' 'BEGIN { q = "none" } NF != 4 { print "fields " NR; exit 1 }
  { if ($1 == q && $3 != r + 1) { print "rank " NR; exit 1 }
    if ($1 != q && $3 != 1) { print "first rank " NR; exit 1 }
    if ($1 == q && $4 > s + 1e-6) { print "order " NR; exit 1 }
    q = $1; r = $3; s = $4 }' "$work/tsv" >"$work/awk" || fail "tsv layout: $(cat "$work/awk")"
[ "$(cut -f1 "$work/tsv" | sort -un | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 8 9 10 11 " ] ||
    fail "tsv qids are not the rows 0..11"

# trec: qid Q0 docid rank score colplaid
"$COLPLAID" search --index "$work/idx.db" --query-embeddings "$Q" --k 3 --format trec >"$work/trec" ||
    fail "search trec"
awk 'NF != 6 || $2 != "Q0" || $6 != "colplaid" { exit 1 }' "$work/trec" || fail "trec layout"

# json: one object per query with qid and hits
"$COLPLAID" search --index "$work/idx.db" --query-embeddings "$Q" --k 2 --format json >"$work/json" ||
    fail "search json"
python3 - "$work/json" <<'PY' || fail "json layout"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 12
for i, line in enumerate(lines):
    o = json.loads(line)
    assert o["qid"] == str(i) and len(o["hits"]) == 2
    assert o["hits"][0]["rank"] == 1 and o["hits"][0]["score"] >= o["hits"][1]["score"]
PY

# --exact == PLAID with nothing pruned (every cell, every doc kept)
"$COLPLAID" search --index "$work/idx.db" --query-embeddings "$Q" --k 10 --exact | cut -f1-3 >"$work/ex"
"$COLPLAID" search --index "$work/idx.db" --query-embeddings "$Q" --k 10 --ncells 64 --ndocs 100000 \
    --threshold -10 | cut -f1-3 >"$work/open"
cmp -s "$work/ex" "$work/open" || fail "--exact differs from PLAID with nothing pruned"

# eval: each query's source document is relevant; the synthetic task is easy
"$COLPLAID" eval --index "$work/idx.db" --queries "$Q" --qrels "$work/qrels.tsv" --format json \
    >"$work/eval" 2>"$work/err" || fail "eval: $(cat "$work/err")"
python3 - "$work/eval" <<'PY' || fail "eval json: $(cat "$work/eval")"
import json, sys
o = json.load(open(sys.argv[1]))
for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
    assert 0.0 <= o[key] <= 1.0, key
assert o["ndcg@10"] > 0.8 and o["recall@100"] > 0.9, o
assert o["queries"] == 12
lat = o["latency_ms"]
assert 0 <= lat["p50"] <= lat["p99"] and lat["mean"] >= 0
PY
"$COLPLAID" eval --index "$work/idx.db" --queries "$Q" --qrels "$work/qrels.tsv" >"$work/evaltext" ||
    fail "eval text"
grep -q "^nDCG@10 " "$work/evaltext" || fail "eval text lacks nDCG@10"

# expect_exit CODE WORD ARGS...: exit status CODE and WORD in the one-line error
expect_exit() {
    local code=$1 word=$2
    shift 2
    "$COLPLAID" "$@" >/dev/null 2>"$work/err"
    local got=$?
    [ "$got" -eq "$code" ] || fail "$* : exit $got, expected $code ($(cat "$work/err"))"
    grep -q -- "$word" "$work/err" || fail "$* : stderr lacks '$word': $(cat "$work/err")"
}
expect_exit 2 "--index" search --query-embeddings "$Q"
expect_exit 2 "exactly one" search --index "$work/idx.db"
expect_exit 2 "--model" search --index "$work/idx.db" --query "hello"
expect_exit 2 "--k" search --index "$work/idx.db" --query-embeddings "$Q" --k 0
expect_exit 2 "--format" search --index "$work/idx.db" --query-embeddings "$Q" --format xml
expect_exit 2 "--qrels" eval --index "$work/idx.db" --queries "$Q"
expect_exit 1 "nope.tsv" eval --index "$work/idx.db" --queries "$Q" --qrels "$work/nope.tsv"
expect_exit 1 "nope.db" search --index "$work/nope.db" --query-embeddings "$Q"
"$GEN" --out "$work/d32" --docs 5 --tokens 4 --dim 32 --queries 2 2>/dev/null
expect_exit 1 "32 dims" search --index "$work/idx.db" --query-embeddings "$work/d32/queries.npy"

if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "all search CLI checks passed"
