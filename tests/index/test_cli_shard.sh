#!/usr/bin/env bash
# Shared codecs, shard builds and merging through the CLI (issue 15 §1): `index train`
# writes a codec file; `index build --codec-from` uses it (the same codec as a plain build
# with the same seed); `--shard I/N` builds partition the ids exactly, by the hash that
# docs/index-format.md defines (reimplemented here in Python); `index merge` of the shards
# equals a single build with the same codec: exhaustive search gives the same ids with
# scores within 1e-5, and every document decompresses to the same vectors. Merges of
# different codecs (exit 2) and of overlapping ids (exit 1) are refused, leaving nothing.
set -u
: "${COLPLAID:?COLPLAID must point at the colplaid binary}"
PY=/usr/bin/python3
if ! $PY -c 'import numpy' 2>/dev/null; then
    echo "SKIP: $PY with numpy is needed to write test .npy files"
    exit 77
fi

work=$(mktemp -d /tmp/cp_test_cli_shard.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# 900 documents of 3..14 tokens, dim 32, clustered; ids with non-ASCII bytes among them.
$PY - "$work" <<'EOF2'
import sys, numpy as np
w = sys.argv[1]
rng = np.random.default_rng(11)
n, dim = 900, 32
lens = rng.integers(3, 15, size=n).astype(np.int64)
centres = rng.normal(size=(40, dim))
tot = int(lens.sum())
emb = centres[rng.integers(0, 40, size=tot)] + 0.35 * rng.normal(size=(tot, dim))
np.save(w + "/emb.npy", emb.astype(np.float32))
np.save(w + "/lens.npy", lens)
ids = ["doc-%d" % i if i % 7 else "dóc-%d-ü" % i for i in range(n)]
open(w + "/ids.txt", "w", encoding="utf-8").write("".join(i + "\n" for i in ids))
q = centres[rng.integers(0, 40, size=(12, 8))] + 0.35 * rng.normal(size=(12, 8, dim))
np.save(w + "/q.npy", q.astype(np.float32))
# another dimension, for the refusal below
np.save(w + "/emb16.npy", rng.normal(size=(tot, 16)).astype(np.float32))
EOF2
inputs=(--embeddings "$work/emb.npy" --doclens "$work/lens.npy" --ids "$work/ids.txt")

fingerprint() { "$COLPLAID" index info --index "$1" --format json |
    $PY -c 'import json, sys; print(json.load(sys.stdin)["codec_fingerprint"])'; }

# ---- train, and builds with the codec ----
"$COLPLAID" index train "${inputs[@]}" --out "$work/codec.db" --kmeans-iters 2 --quiet \
    2>"$work/err" || fail "index train: $(cat "$work/err")"
"$COLPLAID" index build "${inputs[@]}" --index "$work/plain.db" --kmeans-iters 2 --no-calibrate \
    --quiet 2>"$work/err" || fail "plain build: $(cat "$work/err")"
"$COLPLAID" index build "${inputs[@]}" --index "$work/single.db" --codec-from "$work/codec.db" \
    --segment-docs 100 --no-calibrate --quiet 2>"$work/err" || fail "build --codec-from: $(cat "$work/err")"
for i in 0 1 2 3; do
    "$COLPLAID" index build "${inputs[@]}" --index "$work/s$i.db" --codec-from "$work/codec.db" \
        --shard $i/4 --segment-docs 64 --no-calibrate --quiet 2>"$work/err" ||
        fail "build --shard $i/4: $(cat "$work/err")"
done
fp=$(fingerprint "$work/codec.db")
[[ $fp =~ ^[0-9a-f]{16}$ ]] || fail "codec fingerprint '$fp'"
for f in plain single s0 s1 s2 s3; do
    [[ $(fingerprint "$work/$f.db") == "$fp" ]] || fail "$f.db has another codec than codec.db"
done
echo "ok  train + build --codec-from + 4 shards: one codec, fingerprint $fp"

# The codec file holds a codec and no documents; the shard files record their shard, and
# the shards partition the ids exactly as the documented hash says.
$PY - "$work" <<'EOF2' || fail "codec file or shard partition"
import sys, sqlite3, json
w = sys.argv[1]
M = (1 << 64) - 1
def shard_hash(b):
    h = 0xcbf29ce484222325
    for c in b:
        h ^= c
        h = (h * 0x100000001b3) & M
    h ^= h >> 33; h = (h * 0xff51afd7ed558ccd) & M
    h ^= h >> 33; h = (h * 0xc4ceb9fe1a85ec53) & M
    h ^= h >> 33
    return h
def db(name): return sqlite3.connect("file:%s/%s.db?mode=ro" % (w, name), uri=True)
c = db("codec")
assert c.execute("select count(*) from documents").fetchone()[0] == 0
assert c.execute("select count(*) from segments").fetchone()[0] == 0
b = json.loads(dict(c.execute("select key, value from meta"))["build"])
assert b["codec_only"] is True and b["n_source_documents"] == 900, b
ids = open(w + "/ids.txt", encoding="utf-8").read().split("\n")[:-1]
seen = {}
for i in range(4):
    d = db("s%d" % i)
    meta = dict(d.execute("select key, value from meta"))
    assert json.loads(meta["shard"]) == {"index": i, "count": 4, "hash": "fnv1a64-fmix64"}, meta["shard"]
    assert json.loads(meta["build"])["codec_from"].endswith("codec.db"), meta["build"]
    for (e,) in d.execute("select external_id from documents where deleted = 0"):
        assert e not in seen, ("in two shards", e)
        assert shard_hash(e.encode("utf-8")) % 4 == i, ("wrong shard", e, i)
        seen[e] = i
assert sorted(seen) == sorted(ids), (len(seen), len(ids))
sizes = [list(seen.values()).count(i) for i in range(4)]
assert min(sizes) > 150, sizes
print("ok  shards partition the 900 ids:", sizes)
EOF2

# ---- merge, and equality with the single build ----
"$COLPLAID" index merge --out "$work/all.db" "$work/s0.db" "$work/s1.db" "$work/s2.db" \
    "$work/s3.db" 2>"$work/err" || fail "index merge: $(cat "$work/err")"
grep -q "merge: .*s3.db: [0-9]* documents" "$work/err" || fail "merge progress: $(cat "$work/err")"
[[ $(fingerprint "$work/all.db") == "$fp" ]] || fail "the merged index has another codec"
"$COLPLAID" index check --index "$work/all.db" >"$work/out" 2>&1 || fail "check all.db: $(cat "$work/out")"
ls "$work" | grep -q tmp-build && fail "temporary files left after the merge"
for f in single all; do
    "$COLPLAID" search --index "$work/$f.db" --query-embeddings "$work/q.npy" --exact --k 20 \
        >"$work/$f.tsv" 2>"$work/err" || fail "search $f: $(cat "$work/err")"
    "$COLPLAID" index export --index "$work/$f.db" --out "$work/$f.emb.npy" \
        --doclens-out "$work/$f.lens.npy" --ids "$work/$f.ids.txt" 2>"$work/err" ||
        fail "export $f: $(cat "$work/err")"
done
$PY - "$work" <<'EOF2' || fail "the merged index differs from the single build"
import sys, numpy as np
w = sys.argv[1]
def hits(name):
    out = {}
    for line in open("%s/%s.tsv" % (w, name), encoding="utf-8"):
        q, d, r, s = line.rstrip("\n").split("\t")
        out.setdefault(q, []).append((d, float(s)))
    return out
a, b = hits("single"), hits("all")
assert sorted(a) == sorted(b) and len(a) == 12, (sorted(a), sorted(b))
worst = 0.0
for q in a:
    assert [d for d, _ in a[q]] == [d for d, _ in b[q]], (q, a[q], b[q])
    worst = max(worst, max(abs(x - y) for (_, x), (_, y) in zip(a[q], b[q])))
assert worst <= 1e-5, worst
def vectors(name):
    emb = np.load("%s/%s.emb.npy" % (w, name)); lens = np.load("%s/%s.lens.npy" % (w, name))
    ids = open("%s/%s.ids.txt" % (w, name), encoding="utf-8").read().split("\n")[:-1]
    off = np.concatenate([[0], np.cumsum(lens)])
    return {ids[i]: emb[off[i]:off[i + 1]] for i in range(len(ids))}
va, vb = vectors("single"), vectors("all")
assert sorted(va) == sorted(vb) and len(va) == 900
assert all(np.array_equal(va[k], vb[k]) for k in va), "decompressed vectors differ"
print("ok  merged == single build: 12 exact searches (k 20, max score diff %.1e), 900 documents' vectors identical" % worst)
EOF2

# Deleted documents (tombstones) are not carried over.
cp "$work/s2.db" "$work/s2del.db"
sqlite_ids=$($PY -c "
import sqlite3; db = sqlite3.connect('$work/s2.db')
print('\n'.join(r[0] for r in db.execute('select external_id from documents order by doc_id limit 5')))")
printf '%s\n' "$sqlite_ids" >"$work/gone.txt"
"$COLPLAID" index delete --index "$work/s2del.db" --ids "$work/gone.txt" --quiet >/dev/null 2>"$work/err" ||
    fail "delete: $(cat "$work/err")"
"$COLPLAID" index merge --out "$work/del.db" --quiet --no-calibrate "$work/s0.db" "$work/s1.db" \
    "$work/s2del.db" "$work/s3.db" 2>"$work/err" || fail "merge with tombstones: $(cat "$work/err")"
"$COLPLAID" index check --index "$work/del.db" >"$work/out" 2>&1 || fail "check del.db: $(cat "$work/out")"
$PY - "$work" <<'EOF2' || fail "merge with tombstones"
import sys, sqlite3
w = sys.argv[1]
gone = open(w + "/gone.txt").read().split()
db = sqlite3.connect("file:%s/del.db?mode=ro" % w, uri=True)
ids = [r[0] for r in db.execute("select external_id from documents")]
assert len(ids) == 895 and not set(gone) & set(ids), (len(ids), gone)
assert db.execute("select count(*) from documents where deleted != 0").fetchone()[0] == 0
print("ok  merge leaves the 5 deleted documents of a shard behind")
EOF2

# Pooled shards merge into what a pooled single build holds (pooled + unpooled: refused below).
for f in p0:0/2 p1:1/2 psingle:; do
    name=${f%%:*} sh=${f#*:}
    "$COLPLAID" index build "${inputs[@]}" --codec-from "$work/codec.db" --pool-factor 2 \
        ${sh:+--shard $sh} --index "$work/$name.db" --no-calibrate --quiet 2>"$work/err" ||
        fail "pooled build $name: $(cat "$work/err")"
done
"$COLPLAID" index merge --out "$work/pall.db" --quiet --no-calibrate "$work/p0.db" "$work/p1.db" \
    2>"$work/err" || fail "pooled merge: $(cat "$work/err")"
$PY - "$work" <<'EOF2' || fail "pooled merge differs from the pooled single build"
import sys, sqlite3
w = sys.argv[1]
def rows(name):
    db = sqlite3.connect("file:%s/%s.db?mode=ro" % (w, name), uri=True)
    return dict(db.execute("select key, value from meta"))["pooling"], sorted(
        db.execute("select external_id, n_tokens from documents"))
a, b = rows("psingle"), rows("pall")
assert a == b and len(a[1]) == 900, (a[0], b[0])
print("ok  pooled shards merged: %s, %d tokens as the single pooled build" % (a[0], sum(n for _, n in a[1])))
EOF2

# ---- refusals ----
# expect_fail NAME STATUS NEEDLE OUT CMD...: exit status, message, nothing left at OUT.
expect_fail() {
    local name=$1 want=$2 needle=$3 out=$4
    shift 4
    "$COLPLAID" "$@" >"$work/out" 2>"$work/err"
    local st=$?
    [[ $st == "$want" ]] || fail "$name: exit status $st, expected $want ($(cat "$work/err"))"
    grep -q -- "$needle" "$work/err" || fail "$name: message lacks '$needle': $(cat "$work/err")"
    [[ -z $out || ! -e $out ]] || fail "$name: a file was left at $out"
    ls "$work" | grep -q tmp-build && fail "$name: temporary files left"
    echo "ok  $name: $(head -1 "$work/err")"
}
"$COLPLAID" index build "${inputs[@]}" --index "$work/other.db" --kmeans-iters 2 --seed 7 \
    --no-calibrate --quiet 2>"$work/err" || fail "build --seed 7: $(cat "$work/err")"
expect_fail merge_codecs 2 "different codecs" "$work/x.db" index merge --out "$work/x.db" --quiet \
    "$work/s0.db" "$work/other.db"
expect_fail merge_duplicates 1 "is in both" "$work/x.db" index merge --out "$work/x.db" --quiet \
    --no-calibrate "$work/s1.db" "$work/single.db"
expect_fail merge_pooling 2 "different token pooling" "$work/x.db" index merge --out "$work/x.db" \
    --quiet "$work/p0.db" "$work/s1.db"
expect_fail merge_exists 1 "already exists" "" index merge --out "$work/single.db" --quiet \
    "$work/s0.db"
expect_fail merge_self 2 "also an input" "" index merge --out "$work/s0.db" --force --quiet \
    "$work/s0.db" "$work/s1.db"
expect_fail merge_no_inputs 2 "name the indexes" "" index merge --out "$work/x.db"
expect_fail shard_without_codec 2 "needs --codec-from" "$work/x.db" index build "${inputs[@]}" \
    --index "$work/x.db" --shard 0/4
expect_fail shard_range 2 "0 <= I < N" "$work/x.db" index build "${inputs[@]}" \
    --index "$work/x.db" --codec-from "$work/codec.db" --shard 4/4
expect_fail codec_and_nbits 2 "does not go with --codec-from" "$work/x.db" index build \
    "${inputs[@]}" --index "$work/x.db" --codec-from "$work/codec.db" --nbits 4
expect_fail codec_dim 1 "16" "$work/x.db" index build --embeddings "$work/emb16.npy" \
    --doclens "$work/lens.npy" --index "$work/x.db" --codec-from "$work/codec.db" --quiet
expect_fail train_index 2 "does not apply to index train" "" index train "${inputs[@]}" \
    --index "$work/x.db"
expect_fail codec_missing 1 "nothing.db" "$work/x.db" index build "${inputs[@]}" \
    --index "$work/x.db" --codec-from "$work/nothing.db" --quiet

# ---- text: a tiny static model (GloVe-layout JSON made here), texts, metadata, lexical ----
$PY - "$work" <<'EOF2'
import sys, json, random
work = sys.argv[1]
rng = random.Random(3)
words = ["w%d" % i for i in range(300)]
for name, seed in (("glove", 3), ("glove2", 4)):
    r = random.Random(seed)
    vec = {}
    for i, w in enumerate(words):
        v = [r.gauss(0, 1) for _ in range(16)]
        vec[w] = v + [sum(x * x for x in v) ** 0.5, i]
    json.dump({"precision": 8, "l2NormIndex": 16, "wordIndex": 17, "size": len(words),
               "dimensions": 16, "words": words, "vectors": vec,
               "unkVector": [0] * 16 + [0, -1]}, open("%s/%s.json" % (work, name), "w"))
with open(work + "/c.jsonl", "w") as f:
    for d in range(240):
        rec = {"_id": "t%d" % d, "text": " ".join(rng.choice(words) for _ in range(rng.randint(3, 20)))}
        if d % 4 == 0: rec["metadata"] = {"n": d}
        f.write(json.dumps(rec) + "\n")
with open(work + "/q.jsonl", "w") as f:
    for q in range(10):
        f.write(json.dumps({"_id": "q%d" % q, "text": " ".join(rng.choice(words) for _ in range(4))}) + "\n")
EOF2
"$COLPLAID" model convert --glove "$work/glove.json" --out "$work/model" >/dev/null 2>"$work/err" &&
    "$COLPLAID" model convert --glove "$work/glove2.json" --out "$work/model2" >/dev/null 2>>"$work/err" ||
    fail "could not make the test models: $(cat "$work/err")"
text=(--corpus "$work/c.jsonl" --model "$work/model")
"$COLPLAID" index train "${text[@]}" --out "$work/tcodec.db" --quiet 2>"$work/err" ||
    fail "index train --corpus: $(cat "$work/err")"
"$COLPLAID" index build "${text[@]}" --codec-from "$work/tcodec.db" --index "$work/tsingle.db" \
    --no-calibrate --quiet 2>"$work/err" || fail "text build --codec-from: $(cat "$work/err")"
for i in 0 1 2; do
    "$COLPLAID" index build "${text[@]}" --codec-from "$work/tcodec.db" --shard $i/3 \
        --index "$work/t$i.db" --no-calibrate --quiet 2>"$work/err" ||
        fail "text build --shard $i/3: $(cat "$work/err")"
done
"$COLPLAID" index merge --out "$work/tall.db" --quiet "$work/t0.db" "$work/t1.db" "$work/t2.db" \
    2>"$work/err" || fail "text merge: $(cat "$work/err")"
"$COLPLAID" index check --index "$work/tall.db" >"$work/out" 2>&1 || fail "check tall.db: $(cat "$work/out")"
for f in tsingle tall; do
    for mode in late lexical; do
        extra=(); [[ $mode == late ]] && extra=(--exact)
        "$COLPLAID" search --index "$work/$f.db" --model "$work/model" --queries "$work/q.jsonl" \
            --mode $mode "${extra[@]}" --k 15 >"$work/$f.$mode.tsv" 2>"$work/err" ||
            fail "search $f --mode $mode: $(cat "$work/err")"
    done
done
$PY - "$work" <<'EOF2' || fail "text shards: the merged index differs from the single build"
import sys, sqlite3
w = sys.argv[1]
def hits(name):
    out = {}
    for line in open("%s/%s.tsv" % (w, name)):
        q, d, r, s = line.rstrip("\n").split("\t")
        out.setdefault(q, []).append((d, float(s)))
    return out
# Equal scores are ranked by internal id, which a merge renumbers: BM25 has ties (equal
# term statistics), so lexical hits are compared as ranked score lists, plus the ids
# scoring above the last (cut) score as sets. Late (exact MaxSim) hits must be identical.
for mode in ("late", "lexical"):
    a, b = hits("tsingle." + mode), hits("tall." + mode)
    assert sorted(a) == sorted(b) and len(a) == 10, (mode, sorted(a), sorted(b))
    for q in a:
        assert max(abs(x - y) for (_, x), (_, y) in zip(a[q], b[q])) <= 1e-5, (mode, q)
        if mode == "late":
            assert [d for d, _ in a[q]] == [d for d, _ in b[q]], (mode, q, a[q], b[q])
        else:
            cut = a[q][-1][1] + 1e-5
            assert {d for d, s in a[q] if s > cut} == {d for d, s in b[q] if s > cut}, (q, a[q], b[q])
def docs(name):
    db = sqlite3.connect("file:%s/%s.db?mode=ro" % (w, name), uri=True)
    return sorted(db.execute("select external_id, text, metadata, n_tokens from documents"))
assert docs("tsingle") == docs("tall") and len(docs("tall")) == 240
meta = dict(sqlite3.connect("file:%s/tall.db?mode=ro" % w, uri=True).execute("select key, value from meta"))
single = dict(sqlite3.connect("file:%s/tsingle.db?mode=ro" % w, uri=True).execute("select key, value from meta"))
assert meta["encoder"] == single["encoder"] and "shard" not in meta, meta
print("ok  text: 3 shards merged == single build (exact and lexical search; texts, metadata)")
EOF2
# windows (late chunking) come along: the merged shards hold the single build's windows
for i in 0 1; do
    "$COLPLAID" index build "${text[@]}" --codec-from "$work/tcodec.db" --shard $i/2 --window 6 \
        --index "$work/w$i.db" --no-calibrate --quiet 2>"$work/err" ||
        fail "windowed build --shard $i/2: $(cat "$work/err")"
done
"$COLPLAID" index build "${text[@]}" --codec-from "$work/tcodec.db" --window 6 \
    --index "$work/wsingle.db" --no-calibrate --quiet 2>"$work/err" || fail "windowed build: $(cat "$work/err")"
"$COLPLAID" index merge --out "$work/wall.db" --quiet --no-calibrate "$work/w0.db" "$work/w1.db" \
    2>"$work/err" || fail "windowed merge: $(cat "$work/err")"
$PY - "$work" <<'EOF2' || fail "windows: the merged index differs from the single build"
import sys, sqlite3
w = sys.argv[1]
def windows(name):
    db = sqlite3.connect("file:%s/%s.db?mode=ro" % (w, name), uri=True)
    meta = dict(db.execute("select key, value from meta"))
    return meta["windows"], sorted(db.execute(
        "select d.external_id, x.windows from documents d join doc_windows x using (doc_id)"))
a, b = windows("wsingle"), windows("wall")
assert a == b and len(a[1]) > 50, (a[0], b[0], len(a[1]), len(b[1]))
print("ok  windows: %d windowed documents merged as the single build holds them" % len(a[1]))
EOF2
expect_fail merge_windows 2 "different windows" "$work/x.db" index merge --out "$work/x.db" --quiet \
    "$work/w0.db" "$work/t1.db"
expect_fail text_other_model 1 "another model" "$work/x.db" index build --corpus "$work/c.jsonl" \
    --model "$work/model2" --codec-from "$work/tcodec.db" --index "$work/x.db" --quiet

[[ $failures == 0 ]] || { echo "$failures failure(s)"; exit 1; }
echo "all shard tests passed"
