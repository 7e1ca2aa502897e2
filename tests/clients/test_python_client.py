"""The Python client (clients/python) against a real `colplaid serve` on loopback.

Phase 1 (Debian's python3): create a venv under $CP_BINARY_DIR, `pip install` the package
into it, then re-run this file with the venv's python (phase 2), which must import the
installed package, not the source tree. Checks: every read route through typed methods and
equal to raw HTTP, errors as exceptions with the server's status/code/message, keep-alive
connection reuse, retries on a real 503 honouring Retry-After, the AsyncClient's
concurrency, the console script (JSON when piped, colours on a terminal), the BEIR helper
against `colplaid eval`, and the write methods when the server serves write routes.
"""
import asyncio
import json
import os
import pty
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib as cl  # noqa: E402

sl = cl.sl
check = sl.check


def expect_error(fn, status, code):
    from colplaid import ColplaidError
    try:
        fn()
    except ColplaidError as e:
        check(e.status == status and e.code == code and e.message and e.request_id,
              "expected %d %s, got %d %s %r (request id %r)" % (status, code, e.status, e.code, e.message, e.request_id))
        return e
    check(False, "expected a ColplaidError %d %s, the call succeeded" % (status, code))


def test_reads(c, srv, docs):
    import colplaid
    h = c.health()
    check(h["status"] == "ok" and h["indexes"][0]["name"] == "idx", "health %r" % h)
    ixs = c.indexes()
    check([ix["name"] for ix in ixs] == ["idx"] and ixs[0]["documents"] == len(docs), "indexes %r" % ixs)
    info = c.index_info("idx")
    check(info["documents"] == len(docs) and info["dim"] == ixs[0]["dim"] and info["nbits"] == 2, "index_info %r" % info)
    check("/v1/indexes/{name}/search" in c.openapi()["paths"], "openapi paths")
    for q in ["river mountain", "music painting history", "snow"]:
        res = c.search("idx", q, k=5, include=["text", "metadata"])
        st, _, raw = srv.json("POST", "/v1/indexes/idx/search",
                              {"queries": [q], "k": 5, "include": ["text", "metadata"]})
        want = raw["results"][0]["hits"]
        check(res.ids == [w["id"] for w in want] and [h.score for h in res] == [w["score"] for w in want],
              "search %r: client %r, raw HTTP %r" % (q, res.ids, [w["id"] for w in want]))
        check(all(h.text == w["text"] and h.metadata == w["metadata"] for h, w in zip(res, want)),
              "search %r: text/metadata" % q)
        # The same query as embedding rows and as base64 gives the same ranking.
        enc = c.encode([q])["results"][0]["embeddings"]
        by_rows = c.search("idx", enc, k=5)
        by_b64 = c.search("idx", colplaid.embeddings_b64(enc), k=5)
        check(by_rows.ids == res.ids and by_b64.ids == res.ids, "embedding query %r: %r %r vs %r"
              % (q, by_rows.ids, by_b64.ids, res.ids))
        check(all(abs(a.score - b.score) < 1e-5 for a, b in zip(by_b64, res)), "b64 scores %r" % q)
    many = c.search_many("idx", ["river", "snow", "castle island"], k=3, ncells=2, threshold=0.3, ndocs=64)
    check(len(many) == 3 and all(len(r) == 3 for r in many), "search_many %r" % many)
    check(many[1].ids == c.search("idx", "snow", k=3, ncells=2, threshold=0.3, ndocs=64).ids, "search_many order")
    exact = c.search("idx", "river", k=3, mode="exact")
    check(len(exact) == 3, "exact mode")
    lex = c.search("idx", "river", k=50, mode="lexical", include=["text"])
    check(len(lex) > 0 and all("river" in h.text.split() for h in lex), "lexical mode %r" % lex.ids)
    hyb = c.search("idx", "river snow", k=5, mode="hybrid", fusion={"method": "rrf"})
    check(len(hyb) == 5, "hybrid mode with fusion %r" % hyb.ids)
    flt = c.search("idx", "river", k=20, filter={"kind": "a"}, include=["metadata"])
    check(len(flt) > 0 and all(h.metadata["kind"] == "a" for h in flt), "filter")
    only = c.search("idx", "river", k=5, ids=[docs[3]["id"], docs[7]["id"]])
    check(set(only.ids) <= {docs[3]["id"], docs[7]["id"]} and len(only) == 2, "ids %r" % only.ids)
    d = c.get_document("idx", docs[4]["id"])
    check(d["text"] == docs[4]["text"] and d["metadata"] == docs[4]["metadata"], "get_document %r" % d)
    j = c.encode(["river snow"], kind="document")
    b = c.encode(["river snow"], kind="document", b64=True)
    rows = colplaid.decode_b64(b["results"][0]["embeddings_b64"], b["results"][0]["shape"])
    check(all(abs(x - y) < 1e-6 for r1, r2 in zip(rows, j["results"][0]["embeddings"]) for x, y in zip(r1, r2)),
          "encode b64 vs json")
    texts = [x["text"] for x in docs[:6]]
    rr = c.rerank("river mountain", texts)
    st, _, raw = srv.json("POST", "/v1/rerank", {"query": "river mountain", "documents": texts})
    check(rr == raw["results"], "rerank %r vs %r" % (rr, raw["results"]))
    ex = c.explain("idx", "river mountain", res.ids[0] if res.ids else docs[0]["id"])
    check(abs(sum(t["similarity"] for t in ex["query_tokens"]) - ex["score"]) < 1e-4, "explain sums")
    check("colplaid_http_requests_total" in c.metrics(), "metrics text")


