"""The write routes of the real `colplaid serve`: POST / DELETE /v1/indexes/{name}/documents.

Checks: upserts by JSON embeddings, base64 embeddings and text (tiny static model), replacing
an existing id, deletes by ids and by filter, counts via GET /v1/indexes/{name}; every error
path leaves the index unchanged (counts, a document probe and `colplaid index check`); scopes
with API keys; read-only serving (--read-only, and a second server that finds the writer lock
taken); readers during writes see no errors; a full write queue answers 503 + Retry-After;
and a crash test: SIGKILL during a stream of HTTP writes, after which the index opens, passes
`index check`, and holds exactly the acknowledged writes (the one write in flight, if any, is
wholly present or wholly absent).
"""
import base64
import json
import os
import random
import shutil
import sqlite3
import struct
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check
DIM = 16        # the index; the static model (sl.write_model) encodes 2 x 8 dims
CRASH_TRIALS = int(os.environ.get("CP_WRITE_CRASH_TRIALS", "12"))


def rand_doc(rng, n=None):
    return [sl.normalise([rng.gauss(0, 1) for _ in range(DIM)]) for _ in range(n or rng.randint(2, 8))]


def info(srv, name="idx"):
    st, _, j = srv.json("GET", "/v1/indexes/" + name)
    check(st == 200, "index info: %d %r" % (st, j))
    return j


def index_check(path, what):
    p = sl.run(["index", "check", "--index", path], check=False)
    check(p.returncode == 0, "%s: index check exit %d: %s" % (what, p.returncode, (p.stdout + p.stderr)[-800:]))


def exact_top(srv, q, k=1):
    st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [{"embeddings": q}], "k": k, "mode": "exact"})
    check(st == 200, "search: %d %r" % (st, j))
    return [h["id"] for h in j["results"][0]["hits"]] if st == 200 else []


