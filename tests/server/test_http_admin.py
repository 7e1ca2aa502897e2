"""The admin routes (issue 12: an admin scope that means something) against the real
`colplaid serve`: POST /v1/indexes creates an empty index in --index-dir with the codec of a
served one, upserts (text with the server's model, or embeddings) fill it, DELETE
/v1/indexes/{name} unserves it at once and removes its file when the requests using it are
done; scopes, hostile names, configuration errors, searches racing a drop, and a restart
that serves what --index-dir holds.
"""
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check
KEYS = {"read": "reader-key-0123456789", "write": "writer-key-0123456789", "admin": "admin-key-0123456789"}


def h(scope="admin"):
    return {"Authorization": "Bearer " + KEYS[scope]}


def create(srv, name, codec_from="idx", scope="admin"):
    return srv.json("POST", "/v1/indexes", {"name": name, "codec_from": codec_from}, headers=h(scope))


def upsert_text(srv, name, docs, scope="write"):
    body = {"documents": [{"id": d["id"], "text": d["text"], "metadata": d["metadata"]} for d in docs]}
    return srv.json("POST", "/v1/indexes/%s/documents" % name, body, headers=h(scope))


def search_text(srv, name, text, k=3):
    return srv.json("POST", "/v1/indexes/%s/search" % name, {"queries": [text], "k": k}, headers=h("read"))


def files_of(folder):
    return sorted(os.listdir(folder))