def test_errors(c, docs):
    from colplaid import Client
    e = expect_error(lambda: c.get_document("idx", "no-such-doc"), 404, "DOCUMENT_NOT_FOUND")
    check(e and "no-such-doc" in e.message, "404 message names the id: %r" % (e and e.message))
    expect_error(lambda: c.search("nosuch", "river"), 404, "INDEX_NOT_FOUND")
    expect_error(lambda: c.search("idx", "river", k=0), 400, "INVALID_ARGUMENT")
    expect_error(lambda: c.search("idx", [[0.1] * 5]), 422, "DIMENSION_MISMATCH")
    expect_error(lambda: c.search("idx", "river", k=10 ** 9), 422, "LIMIT_EXCEEDED")
    expect_error(lambda: c.search("idx", "river", filter={"$bogus": 1}), 400, "INVALID_FILTER")
    # A port nobody listens on: a transport error after the retries, not a hang.
    dead = Client("http://127.0.0.1:9", retries=1, backoff=0.01, timeout=5)
    try:
        dead.health()
        check(False, "health on a closed port succeeded")
    except Exception as ex:  # noqa: BLE001
        check(getattr(ex, "code", "") == "TRANSPORT", "closed port: %r" % ex)


def test_keepalive(c):
    c.health()
    sock = c._local.conn.sock
    before = c.stats["connections"]
    for _ in range(20):
        c.search("idx", "river", k=2)
        c.index_info("idx")
    check(c.stats["connections"] == before and c._local.conn.sock is sock,
          "connection reuse: %d connections opened for 40 requests" % (c.stats["connections"] - before))