def test_writes(srv, corpus):
    rng = random.Random(11)
    n0 = info(srv)["documents"]
    # JSON embeddings, with text and metadata.
    e1 = rand_doc(rng)
    st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [
        {"id": "w-1", "embeddings": e1, "text": "first new one", "metadata": {"lang": "xx", "n": 1}}]})
    check(st == 200 and j.get("upserted") == 1 and j.get("added") == 1 and j.get("replaced") == 0 and
          j.get("tokens") == len(e1) and isinstance(j.get("rebuild_advised"), bool), "upsert json: %d %r" % (st, j))
    st, _, d = srv.json("GET", "/v1/indexes/idx/documents/w-1")
    check(st == 200 and d.get("text") == "first new one" and d.get("metadata") == {"lang": "xx", "n": 1} and
          d.get("n_tokens", d.get("tokens")) in (len(e1), None), "w-1 stored: %d %r" % (st, d))
    check(exact_top(srv, e1) == ["w-1"], "search finds w-1")
    # Base64 embeddings.
    e2 = rand_doc(rng)
    st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [
        {"id": "w-2", "embeddings_b64": sl.b64(e2), "shape": [len(e2), DIM], "metadata": {"lang": "xx"}}]})
    check(st == 200 and j.get("added") == 1, "upsert b64: %d %r" % (st, j))
    check(exact_top(srv, e2) == ["w-2"], "search finds w-2")
    # Text, encoded by the server's model.
    st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [
        {"id": "w-3", "text": "river castle snow bridge"}]})
    check(st == 200 and j.get("added") == 1 and j.get("tokens", 0) > 0, "upsert text: %d %r" % (st, j))
    st, _, d = srv.json("GET", "/v1/indexes/idx/documents/w-3")
    check(st == 200 and d.get("text") == "river castle snow bridge", "w-3 stored: %r" % d)
    st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": ["river castle snow bridge"], "k": 3,
                                                          "mode": "exact"})
    check(st == 200 and j["results"][0]["hits"][0]["id"] == "w-3", "text search finds w-3: %r" % j)
    check(info(srv)["documents"] == n0 + 3, "count after 3 adds")
    # Replace an existing id: the new content is found, the old is gone.
    old = corpus.docs[5]
    new = rand_doc(rng, 5)
    st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [
        {"id": "doc-5", "embeddings": new, "text": "replaced", "metadata": {"lang": "zz"}}]})
    check(st == 200 and j.get("added") == 0 and j.get("replaced") == 1, "replace: %d %r" % (st, j))
    check(info(srv)["documents"] == n0 + 3, "count unchanged by a replace")
    st, _, d = srv.json("GET", "/v1/indexes/idx/documents/doc-5")
    check(st == 200 and d.get("text") == "replaced" and d.get("metadata") == {"lang": "zz"}, "doc-5 replaced: %r" % d)
    check(exact_top(srv, new) == ["doc-5"], "search finds the new doc-5")
    st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [{"embeddings": old}], "k": 400,
                                                          "mode": "exact", "filter": {"lang": {"$eq": "zz"}}})
    check(st == 200 and [h["id"] for h in j["results"][0]["hits"]] == ["doc-5"], "doc-5 once, new metadata: %r" % j)
    st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [{"embeddings": old}], "k": 400, "mode": "exact",
                                                          "filter": {"lang": {"$eq": corpus.metadata[5]["lang"]}}})
    check(st == 200 and "doc-5" not in [h["id"] for h in j["results"][0]["hits"]], "old doc-5 still matches old metadata")
    # Delete by ids (unknown ids are not counted) and by filter.
    st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"ids": ["w-1", "no-such-id"]})
    check(st == 200 and j.get("deleted") == 1, "delete ids: %d %r" % (st, j))
    st, _, _ = srv.json("GET", "/v1/indexes/idx/documents/w-1")
    check(st == 404, "w-1 deleted: %d" % st)
    check(info(srv)["documents"] == n0 + 2, "count after delete")
    live_fr = sum(1 for i, m in enumerate(corpus.metadata) if m["lang"] == "fr" and i != 5)
    st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"filter": {"lang": {"$eq": "fr"}}})
    check(st == 200 and j.get("deleted") == live_fr, "delete filter: %d %r want %d" % (st, j, live_fr))
    check(info(srv)["documents"] == n0 + 2 - live_fr, "count after filter delete")
    st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [{"embeddings": corpus.docs[1]}], "k": 400,
                                                          "mode": "exact", "filter": {"lang": {"$eq": "fr"}}})
    check(st == 200 and j["results"][0]["hits"] == [], "fr documents still found: %r" % j)
    st, _, text = srv.request("GET", "/metrics")
    text = text.decode()
    check('route="POST /v1/indexes/{name}/documents",status="200"' in text and
          'colplaid_http_request_duration_seconds_count{route="DELETE /v1/indexes/{name}/documents"}' in text and
          "colplaid_write_queue_depth" in text, "write metrics missing")