def test_create_fill_drop(srv, idx_dir, docs, idx_path):
    # scopes: no key, read and write keys are refused; nothing is created
    st, _, j = srv.json("POST", "/v1/indexes", {"name": "fresh", "codec_from": "idx"})
    check(st == 401 and j["error"]["code"] == "UNAUTHENTICATED", "create without key: %d %r" % (st, j))
    for scope in ("read", "write"):
        st, _, j = create(srv, "fresh", scope=scope)
        check(st == 403 and j["error"]["code"] == "FORBIDDEN" and "admin" in j["error"]["message"],
              "create with the %s key: %d %r" % (scope, st, j))
    check(files_of(idx_dir) == [], "a refused create left files: %r" % files_of(idx_dir))

    st, _, j = create(srv, "fresh")
    check(st == 201, "create: %d %r" % (st, j))
    check(j.get("name") == "fresh" and j.get("documents") == 0 and j.get("dim") == 16 and
          j.get("codec_from") == "idx" and j.get("writable") is True, "create answer: %r" % j)
    _, _, src = srv.json("GET", "/v1/indexes/idx", headers=h("read"))
    check(j.get("centroids") == src.get("centroids") and j.get("nbits") == src.get("nbits"),
          "codec differs from the source: %r vs %r" % (j, src))
    check(os.path.exists(os.path.join(idx_dir, "fresh.db")), "fresh.db not in --index-dir: %r" % files_of(idx_dir))
    st, _, j = create(srv, "fresh")
    check(st == 409 and j["error"]["code"] == "INDEX_EXISTS", "create twice: %d %r" % (st, j))
    st, _, j = create(srv, "idx")
    check(st == 409 and j["error"]["code"] == "INDEX_EXISTS", "create over a served --index: %d %r" % (st, j))

    # an empty index answers searches with no hits
    st, _, j = search_text(srv, "fresh", "river mountain")
    check(st == 200 and j["results"][0]["hits"] == [], "search of the empty index: %d %r" % (st, j))

    # fill it with text (the server's model) and with embeddings, then search
    st, _, j = upsert_text(srv, "fresh", docs[:40])
    check(st == 200 and j.get("added") == 40, "text upsert into the new index: %d %r" % (st, j))
    # the source has a lexical side, so the new index has one too, and it follows the upserts
    word = docs[7]["text"].split()[-1]
    st, _, j = srv.json("POST", "/v1/indexes/fresh/search", {"queries": [word], "k": 100, "mode": "lexical"},
                        headers=h("read"))
    want = {d["id"] for d in docs[:40] if word in d["text"].split()}
    check(st == 200 and {x["id"] for x in j["results"][0]["hits"]} == want,
          "lexical search of the created index for %r: %d %r, want %r" % (word, st, j, sorted(want)))
    st, _, emb = srv.json("POST", "/v1/encode", {"texts": [docs[50]["text"]], "kind": "document"}, headers=h("read"))
    rows = emb["results"][0]["embeddings"] if st == 200 else [[1.0] + [0.0] * 15]
    st, _, j = srv.json("POST", "/v1/indexes/fresh/documents",
                        {"documents": [{"id": "by-embeddings", "embeddings": rows}]}, headers=h("write"))
    check(st == 200 and j.get("added") == 1, "embedding upsert into the new index: %d %r" % (st, j))
    hits_ok = 0
    for d in docs[:10]:
        st, _, j = search_text(srv, "fresh", d["text"])
        hits_ok += st == 200 and bool(j["results"][0]["hits"]) and j["results"][0]["hits"][0]["id"] == d["id"]
    check(hits_ok >= 8, "searches of the new index found their own documents %d/10 times" % hits_ok)
    st, _, j = srv.json("POST", "/v1/indexes/fresh/search",
                        {"queries": [{"embeddings": rows}], "k": 1}, headers=h("read"))
    check(st == 200 and j["results"][0]["hits"] and j["results"][0]["hits"][0]["id"] == "by-embeddings",
          "embedding search of the new index: %d %r" % (st, j))
    st, _, j = srv.json("GET", "/v1/indexes", headers=h("read"))
    names = [i["name"] for i in j.get("indexes", [])]
    check(st == 200 and names == ["idx", "fresh"], "listing: %r" % names)
    st, _, metrics = srv.request("GET", "/metrics", headers=h("read"))
    check(st == 200 and b'colplaid_index_documents{index="fresh"} 41' in metrics,
          "metrics of the new index: %r" % [l for l in metrics.decode().splitlines() if "fresh" in l])

    # drop: only admin; then 404 at once, file and its -wal / -shm gone
    for scope in ("read", "write"):
        st, _, j = srv.json("DELETE", "/v1/indexes/fresh", headers=h(scope))
        check(st == 403 and j["error"]["code"] == "FORBIDDEN", "drop with the %s key: %d %r" % (scope, st, j))
    st, _, j = srv.json("DELETE", "/v1/indexes/fresh", headers=h())
    check(st == 200 and j.get("dropped") == "fresh" and j.get("file_removed") is True and j.get("file_kept") is None,
          "drop: %d %r" % (st, j))
    check(not [f for f in files_of(idx_dir) if f.startswith("fresh.db")], "files left after the drop: %r" % files_of(idx_dir))
    for method, path, body in [("GET", "/v1/indexes/fresh", None), ("POST", "/v1/indexes/fresh/search", {"queries": ["river"]}),
                               ("DELETE", "/v1/indexes/fresh", None)]:
        st, _, j = srv.json(method, path, body, headers=h())
        check(st == 404 and j["error"]["code"] == "INDEX_NOT_FOUND", "%s %s after the drop: %d %r" % (method, path, st, j))
    st, _, metrics = srv.request("GET", "/metrics", headers=h("read"))
    check(st == 200 and b'index="fresh"' not in metrics and b'colplaid_index_documents{index="idx"}' in metrics,
          "metrics after the drop")
    check(b'colplaid_requests_total{route="DELETE /v1/indexes/{name}"' in metrics or b"DELETE /v1/indexes/{name}" in metrics,
          "the drop route has no metrics label")

    # the same name can be created again, empty
    st, _, j = create(srv, "fresh")
    check(st == 201 and j.get("documents") == 0, "re-create after the drop: %d %r" % (st, j))
    st, _, j = srv.json("DELETE", "/v1/indexes/fresh", headers=h())
    check(st == 200 and j.get("file_removed") is True, "second drop: %d %r" % (st, j))


def test_bad_requests(srv, idx_dir, folder):
    hostile = ["../x", "a/b", "x" * 129, "", ".db", ".hidden", "..", ".", "a b", "caf\u00e9", "-lead", "x\\y", "%2e%2e"]
    for name in hostile:
        st, _, j = create(srv, name)
        check(st == 400 and j["error"]["code"] == "INVALID_ARGUMENT", "name %r: %d %r" % (name, st, j))
    st, _, j = create(srv, "x" * 128)
    check(st == 201, "a 128-character name: %d %r" % (st, j))
    st, _, j = srv.json("DELETE", "/v1/indexes/" + "x" * 128, headers=h())
    check(st == 200 and j.get("file_removed") is True, "drop of the 128-character name: %d %r" % (st, j))
    bodies = [{}, {"name": "ok"}, {"codec_from": "idx"}, {"name": 3, "codec_from": "idx"},
              {"name": "ok", "codec_from": "idx", "extra": 1}, {"name": "ok", "codec_from": ""},
              {"name": "ok", "codec_from": "nope"}, [], "not json"]
    for b in bodies:
        raw = b if isinstance(b, str) else json.dumps(b)
        st, _, j = srv.json("POST", "/v1/indexes", raw, headers=dict(h(), **{"Content-Type": "application/json"}))
        check(st == 400, "body %r: %d %r" % (b, st, j))
    check(files_of(idx_dir) == [], "refused creates left files in --index-dir: %r" % files_of(idx_dir))
    check(not os.path.exists(os.path.join(folder, "x.db")) and not os.path.exists(os.path.join(folder, "x")),
          "a name escaped --index-dir")
    st, _, j = srv.json("PUT", "/v1/indexes", {}, headers=h())
    check(st == 405 and "POST" in j["error"]["message"], "PUT /v1/indexes: %d %r" % (st, j))
    st, _, j = srv.json("DELETE", "/v1/indexes/nope", headers=h())
    check(st == 404 and j["error"]["code"] == "INDEX_NOT_FOUND", "drop of an unknown index: %d %r" % (st, j))