def test_retries(folder, model, idx):
    """A server with one worker and a queue of one, flooded by other threads: the client
    without retries sees 503 OVERLOADED with Retry-After 1; the retrying client gets through,
    waiting at least Retry-After between attempts."""
    from colplaid import Client, ColplaidError
    srv = sl.Server(["--index", idx, "--model", model, "--threads", "1", "--queue-depth", "1",
                     "--no-access-log"])
    try:
        heavy = {"query": "river mountain forest", "documents": [" ".join(sl.WORDS) * 40] * 300}
        stop = threading.Event()

        def flood():
            f = Client(srv.url, retries=0)
            while not stop.is_set():
                try:
                    f.rerank(heavy["query"], heavy["documents"])
                except ColplaidError:
                    pass
            f.close()
        threads = [threading.Thread(target=flood, daemon=True) for _ in range(6)]
        for t in threads:
            t.start()
        plain = Client(srv.url, retries=0)
        seen = None
        deadline = time.monotonic() + 60
        while seen is None and time.monotonic() < deadline:
            try:
                plain.search("idx", "river", k=2)
            except ColplaidError as e:
                seen = e
        check(seen is not None and seen.status == 503 and seen.code == "OVERLOADED" and seen.retry_after == 1,
              "no 503 OVERLOADED with Retry-After 1 under flood: %r" % seen)
        retrying = Client(srv.url, retries=10, backoff=0.2, max_backoff=2)
        threading.Timer(3.0, stop.set).start()
        t0 = time.monotonic()
        ok = 0
        for _ in range(5):
            try:
                retrying.search("idx", "river", k=2)
                ok += 1
            except ColplaidError as e:
                check(False, "retrying client failed: %s" % e)
        elapsed = time.monotonic() - t0
        r = retrying.stats["retries"]
        check(ok == 5, "retrying client: %d of 5 succeeded" % ok)
        check(r >= 1, "the retrying client never retried while the server was flooded")
        check(elapsed >= 0.95 * r * 0.75 and (r == 0 or elapsed >= 0.95),
              "Retry-After not honoured: %d retries in %.2f s" % (r, elapsed))
        print("retries: %d in %.2f s" % (r, elapsed))
        stop.set()
        for t in threads:
            t.join(60)
    finally:
        stop.set()
        srv.stop()


def test_async(url):
    from colplaid import AsyncClient, Client

    async def run():
        async with AsyncClient(url, concurrency=8) as ac:
            qs = ["river", "snow", "castle", "music", "train bridge", "garden rain", "desert", "stone"] * 2
            t0 = time.monotonic()
            res = await asyncio.gather(*(ac.search("idx", q, k=4) for q in qs))
            h = await ac.health()
            return qs, res, h, ac.stats, time.monotonic() - t0
    qs, res, h, stats, _ = asyncio.run(run())
    sync = Client(url)
    check(h["status"] == "ok", "async health")
    check(all(r.ids == sync.search("idx", q, k=4).ids for q, r in zip(qs, res)), "async results differ from sync")
    check(stats["connections"] > 1, "AsyncClient ran the 16 requests on %d connection(s): no concurrency"
          % stats["connections"])
    sync.close()


def run_cli(py, args, tty=False):
    exe = os.path.join(os.path.dirname(py), "colplaid-client")
    if not tty:
        p = subprocess.run([exe] + args, capture_output=True, text=True, timeout=120)
        return p.returncode, p.stdout, p.stderr
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(exe, [exe] + args)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace"), ""


def test_cli(py, url, c):
    rc, out, err = run_cli(py, ["search", "river mountain", "--url", url, "--k", "3"])
    check(rc == 0, "colplaid-client search: %d %s" % (rc, err))
    if rc == 0:
        j = json.loads(out)
        check([h["id"] for h in j["hits"]] == c.search("idx", "river mountain", k=3).ids, "cli JSON hits")
    rc, out, _ = run_cli(py, ["--url", url, "health"], tty=True)
    check(rc == 0 and "\x1b[" in out and "idx" in out and not out.lstrip().startswith("{"),
          "cli on a terminal: colours and text expected, got %r" % out[:300])
    rc, out, _ = run_cli(py, ["search", "river", "--url", url, "--k", "2"], tty=True)
    check(rc == 0 and "\x1b[" in out and c.search("idx", "river", k=2).ids[0] in out, "cli search on a tty %r" % out[:300])
    rc, out, _ = run_cli(py, ["info", "--url", url])
    check(rc == 0 and json.loads(out)["name"] == "idx", "cli info")
    rc, out, err = run_cli(py, ["get", "idx", "missing-doc", "--url", url])
    check(rc == 1 and "DOCUMENT_NOT_FOUND" in err and "404" in err, "cli error: %d %r" % (rc, err))
    rc, out, _ = run_cli(py, ["explain", "idx", c.search("idx", "river", k=1).ids[0], "river", "--url", url, "--pretty"])
    check(rc == 0 and "MaxSim" in out and "river" in out, "cli explain %r" % out[:300])