def test_errors(srv, path):
    rng = random.Random(5)
    before = info(srv)
    st, _, probe = srv.json("GET", "/v1/indexes/idx/documents/doc-7")
    good = {"id": "never-1", "embeddings": rand_doc(rng)}
    e = rand_doc(rng, 3)
    nan_b64 = base64.b64encode(struct.pack("<3f", 1.0, float("nan"), 0.0) + b"\0" * 4 * (DIM - 3)).decode()
    cases = [
        ("bad dims", "POST", {"documents": [good, {"id": "x", "embeddings": [[0.1] * (DIM + 1)]}]}, 422, "DIMENSION_MISMATCH"),
        ("bad dims b64", "POST", {"documents": [{"id": "x", "embeddings_b64": sl.b64([[0.5] * 4]), "shape": [1, 4]}]}, 422, "DIMENSION_MISMATCH"),
        ("NaN b64", "POST", {"documents": [good, {"id": "x", "embeddings_b64": nan_b64, "shape": [1, DIM]}]}, 400, "INVALID_ARGUMENT"),
        ("NaN json", "POST", '{"documents": [{"id": "x", "embeddings": [[NaN%s]]}]}' % (", 1" * (DIM - 1)), 400, "MALFORMED_JSON"),
        ("huge json", "POST", '{"documents": [{"id": "x", "embeddings": [[1e39%s]]}]}' % (", 1" * (DIM - 1)), 400, "INVALID_ARGUMENT"),
        ("duplicate ids", "POST", {"documents": [good, {"id": "never-1", "embeddings": e}]}, 400, "DUPLICATE_ID"),
        ("duplicate of existing id", "POST", {"documents": [{"id": "doc-7", "embeddings": e}, {"id": "doc-7", "text": "a b"}]}, 400, "DUPLICATE_ID"),
        ("missing id", "POST", {"documents": [good, {"embeddings": e}]}, 400, "INVALID_ARGUMENT"),
        ("empty id", "POST", {"documents": [{"id": "", "embeddings": e}]}, 400, "INVALID_ARGUMENT"),
        ("id not a string", "POST", {"documents": [{"id": 7, "embeddings": e}]}, 400, "INVALID_ARGUMENT"),
        ("metadata array", "POST", {"documents": [good, {"id": "x", "embeddings": e, "metadata": [1, 2]}]}, 400, "INVALID_ARGUMENT"),
        ("metadata string", "POST", {"documents": [{"id": "x", "embeddings": e, "metadata": "{}"}]}, 400, "INVALID_ARGUMENT"),
        ("no content", "POST", {"documents": [{"id": "x"}]}, 400, "INVALID_ARGUMENT"),
        ("both embeddings", "POST", {"documents": [{"id": "x", "embeddings": e, "embeddings_b64": sl.b64(e), "shape": [3, DIM]}]}, 400, "INVALID_ARGUMENT"),
        ("shape mismatch", "POST", {"documents": [{"id": "x", "embeddings_b64": sl.b64(e), "shape": [4, DIM]}]}, 400, "INVALID_ARGUMENT"),
        ("bad base64", "POST", {"documents": [{"id": "x", "embeddings_b64": "abc", "shape": [1, DIM]}]}, 400, "INVALID_ARGUMENT"),
        ("ragged rows", "POST", {"documents": [{"id": "x", "embeddings": [[0.1] * DIM, [0.1] * 3]}]}, 400, "INVALID_ARGUMENT"),
        ("empty documents", "POST", {"documents": []}, 400, "INVALID_ARGUMENT"),
        ("no documents", "POST", {}, 400, "INVALID_ARGUMENT"),
        ("unknown field", "POST", {"documents": [good], "upsert": True}, 400, "INVALID_ARGUMENT"),
        ("unknown doc field", "POST", {"documents": [{"id": "x", "embeddings": e, "vector": 1}]}, 400, "INVALID_ARGUMENT"),
        ("malformed", "POST", '{"documents": [', 400, "MALFORMED_JSON"),
        ("not an object", "POST", '[1]', 400, "INVALID_ARGUMENT"),
        ("blank text", "POST", {"documents": [{"id": "x", "text": "   "}]}, 400, "INVALID_ARGUMENT"),
        ("zero vector (engine refuses)", "POST", {"documents": [good, {"id": "x", "embeddings": [[0.0] * DIM]}]}, 400, "INVALID_ARGUMENT"),
        ("too many tokens", "POST", {"documents": [{"id": "x", "embeddings": [[0.1] * DIM] * 5000}]}, 422, "LIMIT_EXCEEDED"),
        ("delete both", "DELETE", {"ids": ["doc-1"], "filter": {"lang": {"$eq": "en"}}}, 400, "INVALID_ARGUMENT"),
        ("delete neither", "DELETE", {}, 400, "INVALID_ARGUMENT"),
        ("delete empty ids", "DELETE", {"ids": []}, 400, "INVALID_ARGUMENT"),
        ("delete bad id", "DELETE", {"ids": ["doc-1", 3]}, 400, "INVALID_ARGUMENT"),
        ("delete empty filter", "DELETE", {"filter": {}}, 400, "INVALID_FILTER"),
        ("delete bad operator", "DELETE", {"filter": {"lang": {"$regex": "e"}}}, 400, "INVALID_FILTER"),
        ("delete filter not object", "DELETE", {"filter": "lang = en"}, 400, "INVALID_FILTER"),
        ("delete no body", "DELETE", None, 400, "MALFORMED_JSON"),
    ]
    for what, method, body, status, code in cases:
        st, h, data = srv.request(method, "/v1/indexes/idx/documents", body)
        try:
            j = json.loads(data)
        except ValueError:
            j = {}
        got = j.get("error", {}).get("code") if isinstance(j, dict) else None
        check(st == status and got == code, "%s: %d %s, want %d %s (%r)" % (what, st, got, status, code, data[:200]))
    st, _, j = srv.json("POST", "/v1/indexes/nope/documents", {"documents": [good]})
    check(st == 404 and j["error"]["code"] == "INDEX_NOT_FOUND", "unknown index: %d %r" % (st, j))
    st, _, j = srv.json("DELETE", "/v1/indexes/nope/documents", {"ids": ["doc-1"]})
    check(st == 404 and j["error"]["code"] == "INDEX_NOT_FOUND", "unknown index delete: %d %r" % (st, j))
    st, _, _ = srv.request("PUT", "/v1/indexes/idx/documents", {"documents": [good]})
    check(st == 405, "PUT documents: %d" % st)
    # Live content only: the automatic compaction after the previous test's deletes may
    # still be rewriting segments (tombstones and segment counts change, content does not).
    keys = ("documents", "tokens", "centroids", "dim", "nbits")
    after = info(srv)
    check([after.get(k) for k in keys] == [before.get(k) for k in keys],
          "index changed by bad requests: %r -> %r" % (before, after))
    st, _, probe2 = srv.json("GET", "/v1/indexes/idx/documents/doc-7")
    check(probe2 == probe, "doc-7 changed by bad requests")
    st, _, _ = srv.json("GET", "/v1/indexes/idx/documents/never-1")
    check(st == 404, "a refused batch left never-1 behind")
    index_check(path, "after the error paths")