def test_drop_cli_index(folder, model, idx_path):
    """An index given with --index is only unserved: its file stays, and the answer says so."""
    keep = os.path.join(folder, "keep.db")
    shutil.copy(idx_path, keep)
    empty_dir = tempfile.mkdtemp(dir=folder)
    srv = sl.Server(["--index", keep, "--index-dir", empty_dir, "--api-keys", os.path.join(folder, "keys.txt"),
                     "--no-access-log"])
    try:
        st, _, j = srv.json("DELETE", "/v1/indexes/keep", headers=h())
        check(st == 200 and j.get("file_removed") is False and "--index" in (j.get("file_kept") or ""),
              "drop of an --index: %d %r" % (st, j))
        check(os.path.exists(keep), "dropping an --index removed its file")
        st, _, j = srv.json("GET", "/v1/indexes/keep", headers=h())
        check(st == 404, "the dropped --index is still served: %d" % st)
        st, _, j = srv.json("GET", "/health")
        check(st == 200 and j.get("indexes") == [], "health after the drop: %r" % j)
    finally:
        check(srv.stop() == 0, "server exit status")
    sl.run(["index", "check", "--index", keep])


def test_config_errors(folder, model, idx_path):
    keys = os.path.join(folder, "keys.txt")
    srv = sl.Server(["--index", idx_path, "--api-keys", keys, "--no-access-log"])
    try:
        st, _, j = create(srv, "new")
        check(st == 409 and "--index-dir" in j["error"]["message"], "create without --index-dir: %d %r" % (st, j))
    finally:
        srv.stop()
    ro_dir = tempfile.mkdtemp(dir=folder)
    srv = sl.Server(["--index", idx_path, "--index-dir", ro_dir, "--read-only", "--api-keys", keys, "--no-access-log"])
    try:
        st, _, j = create(srv, "new")
        check(st == 409 and "--read-only" in j["error"]["message"], "create with --read-only: %d %r" % (st, j))
        check(files_of(ro_dir) == [], "a read-only server created files")
    finally:
        srv.stop()
    # a name clash between --index and --index-dir is bad usage (exit 2)
    clash_dir = tempfile.mkdtemp(dir=folder)
    shutil.copy(idx_path, os.path.join(clash_dir, "idx.db"))
    p = sl.run(["serve", "--port", "0", "--index", idx_path, "--index-dir", clash_dir], check=False, timeout=60)
    check(p.returncode == 2 and "idx" in p.stderr and "--index-dir" in p.stderr,
          "name clash: exit %d, %r" % (p.returncode, p.stderr[-300:]))
    p = sl.run(["serve", "--port", "0", "--index-dir", os.path.join(folder, "no-such-dir")], check=False, timeout=60)
    check(p.returncode == 2 and "not a directory" in p.stderr, "missing dir: exit %d, %r" % (p.returncode, p.stderr[-300:]))


