"""Token pooling end to end (issue 13 §2): `index build --pool-factor N` through the real CLI
(from .npy and from text), `index info` showing the factor, `index add` and HTTP upserts into
a pooled index (each document keeps ceil(tokens / N) vectors, searches find it), a malformed
meta "pooling" refusing writes, and bad option values refused with a clear message and
nothing written.
"""
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import serverlib as sl  # noqa: E402

check = sl.check
DIM = 16


def cli(*args):
    p = subprocess.run([sl.COLPLAID] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def ceil_div(n, f):
    return (n + f - 1) // f


def make_docs(rng, n_docs, lo, hi, prefix):
    """Documents of lo..hi clustered unit vectors (a few topics per document, so that there
    is something to pool)."""
    centres = [sl.normalise([rng.gauss(0, 1) for _ in range(DIM)]) for _ in range(24)]
    docs = []
    for i in range(n_docs):
        mine = rng.sample(centres, 4)
        toks = [sl.normalise([x + 0.3 * rng.gauss(0, 1) for x in rng.choice(mine)])
                for _ in range(rng.randint(lo, hi))]
        docs.append(("%s-%d" % (prefix, i), toks))
    return docs


def write_npy_docs(folder, name, docs):
    emb = [x for _, d in docs for t in d for x in t]
    total = sum(len(d) for _, d in docs)
    paths = [os.path.join(folder, name + s) for s in (".emb.npy", ".lens.npy", ".ids.txt")]
    sl.write_npy(paths[0], "<f4", (total, DIM), emb)
    sl.write_npy(paths[1], "<i4", (len(docs),), [len(d) for _, d in docs])
    with open(paths[2], "w") as f:
        f.write("".join(i + "\n" for i, _ in docs))
    return paths


def stored_tokens(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    rows = dict(db.execute("SELECT external_id, n_tokens FROM documents WHERE deleted = 0"))
    meta = dict(db.execute("SELECT key, value FROM meta"))
    db.close()
    return rows, meta


def info_json(path):
    rc, out, err = cli("index", "info", "--index", path, "--format", "json")
    check(rc == 0, "index info %s: %d %s" % (path, rc, err))
    return json.loads(out) if rc == 0 else {}


def exact_top1(path, query, folder):
    q = os.path.join(folder, "q.npy")
    sl.write_npy(q, "<f4", (1, len(query), DIM), [x for t in query for x in t])
    rc, out, err = cli("search", "--index", path, "--query-embeddings", q, "--k", 1, "--exact",
                       "--format", "json")
    check(rc == 0, "search: %d %s" % (rc, err))
    if rc:
        return None
    hits = json.loads(out.splitlines()[0])["hits"]
    return hits[0]["id"] if hits else None


def test_build_and_add(folder):
    rng = random.Random(3)
    docs = make_docs(rng, 120, 1, 40, "doc")
    emb, lens, ids = write_npy_docs(folder, "base", docs)
    common = ["--embeddings", emb, "--doclens", lens, "--ids", ids, "--centroids", 32, "--seed", 1,
              "--quiet"]
    plain, pooled = os.path.join(folder, "plain.db"), os.path.join(folder, "pooled.db")
    for path, extra in ((plain, []), (pooled, ["--pool-factor", 3])):
        rc, _, err = cli("index", "build", "--index", path, *common, *extra)
        check(rc == 0, "build %s: %d %s" % (path, rc, err))
    rows, meta = stored_tokens(pooled)
    want = {i: ceil_div(len(d), 3) for i, d in docs}
    check(rows == want, "pooled token counts are not ceil(n / 3): %r" %
          sorted((k, rows.get(k), v) for k, v in want.items() if rows.get(k) != v)[:5])
    check(json.loads(meta.get("pooling", "{}")) == {"factor": 3, "linkage": "ward"},
          "meta pooling: %r" % meta.get("pooling"))
    plain_rows, plain_meta = stored_tokens(plain)
    check(plain_rows == {i: len(d) for i, d in docs} and "pooling" not in plain_meta,
          "the unpooled build changed: %r" % plain_meta.get("pooling"))
    j, jp = info_json(pooled), info_json(plain)
    check(j.get("pool_factor") == 3 and j.get("pool_linkage") == "ward" and
          j.get("n_tokens") == sum(want.values()), "info json of the pooled index: %r" % j)
    check(jp.get("pool_factor") == 1 and "pool_linkage" not in jp, "info json unpooled: %r" % jp)
    rc, out, _ = cli("index", "info", "--index", pooled)
    check("pool factor     3 (ward linkage)" in out, "info text: %s" % out)
    rc, out, _ = cli("index", "info", "--index", plain)
    check("pool factor     1 (no pooling)" in out, "info text unpooled: %s" % out)
    rc, out, err = cli("index", "check", "--index", pooled)
    check(rc == 0, "index check of the pooled index: %s %s" % (out, err))

    # A document's own tokens (a noisy copy) find it in the pooled index too.
    found = 0
    for i, d in docs[:20]:
        q = [sl.normalise([x + 0.05 * rng.gauss(0, 1) for x in t]) for t in d[:8]]
        found += exact_top1(pooled, q, folder) == i
    check(found >= 18, "pooled index: %d of 20 documents found by their own tokens" % found)

    # index add: new and replaced documents are pooled with the index's factor.
    extra = make_docs(random.Random(9), 15, 2, 30, "add") + [("doc-0", docs[5][1])]
    emb, lens, ids = write_npy_docs(folder, "add", extra)
    rc, out, err = cli("index", "add", "--index", pooled, "--embeddings", emb, "--doclens", lens,
                       "--ids", ids, "--quiet")
    total = sum(ceil_div(len(d), 3) for _, d in extra)
    check(rc == 0 and ("%d tokens;" % total) in out, "index add: %d %s %s" % (rc, out, err))
    rows, _ = stored_tokens(pooled)
    bad = [(i, rows.get(i), ceil_div(len(d), 3)) for i, d in extra if rows.get(i) != ceil_div(len(d), 3)]
    check(not bad, "index add did not pool: %r" % bad[:5])
    check(exact_top1(pooled, extra[3][1][:6], folder) == extra[3][0], "an added document is not found")
    rc, out, err = cli("index", "check", "--index", pooled)
    check(rc == 0, "index check after add: %s %s" % (out, err))
    return pooled


def test_http_upsert(folder, pooled):
    made = os.path.join(folder, "made")
    os.mkdir(made)
    srv = sl.Server(["--index", pooled, "--index-dir", made, "--no-access-log"])
    try:
        st, _, info = srv.json("GET", "/v1/indexes/pooled")
        check(st == 200 and info.get("pool_factor") == 3 and info.get("pool_linkage") == "ward"
              and info.get("windows") is None and info.get("lexical") is False,
              "index info of a pooled index: %d %r" % (st, info))
        srv.check_schema("IndexInfo", info, "GET /v1/indexes/pooled")
        rng = random.Random(21)
        new = make_docs(rng, 3, 7, 25, "http")
        body = {"documents": [{"id": i, "embeddings": d} for i, d in new]}
        body["documents"][1] = {"id": new[1][0], "embeddings_b64": sl.b64(new[1][1]),
                                "shape": [len(new[1][1]), DIM]}
        st, _, j = srv.json("POST", "/v1/indexes/pooled/documents", body)
        want = sum(ceil_div(len(d), 3) for _, d in new)
        check(st == 200 and j.get("added") == 3 and j.get("tokens") == want,
              "pooled upsert: %d %r (want %d tokens)" % (st, j, want))
        srv.check_schema("UpsertResponse", j, "a pooled upsert's answer")
        # An index created over HTTP from the pooled one pools its upserts the same way.
        st, _, j = srv.json("POST", "/v1/indexes", {"name": "made", "codec_from": "pooled"})
        check(st == 201 and j.get("pool_factor") == 3 and j.get("pool_linkage") == "ward",
              "an index created from a pooled one: %d %r" % (st, j))
        srv.check_schema("CreateIndexResponse", j, "POST /v1/indexes")
        st, _, j = srv.json("POST", "/v1/indexes/made/documents", body)
        check(st == 200 and j.get("tokens") == want,
              "upsert into the created index: %d %r (want %d pooled tokens)" % (st, j, want))
        for i, d in new:
            st, _, doc = srv.json("GET", "/v1/indexes/pooled/documents/" + i)
            check(st == 200 and doc.get("n_tokens") == ceil_div(len(d), 3),
                  "%s: %d %r, want %d tokens" % (i, st, doc, ceil_div(len(d), 3)))
        q = new[2][1][:6]
        st, _, j = srv.json("POST", "/v1/indexes/pooled/search",
                            {"queries": [{"embeddings": q}], "k": 3})
        hits = j["results"][0]["hits"] if st == 200 else []
        check(hits and hits[0]["id"] == new[2][0], "search after a pooled upsert: %d %r" % (st, j))
    finally:
        srv.stop()
    rc, out, err = cli("index", "check", "--index", pooled)
    check(rc == 0, "index check after HTTP upserts: %s %s" % (out, err))


def test_text(folder):
    """A text corpus built pooled (static model), then a text upsert over HTTP."""
    model = sl.write_model(folder)
    corpus, docs = sl.write_corpus(folder)
    plain, pooled = os.path.join(folder, "tplain.db"), os.path.join(folder, "tpooled.db")
    for path, extra in ((plain, []), (pooled, ["--pool-factor", 2, "--pool-linkage", "average"])):
        rc, _, err = cli("index", "build", "--index", path, "--corpus", corpus, "--model", model,
                         "--centroids", 16, "--seed", 1, "--quiet", *extra)
        check(rc == 0, "text build %s: %d %s" % (path, rc, err))
    a, _ = stored_tokens(plain)
    b, meta = stored_tokens(pooled)
    check(a.keys() == b.keys() and all(b[k] == ceil_div(a[k], 2) for k in a),
          "text build: pooled counts are not ceil(n / 2) of the unpooled ones")
    check(json.loads(meta.get("pooling", "{}")).get("linkage") == "average", "meta: %r" % meta)
    srv = sl.Server(["--index", pooled, "--model", model, "--no-access-log"])
    try:
        text = "river mountain forest ocean city music painting science history garden rain"
        st, _, j = srv.json("POST", "/v1/indexes/tpooled/documents",
                            {"documents": [{"id": "t-new", "text": text}]})
        st2, _, d = srv.json("GET", "/v1/indexes/tpooled/documents/t-new")
        n = d.get("n_tokens", 0) if st2 == 200 else 0
        check(st == 200 and j.get("tokens") == n and 0 < n, "text upsert: %d %r / %r" % (st, j, d))
        st, _, j = srv.json("POST", "/v1/indexes/tpooled/search", {"queries": [{"text": text}], "k": 1})
        check(st == 200 and j["results"][0]["hits"][0]["id"] == "t-new", "text search: %d %r" % (st, j))
    finally:
        srv.stop()
    st_plain = os.path.join(folder, "tplain2.db")
    # The unpooled document of the same text has twice as many tokens, give or take one.
    rc, _, _ = cli("index", "build", "--index", st_plain, "--corpus", corpus, "--model", model,
                   "--centroids", 16, "--seed", 1, "--quiet", "--no-calibrate")
    srv = sl.Server(["--index", st_plain, "--model", model, "--no-access-log"])
    try:
        st, _, j = srv.json("POST", "/v1/indexes/tplain2/documents",
                            {"documents": [{"id": "t-new", "text": text}]})
        check(st == 200 and ceil_div(j.get("tokens", 0), 2) == n, "unpooled text upsert: %r vs %d" % (j, n))
    finally:
        srv.stop()


def test_bad_values(folder):
    emb, lens, ids = write_npy_docs(folder, "bad", make_docs(random.Random(2), 10, 2, 6, "b"))
    out = os.path.join(folder, "bad.db")
    base = ["index", "build", "--index", out, "--embeddings", emb, "--doclens", lens, "--quiet"]
    for args, want in ((["--pool-factor", "0"], "--pool-factor"),
                       (["--pool-factor", "-2"], "--pool-factor"),
                       (["--pool-factor", "65"], "1..64"),
                       (["--pool-factor", "1.5"], "--pool-factor"),
                       (["--pool-factor", "two"], "--pool-factor"),
                       (["--pool-factor"], "--pool-factor needs a value"),
                       (["--pool-factor", "2", "--pool-linkage", "single"], "ward or average"),
                       (["--pool-linkage", "average"], "needs --pool-factor")):
        rc, _, err = cli(*base, *args)
        check(rc == 2 and want in err and "\n" in err, "%r: exit %d, %r" % (args, rc, err))
        check(not os.path.exists(out), "%r left %s behind" % (args, out))
    # --pool-factor 1 is no pooling (no meta "pooling").
    rc, _, err = cli(*base, "--pool-factor", "1", "--centroids", 8)
    rows, meta = stored_tokens(out) if rc == 0 else ({}, {})
    check(rc == 0 and "pooling" not in meta, "--pool-factor 1: %d %s %r" % (rc, err, meta))
    # A malformed meta "pooling" refuses writes (rather than guess), naming the key.
    db = sqlite3.connect(out)
    db.execute("INSERT INTO meta(key, value) VALUES ('pooling', '{\"factor\": 0}')")
    db.commit()
    db.close()
    rc, _, err = cli("index", "add", "--index", out, "--embeddings", emb, "--doclens", lens,
                     "--ids", ids, "--quiet")
    check(rc == 1 and 'meta "pooling" is malformed' in err, "malformed pooling meta: %d %s" % (rc, err))


def body():
    with tempfile.TemporaryDirectory(prefix="cp_test_pool.") as folder:
        pooled = test_build_and_add(folder)
        test_http_upsert(folder, pooled)
        test_text(folder)
        test_bad_values(folder)


if __name__ == "__main__":
    sl.main(body, "pooling end to end: ok")