def test_text_errors(path, model_dim_mismatch_idx):
    """Text without a model, and a model whose dim differs from the index's."""
    srv = sl.Server(["--index", path, "--no-access-log"])
    try:
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [{"id": "t", "text": "river"}]})
        check(st == 422 and j["error"]["code"] == "MODEL_NOT_LOADED", "text without model: %d %r" % (st, j))
    finally:
        srv.stop()


def test_scopes(path, folder):
    keys = os.path.join(folder, "keys.txt")
    with open(keys, "w") as f:
        f.write("reader-key-0123456789 read\nwriter-key-0123456789 write\nadmin-key-0123456789 admin\n")
    # --auto-compact 1: the compact route below must find the tombstones its deletes leave,
    # which the automatic policy would otherwise remove first whenever they pass its share.
    srv = sl.Server(["--index", path, "--api-keys", keys, "--no-access-log", "--auto-compact", "1"])
    body = {"documents": [{"id": "scoped", "embeddings": rand_doc(random.Random(1))}]}
    try:
        n0 = info_keyed(srv, "reader-key-0123456789")
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", body)
        check(st == 401 and j["error"]["code"] == "UNAUTHENTICATED", "write without key: %d %r" % (st, j))
        for key, want in [("wrong-key-0123456789", 403), ("reader-key-0123456789", 403)]:
            for m, b in [("POST", body), ("DELETE", {"ids": ["doc-1"]})]:
                st, _, j = srv.json(m, "/v1/indexes/idx/documents", b, headers={"Authorization": "Bearer " + key})
                check(st == want and j["error"]["code"] == "FORBIDDEN", "%s with %s: %d %r" % (m, key[:6], st, j))
        check(info_keyed(srv, "reader-key-0123456789") == n0, "a refused write changed the index")
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", body, headers={"Authorization": "Bearer writer-key-0123456789"})
        check(st == 200, "write key: %d %r" % (st, j))
        st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"ids": ["scoped"]},
                            headers={"Authorization": "Bearer admin-key-0123456789"})
        check(st == 200 and j.get("deleted") == 1, "admin key delete: %d %r" % (st, j))
        # The admin scope: POST /v1/indexes/{name}/compact (issue 12). Read and write keys
        # are refused; the admin key compacts away the tombstones the deletes left.
        for key in ("reader-key-0123456789", "writer-key-0123456789"):
            st, _, j = srv.json("POST", "/v1/indexes/idx/compact", {}, headers={"Authorization": "Bearer " + key})
            check(st == 403 and j["error"]["code"] == "FORBIDDEN" and "admin" in j["error"]["message"],
                  "compact with %s: %d %r" % (key[:6], st, j))
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", body, headers={"Authorization": "Bearer writer-key-0123456789"})
        st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"ids": ["scoped"]},
                            headers={"Authorization": "Bearer writer-key-0123456789"})
        st, _, j = srv.json("POST", "/v1/indexes/idx/compact", {}, headers={"Authorization": "Bearer admin-key-0123456789"})
        check(st == 200 and j.get("index") == "idx" and j.get("tombstones_removed", 0) > 0 and
              j.get("segments_after", 99) <= j.get("segments_before", 0), "compact with the admin key: %d %r" % (st, j))
        check(info_keyed(srv, "reader-key-0123456789") == n0, "compaction changed the live documents")
        st, _, j = srv.json("POST", "/v1/indexes/nope/compact", {}, headers={"Authorization": "Bearer admin-key-0123456789"})
        check(st == 404 and j["error"]["code"] == "INDEX_NOT_FOUND", "compact of an unknown index: %d %r" % (st, j))
    finally:
        srv.stop()
    index_check(path, "after the compact route")
    srv = sl.Server(["--index", path, "--read-only", "--no-access-log"])
    try:
        st, _, j = srv.json("POST", "/v1/indexes/idx/compact", {})
        check(st == 409 and j["error"]["code"] == "INDEX_READ_ONLY", "compact read-only: %d %r" % (st, j))
    finally:
        srv.stop()


