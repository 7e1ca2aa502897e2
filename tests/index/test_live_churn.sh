#!/usr/bin/env bash
# Churn on SciFact (static GloVe model): CP_CHURN_CYCLES (default 25; 75 for a longer run)
# cycles of deleting 30 documents and adding them back through the CLI. Checks that the
# counts stay exact after every cycle, that `index check` (the lexical side's rows and terms
# included) passes, that nDCG@10 after the churn is within 0.01 of a fresh build and the
# lexical side's (BM25) within 0.002; reports search latency of the fresh build, after the churn and after
# compaction.
# It needs SciFact's qrels (CC BY-NC, not in the repository): without $CP_SHARED_DATA/scifact
# it skips (exit 77). Registered in the release pass only.
# usage: test_live_churn.sh COLPLAID SOURCE_DIR BUILD_DIR
set -u
command -v jq >/dev/null || { echo "FAIL: jq is missing (scripts/setup-deps.sh installs it)"; exit 1; }
colplaid=$1 src=$2 build=$3
cycles=${CP_CHURN_CYCLES:-25}
sf=${CP_SHARED_DATA:-$src/../shared/data}/scifact
[[ -f $sf/corpus.jsonl && -f $sf/qrels/test.tsv ]] ||
    { echo "SKIP: SciFact (CC BY-NC, not redistributable) is absent at $sf"; exit 77; }
model=$build/test-cache/glove
mkdir -p "$build/tests"
if ! bash "$src/scripts/fetch-glove-model.sh" "$colplaid" "$model" >"$build/tests/live_churn.fetch.log" 2>&1; then
    echo "FAIL: the static model could not be fetched or converted:"; tail -5 "$build/tests/live_churn.fetch.log"
    exit 1
fi
work=$(mktemp -d "$build/tests/live_churn.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

idx=$work/churn.db
"$colplaid" index build --index "$idx" --corpus "$sf/corpus.jsonl" --model "$model" --quiet \
    || { echo "FAIL: build"; exit 1; }
cp "$idx" "$work/fresh.db"
n_docs=$(wc -l <"$sf/corpus.jsonl")
info() { "$colplaid" index info --index "$1" --format json | jq -r ".$2"; }
evaluate() {
    "$colplaid" eval --index "$1" --model "$model" --queries "$sf/queries.jsonl" \
        --qrels "$sf/qrels/test.tsv" --threads 1 --format json
}

for ((c = 0; c < cycles; c++)); do
    first=$(((c * 37) % (n_docs - 30) + 1))
    sed -n "${first},$((first + 29))p" "$sf/corpus.jsonl" >"$work/batch.jsonl"
    jq -r '._id' "$work/batch.jsonl" >"$work/ids.txt"
    out=$("$colplaid" index delete --index "$idx" --ids "$work/ids.txt" --quiet) || fail "delete $c"
    [[ $out == "committed: deleted 30 documents" ]] || fail "cycle $c delete: $out"
    [[ $(info "$idx" n_documents) == $((n_docs - 30)) ]] || fail "cycle $c: count after delete"
    "$colplaid" index add --index "$idx" --corpus "$work/batch.jsonl" --model "$model" --quiet \
        >"$work/add.out" || fail "add $c"
    grep -q "committed 30 documents (30 added, 0 replaced" "$work/add.out" \
        || fail "cycle $c add: $(cat "$work/add.out")"
    [[ $(info "$idx" n_documents) == "$n_docs" ]] || fail "cycle $c: count after add"
done
"$colplaid" index check --index "$idx" >/dev/null || fail "check after churn"
echo "churn: $cycles cycles, $(info "$idx" n_deleted) tombstones, $(info "$idx" n_segments) segments"

fresh=$(evaluate "$work/fresh.db")
churned=$(evaluate "$idx")
"$colplaid" index compact --index "$idx" --quiet >/dev/null || fail "compact"
"$colplaid" index check --index "$idx" >/dev/null || fail "check after compact"
[[ $(info "$idx" n_deleted) == 0 ]] || fail "tombstones left after compact"
compacted=$(evaluate "$idx")
for name in fresh churned compacted; do
    j=${!name}
    printf '%-10s nDCG@10 %s  latency mean %s ms  p50 %s ms  p99 %s ms\n' "$name" \
        "$(jq -r '."ndcg@10"' <<<"$j")" "$(jq -r .latency_ms.mean <<<"$j")" \
        "$(jq -r .latency_ms.p50 <<<"$j")" "$(jq -r .latency_ms.p99 <<<"$j")"
done
diff=$(jq -n --argjson a "$fresh" --argjson b "$churned" '($a."ndcg@10" - $b."ndcg@10") | fabs')
jq -e -n --argjson d "$diff" '$d <= 0.01' >/dev/null || fail "nDCG@10 differs by $diff after churn"
diff2=$(jq -n --argjson a "$churned" --argjson b "$compacted" '($a."ndcg@10" - $b."ndcg@10") | fabs')
jq -e -n --argjson d "$diff2" '$d == 0' >/dev/null || fail "compaction changed nDCG@10 by $diff2"
echo "nDCG@10 difference fresh vs churned: $diff; churned vs compacted: $diff2"

# The lexical side after the churn: `index check` above compared its rows and terms with the
# live texts; BM25 ranks the same documents as in the fresh build (the same texts, so the
# same term statistics; only ties between re-added documents may order differently).
lexical() {
    "$colplaid" eval --index "$1" --mode lexical --queries "$sf/queries.jsonl" \
        --qrels "$sf/qrels/test.tsv" --threads 1 --format json | jq -r '."ndcg@10"'
}
lex_fresh=$(lexical "$work/fresh.db") lex_churned=$(lexical "$idx")
echo "lexical nDCG@10: fresh $lex_fresh, after churn and compaction $lex_churned"
jq -e -n --argjson a "$lex_fresh" --argjson b "$lex_churned" '$a > 0.5 and (($a - $b) | fabs) <= 0.002' \
    >/dev/null || fail "lexical nDCG@10 after churn $lex_churned, fresh $lex_fresh"

if ((failures)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "churn test passed"