def test_race(srv, idx_dir, docs, seconds=3.0):
    """Searches (and writes) race a drop: every answer is 200 or 404 INDEX_NOT_FOUND, the
    server survives (an ASan build would abort on a use after free), the file goes."""
    st, _, j = create(srv, "race")
    check(st == 201, "create race: %d %r" % (st, j))
    st, _, j = upsert_text(srv, "race", docs[:60])
    check(st == 200, "fill race: %d %r" % (st, j))
    statuses, bad = {}, []
    lock = threading.Lock()
    stop = threading.Event()

    def reader(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            d = rng.choice(docs)
            if rng.random() < 0.15:
                st, _, j = upsert_text(srv, "race", [dict(d, id="w%d" % rng.randrange(1000))])
            else:
                st, _, j = search_text(srv, "race", d["text"], k=5)
            with lock:
                statuses[st] = statuses.get(st, 0) + 1
                if st not in (200, 404) or (st == 404 and j["error"]["code"] != "INDEX_NOT_FOUND"):
                    bad.append((st, j))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    st, _, j = srv.json("DELETE", "/v1/indexes/race", headers=h())
    dropped_at = time.time()
    check(st == 200 and j.get("dropped") == "race", "drop during searches: %d %r" % (st, j))
    time.sleep(seconds / 2)
    stop.set()
    for t in threads:
        t.join(60)
    print("race: statuses %r, drop answer %r" % (statuses, j), file=sys.stderr)
    check(not bad, "unexpected answers during the drop: %r" % bad[:5])
    check(statuses.get(200, 0) > 0 and statuses.get(404, 0) > 0, "the race did not race: %r" % statuses)
    # removed by the drop itself, or by the last request that used it (removal_pending)
    while [f for f in files_of(idx_dir) if f.startswith("race.db")] and time.time() < dropped_at + 10:
        time.sleep(0.05)
    check(not [f for f in files_of(idx_dir) if f.startswith("race.db")], "race.db left: %r" % files_of(idx_dir))
    check(srv.alive(), "the server died during the drop race")


def test_restart(folder, model, idx_path, idx_dir, docs):
    """Indexes created over HTTP are served again after a restart with --index-dir alone."""
    keys = os.path.join(folder, "keys.txt")
    srv = sl.Server(["--index", idx_path, "--index-dir", idx_dir, "--model", model, "--api-keys", keys,
                     "--no-access-log"])
    try:
        for name in ("kept-a", "kept.b"):
            st, _, j = create(srv, name)
            check(st == 201, "create %s: %d %r" % (name, st, j))
            st, _, j = upsert_text(srv, name, docs[:25])
            check(st == 200, "fill %s: %d %r" % (name, st, j))
    finally:
        check(srv.stop() == 0, "server exit status")
    # a file that cannot be an index name is skipped with a warning, not served
    with open(os.path.join(idx_dir, ".hidden.db"), "w") as f:
        f.write("not an index")
    srv = sl.Server(["--index-dir", idx_dir, "--model", model, "--api-keys", keys, "--no-access-log"])
    try:
        st, _, j = srv.json("GET", "/v1/indexes", headers=h("read"))
        check(st == 200 and [(i["name"], i["documents"]) for i in j["indexes"]] == [("kept-a", 25), ("kept.b", 25)],
              "indexes after the restart: %r" % j)
        check(any("skipping" in l and ".hidden.db" in l for l in srv.lines), "no warning for .hidden.db")
        st, _, j = search_text(srv, "kept.b", docs[3]["text"])
        check(st == 200 and j["results"][0]["hits"] and j["results"][0]["hits"][0]["id"] == docs[3]["id"],
              "search after the restart: %d %r" % (st, j))
        # no --index served: codec_from can name an index of the directory
        st, _, j = create(srv, "third", codec_from="kept-a")
        check(st == 201 and j.get("codec_from") == "kept-a", "create from a directory index: %d %r" % (st, j))
    finally:
        check(srv.stop() == 0, "server exit status")
    os.unlink(os.path.join(idx_dir, ".hidden.db"))
    for name in ("kept-a", "kept.b", "third"):
        sl.run(["index", "check", "--index", os.path.join(idx_dir, name + ".db")])


def main():
    with tempfile.TemporaryDirectory(prefix="cp_http_admin_") as folder:
        model, idx_path, docs = sl.build_text_index(folder)
        with open(os.path.join(folder, "keys.txt"), "w") as f:
            f.write("".join("%s %s\n" % (k, s) for s, k in KEYS.items()))
        idx_dir = os.path.join(folder, "indexes")
        os.mkdir(idx_dir)
        srv = sl.Server(["--index", idx_path, "--index-dir", idx_dir, "--model", model, "--threads", "4",
                         "--api-keys", os.path.join(folder, "keys.txt"), "--no-access-log"])
        try:
            for name, fn in [("create, fill, drop", lambda: test_create_fill_drop(srv, idx_dir, docs, idx_path)),
                             ("bad requests", lambda: test_bad_requests(srv, idx_dir, folder)),
                             ("race", lambda: test_race(srv, idx_dir, docs))]:
                print("-- " + name, file=sys.stderr)
                fn()
            check(srv.alive(), "server died")
        finally:
            rc = srv.stop()
        check(rc == 0, "server exit status %r" % rc)
        sl.run(["index", "check", "--index", idx_path])
        for name, fn in [("drop an --index", lambda: test_drop_cli_index(folder, model, idx_path)),
                         ("config errors", lambda: test_config_errors(folder, model, idx_path)),
                         ("restart", lambda: test_restart(folder, model, idx_path, idx_dir, docs))]:
            print("-- " + name, file=sys.stderr)
            fn()


if __name__ == "__main__":
    sl.main(main, "ok")