def auto_compactions(srv):
    st, _, text = srv.request("GET", "/metrics")
    lines = [l for l in text.decode().splitlines() if l.startswith("colplaid_auto_compactions_total ")]
    check(st == 200 and len(lines) == 1, "metrics: %d, auto compaction counter %r" % (st, lines))
    return int(float(lines[0].split()[1])) if lines else -1


def test_auto_compact(path):
    """--auto-compact F: the writer compacts after a write that leaves tombstones above the
    share F of the document rows, and never with F = 1."""
    body = {"documents": [{"id": "auto-%d" % i, "embeddings": rand_doc(random.Random(i))} for i in range(3)]}
    gone = {"ids": ["auto-0", "auto-1", "auto-2"]}
    for frac in ("1", "0"):
        srv = sl.Server(["--index", path, "--no-access-log", "--auto-compact", frac])
        try:
            st, _, j = srv.json("POST", "/v1/indexes/idx/documents", body)
            check(st == 200 and j.get("upserted") == 3, "auto-compact %s upsert: %d %r" % (frac, st, j))
            st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", gone)
            check(st == 200 and j.get("deleted") == 3, "auto-compact %s delete: %d %r" % (frac, st, j))
            # The policy runs on the writer thread after the answer: a second (empty) write
            # queues behind it, so its answer means the policy has run.
            st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"ids": ["auto-none"]})
            check(st == 200, "auto-compact %s second delete: %d %r" % (frac, st, j))
            n = auto_compactions(srv)
            deleted = info(srv)["deleted"]
            ok = (n == 0 and deleted >= 3) if frac == "1" else (n >= 1 and deleted == 0)
            check(ok,
                  "--auto-compact %s: %d automatic compactions, %d tombstones left" % (frac, n, deleted))
        finally:
            srv.stop()
    p = sl.run(["serve", "--index", path, "--auto-compact", "1.5"], check=False)
    check(p.returncode == 2 and "--auto-compact" in p.stderr, "--auto-compact 1.5: %d %r" % (p.returncode, p.stderr))


def info_keyed(srv, key):
    st, _, j = srv.json("GET", "/v1/indexes/idx", headers={"Authorization": "Bearer " + key})
    return j.get("documents")


def test_read_only(path):
    body = {"documents": [{"id": "ro", "embeddings": rand_doc(random.Random(2))}]}
    srv = sl.Server(["--index", path, "--read-only", "--no-access-log"])
    try:
        check(any("read-only (--read-only)" in l for l in srv.lines), "--read-only not announced")
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", body)
        check(st == 409 and j["error"]["code"] == "INDEX_READ_ONLY", "--read-only write: %d %r" % (st, j))
    finally:
        srv.stop()
    a = sl.Server(["--index", path, "--no-access-log"])
    b = sl.Server(["--index", path, "--no-access-log"])
    try:
        check(any("writable" in l for l in a.lines), "first server not writable: %r" % a.lines[-3:])
        check(any("read-only (another process holds its writer lock)" in l for l in b.lines),
              "second server did not say it is read-only: %r" % b.lines[-3:])
        st, _, j = b.json("DELETE", "/v1/indexes/idx/documents", {"ids": ["doc-1"]})
        check(st == 409 and j["error"]["code"] == "INDEX_READ_ONLY", "locked write: %d %r" % (st, j))
        st, _, j = a.json("POST", "/v1/indexes/idx/documents", body)
        check(st == 200, "writable server write: %d %r" % (st, j))
        st, _, j = b.json("GET", "/v1/indexes/idx/documents/doc-0")
        check(st == 200, "read-only server still reads: %d" % st)
    finally:
        b.stop()
        a.stop()