def test_beir(py, folder, model, docs):
    beir = cl.write_beir(os.path.join(folder, "beir"), docs)
    idx = os.path.join(folder, "beir.db")
    sl.run(["index", "build", "--index", idx, "--corpus", beir, "--model", model, "--centroids", "16",
            "--seed", "1", "--quiet"])
    want = json.loads(sl.run(["eval", "--index", idx, "--model", model, "--queries",
                              os.path.join(beir, "queries.jsonl"), "--qrels",
                              os.path.join(beir, "qrels", "test.tsv"), "--format", "json"]).stdout)
    srv = sl.Server(["--index", "beir=" + idx, "--model", model, "--no-access-log"])
    try:
        p = subprocess.run([py, "-m", "colplaid.beir", "--url", srv.url,
                            "--corpus", beir, "--index", "beir"], capture_output=True, text=True, timeout=300)
        check(p.returncode == 0, "beir helper: %d %s" % (p.returncode, p.stderr[-1000:]))
        if p.returncode == 0:
            got = json.loads(p.stdout.strip().splitlines()[-1])
            check(abs(got["ndcg@10"] - want["ndcg@10"]) < 1e-3 and got["queries"] == want["queries"],
                  "beir helper nDCG@10 %.4f over %d queries, colplaid eval %.4f over %d"
                  % (got["ndcg@10"], got["queries"], want["ndcg@10"], want["queries"]))
            check("no write routes" in p.stderr or got["indexing"] == "api", "beir helper says how it indexed")
            print("beir: API nDCG@10 %.4f, colplaid eval %.4f" % (got["ndcg@10"], want["ndcg@10"]))
    finally:
        srv.stop()


def test_writes(c):
    if not c.has_write_routes():
        check(False, "the server has no write routes (POST /v1/indexes/{name}/documents is not in "
              "its /openapi.json): upsert/delete methods cannot be exercised")
        return
    from colplaid import ColplaidError
    c.upsert("idx", [{"id": "new-1", "text": "river castle snow", "metadata": {"n": -1}}])
    d = c.get_document("idx", "new-1")
    check(d["text"] == "river castle snow", "upserted document %r" % d)
    c.delete_documents("idx", ids=["new-1"])
    try:
        c.get_document("idx", "new-1")
        check(False, "deleted document still there")
    except ColplaidError as e:
        check(e.status == 404, "deleted document: %r" % e)
    r = c.compact("idx")  # no keys here: the admin route is open on loopback
    check(r.get("index") == "idx" and r.get("tombstones_removed", 0) > 0, "compact: %r" % r)
    # this server has no --index-dir: create_index says which option is missing
    try:
        c.create_index("made", "idx")
        check(False, "create_index without --index-dir succeeded")
    except ColplaidError as e:
        check(e.status == 409 and "--index-dir" in e.message, "create_index without --index-dir: %r" % e)
    try:
        c.drop_index("nosuch")
        check(False, "drop_index of an unknown index succeeded")
    except ColplaidError as e:
        check(e.status == 404 and e.code == "INDEX_NOT_FOUND", "drop_index of an unknown index: %r" % e)


