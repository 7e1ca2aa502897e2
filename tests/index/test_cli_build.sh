#!/usr/bin/env bash
# End-to-end test of `colplaid index build` from .npy files: good builds (checked by reading
# the SQLite file with Python's sqlite3, independently of colplaid's own reader), and every
# kind of bad input, which must exit 1 or 2 with one clear line on stderr and leave nothing
# at --index (nor temporary files beside it).
set -u
: "${COLPLAID:?COLPLAID must point at the colplaid binary}"
PY=/usr/bin/python3
if ! $PY -c 'import numpy' 2>/dev/null; then
    echo "SKIP: $PY with numpy is needed to write test .npy files"
    exit 77
fi

work=$(mktemp -d /tmp/cp_test_cli_build.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# make_npy NAME DOCS DIM [MODE]: EMB/DOCLENS/IDS files named NAME.* in $work.
make_npy() {
    $PY - "$work/$1" "$2" "$3" "${4:-good}" <<'EOF'
import sys, numpy as np
base, n_docs, dim, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(5)
lens = rng.integers(3, 12, size=n_docs).astype(np.int64)
centres = rng.normal(size=(16, dim))
rows = centres[rng.integers(0, 16, size=int(lens.sum()))] + 0.3 * rng.normal(size=(int(lens.sum()), dim))
emb = rows.astype(np.float32)
ids = ["doc-%d" % i for i in range(n_docs)]
if mode == "nan": emb[int(lens[:2].sum()) + 1, 3] = np.nan      # doc-2 token 1
if mode == "inf": emb[int(lens[:1].sum()) + 0, 0] = np.inf      # doc-1 token 0
if mode == "zero": emb[int(lens[:3].sum()) + 2, :] = 0          # doc-3 token 2
if mode == "dup": ids[5] = ids[2]
if mode == "f64": emb = emb.astype(np.float64)
if mode == "f16": emb = emb.astype(np.float16)
if mode == "lensfloat": lens = lens.astype(np.float32)
if mode == "lens32": lens = lens.astype(np.int32)
if mode == "sum": lens[0] += 1
if mode == "zerolen":
    emb = np.delete(emb, range(int(lens[:4].sum()), int(lens[:5].sum())), axis=0); lens[4] = 0
if mode == "empty": emb = emb[:0]; lens = lens[:0]; ids = []
if mode == "fortran": emb = np.asfortranarray(emb)
np.save(base + ".emb.npy", emb)
np.save(base + ".lens.npy", lens)
with open(base + ".ids.txt", "w") as f:
    f.write("".join(i + "\n" for i in ids))
EOF
}

# check_db PATH DOCS NBITS [FIRST_ID]: the file is a finished index with DOCS documents.
check_db() {
    $PY - "$1" "$2" "$3" "${4:-doc-0}" <<'EOF' || fail "index $1 does not hold what was built"
import sys, sqlite3, json
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
n = db.execute("select count(*) from documents").fetchone()[0]
meta = dict(db.execute("select key, value from meta").fetchall())
assert n == int(sys.argv[2]), ("documents", n)
assert int(meta["nbits"]) == int(sys.argv[3]), meta
assert json.loads(meta["build"])["n_documents"] == n, meta["build"]
tokens = db.execute("select sum(n_tokens) from segments").fetchone()[0]
assert tokens == db.execute("select sum(n_tokens) from documents").fetchone()[0]
ids = [r[0] for r in db.execute("select external_id from documents order by doc_id limit 2")]
assert ids[0] == sys.argv[4], ids
EOF
}

no_leftovers() {
    local idx=$1
    [[ -e $idx ]] && fail "$2: a file was left at $idx"
    ls "$work" | grep -q -- "tmp-build" && fail "$2: temporary files left: $(ls "$work" | grep tmp-build)"
    rm -f "$work"/*tmp-build* 2>/dev/null
    return 0
}

# expect_fail CASE WANT_STATUS NEEDLE ARGS...: exit status, one stderr line containing NEEDLE.
expect_fail() {
    local name=$1 want=$2 needle=$3
    shift 3
    local idx="$work/$name.db"
    "$COLPLAID" index build --index "$idx" --quiet "$@" >"$work/out" 2>"$work/err"
    local st=$?
    [[ $st == "$want" ]] || fail "$name: exit status $st, expected $want ($(cat "$work/err"))"
    local lines
    lines=$(grep -c . "$work/err")
    # usage errors add a "(see --help)" hint line
    [[ $lines -ge 1 && $lines -le 2 ]] || fail "$name: expected one message, got $lines lines: $(cat "$work/err")"
    grep -q -- "$needle" "$work/err" || fail "$name: message lacks '$needle': $(cat "$work/err")"
    no_leftovers "$idx" "$name"
    echo "ok  $name: $(head -1 "$work/err")"
}

npy_args() { echo --embeddings "$work/$1.emb.npy" --doclens "$work/$1.lens.npy" --ids "$work/$1.ids.txt"; }

# ---- good builds ----
make_npy good 300 32
for nb in 1 2 4; do
    idx="$work/good$nb.db"
    "$COLPLAID" index build --index "$idx" $(npy_args good) --nbits $nb --kmeans-iters 2 \
        --segment-docs 64 --threads 2 2>"$work/err" || fail "build nbits $nb: $(cat "$work/err")"
    grep -q "indexing" "$work/err" || fail "no progress output on stderr"
    check_db "$idx" 300 $nb
done
ls "$work" | grep -q tmp-build && fail "temporary files left after a good build"

# existing file: refused without --force (and untouched), replaced with it
before=$(md5sum <"$work/good2.db")
"$COLPLAID" index build --index "$work/good2.db" --quiet $(npy_args good) 2>"$work/err"
st=$?
[[ $st == 1 ]] || fail "existing index: exit $st, expected 1"
grep -q "already exists" "$work/err" || fail "existing index: message: $(cat "$work/err")"
[[ $(md5sum <"$work/good2.db") == "$before" ]] || fail "existing index was modified"
"$COLPLAID" index build --index "$work/good2.db" --quiet --force --centroids 8 --kmeans-points 5 $(npy_args good) \
    2>"$work/err" || fail "--force: $(cat "$work/err")"
check_db "$work/good2.db" 300 2
$PY -c "
import sqlite3, json
b = json.loads(dict(sqlite3.connect('$work/good2.db').execute('select key, value from meta'))['build'])
assert b['n_centroids'] == 8 and b['kmeans_points_per_centroid'] == 5 and b['n_kmeans_vectors'] == 40, b
" || fail "--centroids 8 --kmeans-points 5 not applied"

# --centroid-scale multiplies PLAID's default K (the static model's default is 4, see
# tests/encoder/static_scifact.sh) while k-means keeps at least 8 vectors per centroid;
# npy input gets scale 1. 12,000 docs of ~7 tokens: PLAID's K 4096, 84k vectors.
make_npy many 12000 8
for scale in 1 2 4; do
    "$COLPLAID" index build --index "$work/scale$scale.db" --quiet $(npy_args many) --kmeans-iters 1 \
        $([[ $scale == 1 ]] || echo --centroid-scale $scale) 2>"$work/err" ||
        fail "--centroid-scale $scale: $(cat "$work/err")"
done
$PY -c "
import sqlite3, json
b = [json.loads(dict(sqlite3.connect('$work/scale%d.db' % s).execute('select key, value from meta'))['build']) for s in (1, 2, 4)]
assert [x['centroid_scale'] for x in b] == [1, 2, 4], b
k = [x['n_centroids'] for x in b]
assert k[0] == 4096 and k[1] == 8192, k                      # doubled
assert k[2] == 8192 and b[2]['n_train_vectors'] < 8 * 16384, k  # 16384 would leave < 8 per centroid
" || fail "--centroid-scale: unexpected numbers of centroids"
expect_fail bad_scale 2 "centroid-scale" $(npy_args good) --centroid-scale 0

# float16 and int32 inputs, default ids, and a tiny corpus (1 doc of 3 tokens)
make_npy half 40 16 f16
"$COLPLAID" index build --index "$work/half.db" --quiet --embeddings "$work/half.emb.npy" \
    --doclens "$work/half.lens.npy" 2>"$work/err" || fail "float16 build: $(cat "$work/err")"
check_db "$work/half.db" 40 2 0
make_npy l32 20 16 lens32
"$COLPLAID" index build --index "$work/l32.db" --quiet $(npy_args l32) 2>"$work/err" ||
    fail "int32 doclens build: $(cat "$work/err")"
$PY -c "
import numpy as np
np.save('$work/tiny.emb.npy', np.random.default_rng(1).normal(size=(3, 8)).astype(np.float32))
np.save('$work/tiny.lens.npy', np.array([3]))"
"$COLPLAID" index build --index "$work/tiny.db" --quiet --embeddings "$work/tiny.emb.npy" \
    --doclens "$work/tiny.lens.npy" 2>"$work/err" || fail "tiny build: $(cat "$work/err")"
check_db "$work/tiny.db" 1 2 0
# the same seed gives the same index content
"$COLPLAID" index build --index "$work/again.db" --quiet $(npy_args good) --nbits 2 --kmeans-iters 2 \
    --segment-docs 64 2>/dev/null
"$COLPLAID" index build --index "$work/again2.db" --quiet $(npy_args good) --nbits 2 --kmeans-iters 2 \
    --segment-docs 64 2>/dev/null
b2=$($PY -c "import sqlite3; q='select centroids, bucket_cutoffs, bucket_weights from codec'; print(sqlite3.connect('$work/again.db').execute(q).fetchone() == sqlite3.connect('$work/again2.db').execute(q).fetchone())")
[[ $b2 == True ]] || fail "two builds with the same seed differ"

# ---- bad input: runtime failures (exit 1) ----
make_npy d12 30 12
expect_fail dim12 1 "dimension 12" $(npy_args d12)
make_npy f64 30 16 f64
expect_fail dtype_f64 1 "dtype" $(npy_args f64)
make_npy lf 30 16 lensfloat
expect_fail doclens_float 1 "int32 or int64" $(npy_args lf)
make_npy sum 30 16 sum
expect_fail doclens_sum 1 "sum to" $(npy_args sum)
make_npy dup 30 16 dup
expect_fail duplicate_ids 1 'dup.ids.txt line 6: duplicate document id "doc-2" (first on line 3)' $(npy_args dup)
make_npy nan 30 16 nan
expect_fail nan 1 '"doc-2" token 1 contains NaN' $(npy_args nan)
make_npy inf 30 16 inf
expect_fail inf 1 '"doc-1" token 0 contains NaN or Inf' $(npy_args inf)
make_npy zero 30 16 zero
expect_fail zero_vector 1 '"doc-3" token 2 is an all-zero vector' $(npy_args zero)
make_npy zl 30 16 zerolen
expect_fail zero_length_doc 1 '"doc-4" has no tokens' $(npy_args zl)
make_npy empty 5 16 empty
expect_fail empty_corpus 1 "empty" $(npy_args empty)
make_npy fort 30 16 fortran
expect_fail fortran 1 "Fortran" $(npy_args fort)
expect_fail missing_file 1 "nothere.npy" --embeddings "$work/nothere.npy" --doclens "$work/good.lens.npy"
head -c 100 "$work/good.emb.npy" >"$work/trunc.emb.npy"
expect_fail truncated 1 "trunc.emb.npy" --embeddings "$work/trunc.emb.npy" --doclens "$work/good.lens.npy"
head -c -100 "$work/good.emb.npy" >"$work/short.emb.npy"
expect_fail truncated_data 1 "short.emb.npy: the header announces" --embeddings "$work/short.emb.npy" --doclens "$work/good.lens.npy"
head -n 299 "$work/good.ids.txt" >"$work/short.ids.txt"
expect_fail ids_count 1 "short.ids.txt" --embeddings "$work/good.emb.npy" --doclens "$work/good.lens.npy" --ids "$work/short.ids.txt"

# ---- bad usage (exit 2) ----
expect_fail no_input 2 "input is required"
expect_fail both_inputs 2 "not both" $(npy_args good) --corpus "$work/c.jsonl" --model "$work"
expect_fail nbits3 2 "nbits" $(npy_args good) --nbits 3
expect_fail centroids_text 2 "centroids" $(npy_args good) --centroids many
expect_fail unknown_option 2 "unknown option" $(npy_args good) --frobnicate
expect_fail lone_doclens 2 "go together" --embeddings "$work/good.emb.npy"
"$COLPLAID" index build --embeddings x --doclens y 2>/dev/null
[[ $? == 2 ]] || fail "missing --index should be a usage error"

# ---- text corpora through a tiny static model (GloVe-layout JSON made here) ----
$PY - "$work" <<'EOF2'
import sys, json, random
work = sys.argv[1]
rng = random.Random(3)
words = ["w%d" % i for i in range(300)]
vec = {}
for i, w in enumerate(words):
    v = [rng.gauss(0, 1) for _ in range(16)]
    vec[w] = v + [sum(x * x for x in v) ** 0.5, i]
json.dump({"precision": 8, "l2NormIndex": 16, "wordIndex": 17, "size": len(words),
           "dimensions": 16, "words": words, "vectors": vec,
           "unkVector": [0] * 16 + [0, -1]}, open(work + "/glove.json", "w"))
with open(work + "/c.jsonl", "w") as f:
    for d in range(120):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 20)))
        rec = {"_id": "t%d" % d, "text": text}
        if d % 3 == 0: rec["title"] = "w1 w2"
        if d % 4 == 0: rec["metadata"] = {"n": d}
        f.write(json.dumps(rec) + "\n")
with open(work + "/c.tsv", "w") as f:
    for d in range(50):
        f.write("s%d\t%s\n" % (d, " ".join(rng.choice(words) for _ in range(5))))
lines = open(work + "/c.jsonl").read().splitlines()
lines[57] = '{"_id": "broken", "text": '
open(work + "/bad.jsonl", "w").write("\n".join(lines) + "\n")
EOF2
if "$COLPLAID" model convert --glove "$work/glove.json" --out "$work/model" >/dev/null 2>"$work/err"; then
    "$COLPLAID" index build --index "$work/text.db" --quiet --corpus "$work/c.jsonl" \
        --model "$work/model" 2>"$work/err" || fail "jsonl corpus build: $(cat "$work/err")"
    check_db "$work/text.db" 120 2 t0
    $PY - "$work/text.db" <<'EOF2' || fail "jsonl corpus: stored text/metadata/encoder wrong"
import sys, sqlite3, json
db = sqlite3.connect(sys.argv[1])
row = db.execute("select text, metadata from documents where external_id = 't0'").fetchone()
assert row[0].startswith("w1 w2 "), row
assert json.loads(row[1]) == {"n": 0}, row
assert json.loads(dict(db.execute("select key, value from meta"))["encoder"])["kind"] == "static"
EOF2
    "$COLPLAID" index build --index "$work/tsv.db" --quiet --corpus "$work/c.tsv" \
        --model "$work/model" 2>"$work/err" || fail "tsv corpus build: $(cat "$work/err")"
    mkdir -p "$work/beir" && cp "$work/c.jsonl" "$work/beir/corpus.jsonl"
    "$COLPLAID" index build --index "$work/beir.db" --quiet --corpus "$work/beir" \
        --model "$work/model" 2>"$work/err" || fail "BEIR folder build: $(cat "$work/err")"
    expect_fail bad_jsonl_line 1 "bad.jsonl line 58: invalid JSON" --corpus "$work/bad.jsonl" --model "$work/model"
    expect_fail corpus_missing 1 "nope.jsonl" --corpus "$work/nope.jsonl" --model "$work/model"
    cp "$work/c.tsv" "$work/c.csv"
    expect_fail corpus_format 1 "unknown corpus format" --corpus "$work/c.csv" --model "$work/model"
    expect_fail model_missing 1 "nomodel" --corpus "$work/c.jsonl" --model "$work/nomodel"
else
    fail "could not make the test model: $(cat "$work/err")"
fi

# ---- help and the later actions ----
"$COLPLAID" index build --help | grep -q -- "--embeddings" || fail "build --help"
"$COLPLAID" index --help | grep -q "build" || fail "index --help"
# add/delete exist now (live-index work, tests in test_live*.sh): without an input they
# are usage errors
for a in add delete; do
    "$COLPLAID" index $a --index "$work/good1.db" 2>"$work/err"
    st=$?
    [[ $st == 2 ]] || fail "index $a without input: exit $st"
    grep -q "either" "$work/err" || fail "index $a message: $(cat "$work/err")"
done
"$COLPLAID" index frobnicate 2>/dev/null
[[ $? == 2 ]] || fail "unknown action should exit 2"

if ((failures)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all index build CLI checks passed"