def test_concurrent_readers(srv, corpus):
    stop = threading.Event()
    errors = []
    counts = [0]

    def reader(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            q = corpus.query(rng, 6)
            body = {"queries": [{"embeddings": q}], "k": 10}
            if seed % 2:  # the include path reads the live document rows too
                body["include"] = ["text", "metadata"]
            st, _, data = srv.request("POST", "/v1/indexes/idx/search", body)
            counts[0] += 1
            if st != 200:
                errors.append((st, data[:200]))
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    rng = random.Random(9)
    try:
        for i in range(40):
            docs = [{"id": "c-%d-%d" % (i, j), "embeddings": rand_doc(rng), "metadata": {"batch": i}} for j in range(5)]
            st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": docs})
            check(st == 200, "concurrent upsert %d: %d %r" % (i, st, j))
            if i % 3 == 2:
                st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"filter": {"batch": {"$eq": i - 1}}})
                check(st == 200 and j.get("deleted") == 5, "concurrent delete %d: %d %r" % (i, st, j))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    check(not errors, "readers saw %d errors: %r" % (len(errors), errors[:3]))
    check(counts[0] > 0, "no reads ran")


def test_filtered_race(srv, corpus, seconds=8.0):
    """Filtered searches racing upserts (issue 12, defect 9): the filter read the database,
    which can be ahead of the snapshot the search runs on, and a few requests answered 400
    INVALID_ARGUMENT "subset document id N is not in the index". The filter matches the
    documents being written, so most upserts race a search."""
    stop = threading.Event()
    errors, counts = [], [0]

    def reader(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            body = {"queries": [{"embeddings": corpus.query(rng, 4)}], "k": 5, "filter": {"race": {"$gte": 0}}}
            st, _, data = srv.request("POST", "/v1/indexes/idx/search", body)
            counts[0] += 1
            if st != 200:
                errors.append((st, data[:200]))
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    rng = random.Random(21)
    i, t_end = 0, time.time() + seconds
    try:
        while time.time() < t_end:
            docs = [{"id": "race-%d" % (i % 50), "embeddings": rand_doc(rng, 2), "metadata": {"race": i}}]
            st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": docs})
            check(st == 200, "racing upsert %d: %d %r" % (i, st, j))
            i += 1
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    print("filtered race: %d searches, %d upserts, %d errors" % (counts[0], i, len(errors)), file=sys.stderr)
    check(not errors, "filtered searches racing upserts saw %d errors in %d: %r" % (len(errors), counts[0], errors[:3]))
    st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"filter": {"race": {"$gte": 0}}})
    check(st == 200, "race cleanup: %d %r" % (st, j))


def test_same_file(path, folder):
    """--index x=a.db --index y=<a symlink to a.db> (issue 12, defect 14): before, y opened the
    file again, found x's writer lock taken and was served read-only with a stale view and
    a wrong reason. Now both names share one handle: both writable, one view."""
    link = os.path.join(folder, "same-link.db")
    if not os.path.exists(link):
        os.symlink(path, link)
    srv = sl.Server(["--index", "x=" + path, "--index", "y=" + link, "--index", "z=" + path,
                     "--no-access-log"])
    try:
        for name in ("x", "y", "z"):
            j = info(srv, name)
            check(j.get("writable") is not False, "index %s: %r" % (name, j))
            check(any(("'%s'" % name) in l and "writable" in l and "read-only" not in l for l in srv.lines),
                  "index %s not announced writable: %r" % (name, [l for l in srv.lines if "index '" in l]))
        rng = random.Random(5)
        st, _, j = srv.json("POST", "/v1/indexes/y/documents", {"documents": [
            {"id": "same-file-1", "embeddings": rand_doc(rng), "text": "through y"}]})
        check(st == 200, "upsert through y: %d %r" % (st, j))
        for name in ("x", "z"):
            st, _, d = srv.json("GET", "/v1/indexes/%s/documents/same-file-1" % name)
            check(st == 200 and d.get("text") == "through y", "write through y seen by %s: %d %r" % (name, st, d))
        st, _, j = srv.json("DELETE", "/v1/indexes/x/documents", {"ids": ["same-file-1"]})
        check(st == 200 and j.get("deleted") == 1, "delete through x: %d %r" % (st, j))
        st, _, _ = srv.json("GET", "/v1/indexes/y/documents/same-file-1")
        check(st == 404, "delete through x seen by y: %d" % st)
    finally:
        check(srv.stop() == 0, "server exit status")