def test_admin(folder, model, idx):
    """create_index / drop_index against a server with --index-dir."""
    import asyncio
    from colplaid import AsyncClient, Client
    idx_dir = os.path.join(folder, "created")
    os.mkdir(idx_dir)
    srv = sl.Server(["--index", idx, "--index-dir", idx_dir, "--model", model, "--no-access-log"])
    try:
        c = Client(srv.url)
        info = c.create_index("made", codec_from="idx")
        check(info.get("name") == "made" and info.get("documents") == 0, "create_index: %r" % info)
        c.upsert("made", [{"id": "m1", "text": "river castle snow"}, {"id": "m2", "text": "desert market"}])
        hits = c.search("made", "river castle", k=1).hits
        check(hits and hits[0].id == "m1", "search of the created index: %r" % hits)
        async def drop():
            async with AsyncClient(srv.url) as a:
                return await a.drop_index("made")
        r = asyncio.run(drop())
        check(r.get("dropped") == "made" and r.get("file_removed") is True, "drop_index: %r" % r)
        check(not os.path.exists(os.path.join(idx_dir, "made.db")), "made.db left after drop_index")
        check([i["name"] for i in c.indexes()] == ["idx"], "indexes after drop_index: %r" % c.indexes())
        c.close()
    finally:
        srv.stop()


def test_passages(folder):
    """Hits of a windowed index carry their best window's span (Hit.passage), equal to raw
    HTTP's; a plain index's hits have none."""
    from colplaid import Client, Passage
    model, idx, texts = cl.build_windowed_index(folder)
    srv = sl.Server(["--index", "win=" + idx, "--model", model, "--no-access-log"])
    try:
        c = Client(srv.url)
        for q, doc, words in (("castle island", "long1", "castle island"), ("desert valley", "long2", "desert valley")):
            res = c.search("win", q, k=5, include=["text"])
            st, _, raw = srv.json("POST", "/v1/indexes/win/search", {"queries": [q], "k": 5})
            want = [(h["id"], h.get("passage")) for h in raw["results"][0]["hits"]] if st == 200 else None
            got = [(h.id, {"start": h.passage.start, "end": h.passage.end} if h.passage else None) for h in res]
            check(got == want and all(p for _, p in got), "passages %r: client %r, raw HTTP %r" % (q, got, want))
            top = res[0] if len(res) else None
            check(top is not None and top.id == doc and isinstance(top.passage, Passage) and
                  words in top.passage.of(top.text) and top.passage.of(top.text) != top.text,
                  "%r: the top hit's passage %r lacks %r" % (q, top and top.passage, words))
        c.close()
    finally:
        srv.stop()


def phase2():
    import colplaid
    check(os.path.realpath(colplaid.__file__).startswith(os.path.realpath(sys.prefix)),
          "colplaid imported from %s, not the venv %s" % (colplaid.__file__, sys.prefix))
    from colplaid import Client
    with tempfile.TemporaryDirectory(prefix="cp_pyclient_") as folder:
        model, idx, docs = sl.build_text_index(folder)
        srv = sl.Server(["--index", idx, "--model", model, "--threads", "2", "--no-access-log"])
        url = srv.url
        try:
            c = Client(url)
            plain = c.search("idx", "river", k=3)
            check(len(plain) and all(h.passage is None for h in plain), "a plain index's hits have passages")
            for name, fn in [("reads", lambda: test_reads(c, srv, docs)), ("errors", lambda: test_errors(c, docs)),
                             ("keepalive", lambda: test_keepalive(c)), ("async", lambda: test_async(url)),
                             ("cli", lambda: test_cli(sys.executable, url, c)), ("writes", lambda: test_writes(c))]:
                print("-- " + name, file=sys.stderr)
                fn()
            c.close()
            check(srv.alive(), "server died")
        finally:
            srv.stop()
        print("-- passages", file=sys.stderr)
        test_passages(folder)
        print("-- beir", file=sys.stderr)
        test_beir(sys.executable, folder, model, docs)
        print("-- retries", file=sys.stderr)
        test_retries(folder, model, idx)
        print("-- admin", file=sys.stderr)
        test_admin(folder, model, idx)


def main():
    if os.environ.get("CP_CLIENT_PHASE") == "2":
        return phase2()
    py = cl.client_venv()
    env = dict(os.environ, CP_CLIENT_PHASE="2", PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([py, os.path.abspath(__file__)], env=env, timeout=900, cwd=cl.BINARY)
    sys.exit(p.returncode)


if __name__ == "__main__":
    sl.main(main, "python client: all checks passed")