def test_write_queue_full(path):
    """--write-queue 1 and several large upserts at once: one runs, one waits, the rest get
    503 + Retry-After (each upsert takes far longer than sending all bodies)."""
    srv = sl.Server(["--index", path, "--write-queue", "1", "--max-write-documents", "20000",
                     "--no-access-log"])
    rng = random.Random(3)
    bodies = []
    for r in range(6):
        docs = [{"id": "q-%d-%d" % (r, i), "embeddings_b64": sl.b64(rand_doc(rng, 40)), "shape": [40, DIM]}
                for i in range(3000)]
        bodies.append(json.dumps({"documents": docs}))
    results = []
    lock = threading.Lock()
    try:
        n0 = info(srv)["documents"]
        def send(b):
            st, h, data = srv.request("POST", "/v1/indexes/idx/documents", b, headers={"Content-Type": "application/json"},
                                      timeout=300)
            with lock:
                results.append((st, h.get("retry-after"), data[:200]))
        threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        full = [r for r in results if r[0] == 503]
        ok = [r for r in results if r[0] == 200]
        check(len(full) + len(ok) == len(bodies), "write queue: unexpected statuses %r" % [r[0] for r in results])
        check(len(full) >= 1 and all(r[1] == "1" and b"WRITE_QUEUE_FULL" in r[2] for r in full),
              "no 503 WRITE_QUEUE_FULL with Retry-After: %r" % [(r[0], r[1]) for r in results])
        check(info(srv)["documents"] == n0 + 3000 * len(ok), "count after queue test: %d ok" % len(ok))
        print("write queue: %d accepted, %d answered 503" % (len(ok), len(full)), file=sys.stderr)
    finally:
        srv.stop()


# ---- crash test ---------------------------------------------------------------------------------

def live_docs(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {r[0]: r[1] for r in db.execute("SELECT external_id, text FROM documents WHERE deleted = 0")}
    finally:
        db.close()


def apply(state, op):
    kind, payload = op
    s = dict(state)
    if kind == "upsert":
        for i, text in payload:
            s[i] = text
    else:
        for i in payload:
            s.pop(i, None)
    return s


def crash_trial(base, folder, trial):
    path = os.path.join(folder, "crash-%d.db" % trial)
    shutil.copy(base, path)
    state = live_docs(path)
    rng = random.Random(1000 + trial)
    srv = sl.Server(["--index", "idx=" + path, "--no-access-log", "--threads", "2"])
    acked = dict(state)
    pending = [None]
    stop = threading.Event()
    n_acked = [0]

    def writer():
        seq = 0
        while not stop.is_set():
            seq += 1
            r = rng.random()
            if r < 0.7 or len(acked) < 50:
                n = rng.randint(1, 40)
                pool = ["doc-%d" % rng.randrange(300) for _ in range(n // 4)] + ["t%d-%d-%d" % (trial, seq, j) for j in range(n)]
                ids = list(dict.fromkeys(pool))
                batch = [(i, "v%d-%s" % (seq, i)) for i in ids]
                op = ("upsert", batch)
                body = {"documents": [{"id": i, "text": t, "embeddings": rand_doc(rng)} for i, t in batch]}
                method = "POST"
            else:
                ids = rng.sample(sorted(acked), min(len(acked), rng.randint(1, 60)))
                op = ("delete", ids)
                body = {"ids": ids}
                method = "DELETE"
            pending[0] = op
            try:
                st, _, data = srv.request(method, "/v1/indexes/idx/documents", body, timeout=30)
            except Exception:
                return  # the server was killed mid-request: op stays pending
            if st != 200:
                sl.failures.append("crash trial %d: write answered %d %r" % (trial, st, data[:200]))
                return
            acked.clear()
            acked.update(apply(acked_snapshot[0], op))
            acked_snapshot[0] = dict(acked)
            pending[0] = None
            n_acked[0] += 1

    acked_snapshot = [dict(state)]
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(rng.uniform(0.3, 2.5))
    srv.proc.kill()  # SIGKILL
    srv.proc.wait(30)
    stop.set()
    t.join(60)
    srv.reader.join(10)
    # Hold the writer's bookkeeping still: whatever it did not record as acknowledged is pending.
    committed = acked_snapshot[0]
    p = sl.run(["index", "check", "--index", path], check=False)
    violations = 0
    if p.returncode != 0:
        violations += 1
        sl.failures.append("crash trial %d: index check failed: %s" % (trial, (p.stdout + p.stderr)[-600:]))
    # The index opens (a writable server starts and answers).
    srv2 = sl.Server(["--index", "idx=" + path, "--no-access-log"])
    try:
        st, _, j = srv2.json("GET", "/v1/indexes/idx")
        live = live_docs(path)
        if st != 200 or j.get("documents") != len(live):
            violations += 1
            sl.failures.append("crash trial %d: reopened index: %d %r vs %d live rows" % (trial, st, j, len(live)))
    finally:
        srv2.stop()
    ok_states = [committed]
    if pending[0] is not None:
        ok_states.append(apply(committed, pending[0]))
    if live not in ok_states:
        violations += 1
        missing = set(committed) - set(live)
        extra = set(live) - set(committed)
        sl.failures.append("crash trial %d: live set is not the acknowledged writes (%d missing, %d extra, "
                        "pending %s)" % (trial, len(missing), len(extra), pending[0] and pending[0][0]))
    os.remove(path)
    for suffix in ("-wal", "-shm", "-lock"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return n_acked[0], pending[0] is not None, violations


def test_crash(base, folder):
    total_v = 0
    t0 = time.time()
    trials = 0
    for trial in range(CRASH_TRIALS):
        if time.time() - t0 > 150:
            break
        n, pend, v = crash_trial(base, folder, trial)
        trials += 1
        total_v += v
        print("crash trial %d: %d acknowledged writes, %s in flight, %d violations" %
              (trial, n, "one" if pend else "none", v), file=sys.stderr)
    print("crash test: %d trials, %d violations" % (trials, total_v), file=sys.stderr)
    check(trials >= min(CRASH_TRIALS, 3), "only %d crash trials ran" % trials)


def main():
    with tempfile.TemporaryDirectory(prefix="cp_http_write_") as folder:
        corpus = sl.Corpus(n_docs=300, dim=DIM, seed=13)
        base = sl.build_index(folder, corpus, "base.db")
        model = sl.write_model(folder)
        path = os.path.join(folder, "idx.db")
        shutil.copy(base, path)
        srv = sl.Server(["--index", path, "--model", model, "--threads", "4"])
        try:
            check(any("'idx'" in l and "writable" in l for l in srv.lines), "index not announced writable")
            for name, fn in [("writes", lambda: test_writes(srv, corpus)), ("errors", lambda: test_errors(srv, path)),
                             ("concurrent", lambda: test_concurrent_readers(srv, corpus)),
                             ("filtered race", lambda: test_filtered_race(srv, corpus))]:
                print("-- " + name, file=sys.stderr)
                fn()
            check(srv.alive(), "server died")
        finally:
            rc = srv.stop()
        check(rc == 0, "server exit status %r" % rc)
        index_check(path, "after the write tests")
        for name, fn in [("text errors", lambda: test_text_errors(path, None)),
                         ("scopes", lambda: test_scopes(path, folder)),
                         ("auto compact", lambda: test_auto_compact(path)),
                         ("same file", lambda: test_same_file(path, folder)),
                         ("read-only", lambda: test_read_only(path)),
                         ("queue", lambda: test_write_queue_full(path))]:
            print("-- " + name, file=sys.stderr)
            fn()
        index_check(path, "after the queue test")
        print("-- crash", file=sys.stderr)
        test_crash(base, folder)


if __name__ == "__main__":
    sl.main(main, "ok")
