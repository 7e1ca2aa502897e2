"""HTTP integration test: the real `colplaid serve` on loopback against a small index built
with the real CLI. Covers every route, every error path (each followed by a health check;
the index file is unchanged at the end), filters and ids against a Python evaluation,
exact mode against MaxSim over the exported embeddings, consistency with `colplaid search`,
request ids, metrics, and the OpenAPI document against the routes the server answers.
"""
import http.client
import json
import os
import random
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check


def expect_error(srv, method, path, body, status, code, what, headers=None):
    st, h, data = srv.request(method, path, body, headers)
    try:
        j = json.loads(data)
    except ValueError:
        j = None
    check(st == status, "%s: status %d, want %d (%r)" % (what, st, status, data[:300]))
    ok_shape = isinstance(j, dict) and isinstance(j.get("error"), dict) and \
        isinstance(j["error"].get("message"), str) and j["error"].get("message")
    check(ok_shape, "%s: error body is not {error: {code, message}}: %r" % (what, data[:300]))
    if ok_shape:
        check(j["error"].get("code") == code, "%s: code %r, want %r" % (what, j["error"].get("code"), code))
    check("x-request-id" in h, "%s: no X-Request-Id header" % what)
    st2, _, _ = srv.request("GET", "/health")
    check(st2 == 200, "%s: server not serving afterwards (health %d)" % (what, st2))


def test_service_routes(srv, corpus):
    st, h, j = srv.json("GET", "/health")
    check(st == 200 and j.get("status") == "ok", "health: %d %r" % (st, j))
    names = sorted(i["name"] for i in j.get("indexes", []))
    check(names == ["alias", "idx"], "health lists indexes %r" % names)
    check(all(i.get("documents") == len(corpus.docs) for i in j["indexes"]), "health document counts")
    st, h, j = srv.json("GET", "/v1/indexes")
    check(st == 200 and len(j.get("indexes", [])) == 2, "list indexes: %d %r" % (st, j))
    st, h, j = srv.json("GET", "/v1/indexes/idx")
    check(st == 200 and j.get("dim") == corpus.dim and j.get("documents") == len(corpus.docs),
          "index info: %r" % j)
    check(j.get("tokens") == sum(len(d) for d in corpus.docs), "index info tokens: %r" % j.get("tokens"))
    st, h, j = srv.json("GET", "/v1/indexes/idx/documents/doc-5")
    check(st == 200 and j.get("id") == "doc-5" and j.get("text") == corpus.texts[5] and
          j.get("metadata") == corpus.metadata[5] and j.get("n_tokens") == len(corpus.docs[5]),
          "get document: %r" % j)
    st, h, data = srv.request("GET", "/metrics")
    text = data.decode()
    check(st == 200 and h.get("content-type", "").startswith("text/plain"), "metrics status/type")
    for needle in ["colplaid_http_requests_total{route=\"/health\",status=\"200\"}",
                   "colplaid_http_request_duration_seconds_bucket", "colplaid_http_in_flight",
                   "colplaid_queue_depth", "colplaid_process_resident_memory_bytes",
                   "colplaid_index_documents{index=\"idx\"} %d" % len(corpus.docs)]:
        check(needle in text, "metrics lacks %s" % needle)
    st, h, data = srv.request("GET", "/health", headers={"X-Request-Id": "trace-abc.123"})
    check(h.get("x-request-id") == "trace-abc.123", "request id not echoed: %r" % h.get("x-request-id"))
    st, h, data = srv.request("GET", "/health", headers={"X-Request-Id": "bad id\twith spaces"})
    check(h.get("x-request-id") and h.get("x-request-id") != "bad id\twith spaces",
          "an invalid request id must be replaced")


def search(srv, body, index="idx"):
    st, h, j = srv.json("POST", "/v1/indexes/%s/search" % index, body)
    if st != 200:
        check(False, "search %r...: status %d %r" % (json.dumps(body)[:120], st, j))
        return None
    return j


def exported_maxsim(folder, corpus):
    """Exact MaxSim ranking over the decompressed embeddings the index really holds."""
    emb, dl = os.path.join(folder, "exp.npy"), os.path.join(folder, "exp_doclens.npy")
    ids = os.path.join(folder, "exp_ids.txt")
    sl.run(["index", "export", "--index", os.path.join(folder, "idx.db"), "--out", emb,
            "--doclens-out", dl, "--ids", ids])  # a failed export fails the test
    shape, flat = sl.read_npy(emb)
    _, lens = sl.read_npy(dl)
    with open(ids) as f:
        names = f.read().split()
    dim, docs, off = shape[1], {}, 0
    for name, n in zip(names, lens):
        docs[name] = [flat[(off + t) * dim:(off + t + 1) * dim] for t in range(n)]
        off += n
    return docs


def test_search(srv, corpus, folder):
    rng = random.Random(11)
    queries = [corpus.query(rng) for _ in range(4)]
    j = search(srv, {"queries": [{"embeddings": q} for q in queries], "k": 5})
    if j:
        check(len(j["results"]) == 4, "batch: %d results" % len(j["results"]))
        for r in j["results"]:
            check(len(r["hits"]) == 5 and "timing_ms" in r, "batch result shape %r" % r)
            scores = [hh["score"] for hh in r["hits"]]
            check(scores == sorted(scores, reverse=True), "hits not sorted by score")
    # base64 gives the same answer as JSON arrays.
    j2 = search(srv, {"queries": [{"embeddings_b64": sl.b64(q), "shape": [len(q), corpus.dim]} for q in queries], "k": 5})
    if j and j2:
        same = all([h["id"] for h in a["hits"]] == [h["id"] for h in b["hits"]] and
                   all(abs(x["score"] - y["score"]) <= 1e-5 for x, y in zip(a["hits"], b["hits"]))
                   for a, b in zip(j["results"], j2["results"]))
        check(same, "base64 and JSON queries disagree")
    # Exact mode against MaxSim over the index's own decompressed embeddings.
    docs = exported_maxsim(folder, corpus)
    check(len(docs) == len(corpus.docs), "export: %d documents, the index has %d" % (len(docs), len(corpus.docs)))
    if docs:
        for q in queries:
            j = search(srv, {"queries": [{"embeddings": q}], "k": 10, "mode": "exact"})
            if not j:
                continue
            want = sorted(((-sl.maxsim(q, d), name) for name, d in docs.items()))[:10]
            got = [(h["id"], h["score"]) for h in j["results"][0]["hits"]]
            check([w[1] for w in want] == [g[0] for g in got] or
                  all(abs(-w[0] - g[1]) <= 1e-4 for w, g in zip(want, got)),
                  "exact mode ids %r, MaxSim says %r" % ([g[0] for g in got], [w[1] for w in want]))
            check(all(abs(-w[0] - g[1]) <= 1e-4 for w, g in zip(want, got)),
                  "exact mode scores %r, MaxSim says %r" % ([g[1] for g in got], [-w[0] for w in want]))
    # PLAID params are accepted and the alias serves the same file.
    j = search(srv, {"queries": [{"embeddings": queries[0]}], "k": 3,
                     "params": {"ncells": 4, "centroid_score_threshold": 0.3, "ndocs": 64}})
    j2 = search(srv, {"queries": [{"embeddings": queries[0]}], "k": 3,
                      "params": {"ncells": 4, "centroid_score_threshold": 0.3, "ndocs": 64}}, index="alias")
    if j and j2:
        check(j["results"][0]["hits"] == j2["results"][0]["hits"], "alias index answers differently")
    # include text and metadata.
    j = search(srv, {"queries": [{"embeddings": queries[1]}], "k": 3, "include": ["text", "metadata"]})
    if j:
        for h in j["results"][0]["hits"]:
            i = int(h["id"].split("-")[1])
            check(h.get("text") == corpus.texts[i] and h.get("metadata") == corpus.metadata[i],
                  "include text/metadata for %s: %r" % (h["id"], h))


def matches(meta, flt):
    """The filter semantics of docs/http-api.md, in Python, for the test's filters."""
    for key, cond in flt.items():
        if key == "$and":
            ok = all(matches(meta, f) for f in cond)
        elif key == "$or":
            ok = any(matches(meta, f) for f in cond)
        elif key == "$not":
            ok = not matches(meta, cond)
        else:
            v = meta
            for part in key.split("."):
                v = v.get(part, KeyError) if isinstance(v, dict) else KeyError
            ok = all(op_ok(v, op, arg) for op, arg in cond.items()) if isinstance(cond, dict) \
                else op_ok(v, "$eq", cond)
        if not ok:
            return False
    return True


def same_type(a, b):
    num = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, num) and isinstance(b, num)) or (isinstance(a, str) and isinstance(b, str))


def op_ok(v, op, arg):
    present = v is not KeyError
    if op == "$exists":
        return present == arg
    if op == "$eq":
        return present and same_type(v, arg) and v == arg
    if op == "$ne":
        return not op_ok(v, "$eq", arg)
    if op == "$in":
        return any(op_ok(v, "$eq", a) for a in arg)
    if op == "$nin":
        return not op_ok(v, "$in", arg)
    if not present or not same_type(v, arg) or isinstance(v, bool):
        return False
    return {"$gt": v > arg, "$gte": v >= arg, "$lt": v < arg, "$lte": v <= arg}[op]


def test_filters(srv, corpus):
    rng = random.Random(5)
    q = corpus.query(rng)
    n = len(corpus.docs)
    filters = [
        {"year": {"$gte": 2020}},
        {"lang": {"$in": ["en", "fr"]}, "year": {"$lt": 2010}},
        {"$or": [{"lang": "de"}, {"year": 2003}]},
        {"$not": {"lang": "en"}},
        {"tags.even": True},
        {"lang": {"$ne": "fr"}, "year": {"$nin": [2001, 2002, 2003]}},
        {"year": {"$gt": "2010"}},           # type-strict: a string never orders against numbers
        {"nosuchfield": {"$exists": False}},
        {"$and": [{"year": {"$gte": 2005}}, {"year": {"$lte": 2006}}]},
    ]
    for f in filters:
        want = sorted(corpus.ids[i] for i in range(n) if matches(corpus.metadata[i], f))
        j = search(srv, {"queries": [{"embeddings": q}], "k": n, "mode": "exact", "filter": f})
        if j:
            got = sorted(h["id"] for h in j["results"][0]["hits"])
            check(got == want, "filter %s: %d hits, want %d" % (json.dumps(f), len(got), len(want)))
    # A field no document has: documented as 200 with no hits.
    j = search(srv, {"queries": [{"embeddings": q}], "k": 10, "filter": {"nosuchfield": 1}})
    if j:
        check(j["results"][0]["hits"] == [], "filter on a missing field must match nothing")
    # ids restrict scoring; unknown ids are skipped.
    ids = ["doc-3", "doc-40", "doc-77", "no-such-doc"]
    j = search(srv, {"queries": [{"embeddings": q}], "k": 10, "ids": ids})
    if j:
        got = sorted(h["id"] for h in j["results"][0]["hits"])
        check(got == ["doc-3", "doc-40", "doc-77"], "ids subset gave %r" % got)
    j = search(srv, {"queries": [{"embeddings": q}], "k": 10, "ids": ids, "filter": {"year": 2003}})
    if j:
        got = sorted(h["id"] for h in j["results"][0]["hits"])
        want = sorted(i for i in ids[:3] if corpus.metadata[int(i.split("-")[1])]["year"] == 2003)
        check(got == want, "ids + filter gave %r, want %r" % (got, want))


def test_errors(srv, corpus):
    path = "/v1/indexes/idx/search"
    q = [[0.1] * corpus.dim]
    cases = [
        ("POST", path, "{not json", 400, "MALFORMED_JSON", "malformed JSON"),
        ("POST", path, "[1, 2]", 400, "INVALID_ARGUMENT", "body not an object"),
        ("POST", path, {"queries": "text"}, 400, "INVALID_ARGUMENT", "queries wrong type"),
        ("POST", path, {"queries": [{"embeddings": q}], "k": "10"}, 400, "INVALID_ARGUMENT", "k wrong type"),
        ("POST", path, {"queries": [{"embeddings": q}], "k": 2.5}, 400, "INVALID_ARGUMENT", "k fraction"),
        ("POST", path, {"queries": [{"embeddings": q}], "top_k": 3}, 400, "INVALID_ARGUMENT", "unknown field"),
        ("POST", path, '{"queries": [{"embeddings": [[NaN, 1]]}]}', 400, "MALFORMED_JSON", "NaN literal"),
        ("POST", path, '{"queries": [{"embeddings": [[1e999%s]]}]}' % (", 0" * (corpus.dim - 1)), 400,
         "INVALID_ARGUMENT", "infinite value"),
        ("POST", path, {"queries": [{"embeddings_b64": sl.b64([[float("nan")] * corpus.dim]), "shape": [1, corpus.dim]}]},
         400, "INVALID_ARGUMENT", "NaN in base64"),
        ("POST", path, {"queries": [{"embeddings": [[0.1] * (corpus.dim + 1)]}]}, 422, "DIMENSION_MISMATCH", "dim mismatch"),
        ("POST", path, {"queries": [{"embeddings_b64": sl.b64([[0.1] * 8]), "shape": [1, 8]}]}, 422,
         "DIMENSION_MISMATCH", "dim mismatch b64"),
        ("POST", path, {"queries": [{"embeddings": q}], "k": 0}, 400, "INVALID_ARGUMENT", "k=0"),
        ("POST", path, {"queries": [{"embeddings": q}], "k": 10 ** 9}, 422, "LIMIT_EXCEEDED", "k=10^9"),
        ("POST", path, {"queries": []}, 400, "INVALID_ARGUMENT", "no queries"),
        ("POST", path, {"queries": [{"text": "   "}]}, 400, "INVALID_ARGUMENT", "empty text query"),
        ("POST", path, {"queries": [{"embeddings": []}]}, 400, "INVALID_ARGUMENT", "empty embeddings"),
        ("POST", path, {"queries": [{"embeddings_b64": "AAAAAAA", "shape": [1, corpus.dim]}]}, 400,
         "INVALID_ARGUMENT", "bad base64 length"),
        ("POST", path, {"queries": [{"embeddings_b64": "AAAA", "shape": [1, corpus.dim]}]}, 400,
         "INVALID_ARGUMENT", "base64 shorter than shape"),
        ("POST", path, {"queries": [{"embeddings": q}], "filter": {"year": {"$regex": "x"}}}, 400,
         "INVALID_FILTER", "unknown filter operator"),
        ("POST", path, {"queries": [{"embeddings": q}], "filter": {"year": {"$in": 3}}}, 400,
         "INVALID_FILTER", "filter $in not an array"),
        ("POST", path, {"queries": [{"embeddings": q}], "filter": [1]}, 400, "INVALID_FILTER", "filter not object"),
        ("POST", path, {"queries": [{"text": "hello"}]}, 422, "MODEL_NOT_LOADED", "text query without model"),
        ("POST", path, {"queries": [{"embeddings": q}], "mode": "fast"}, 400, "INVALID_ARGUMENT", "bad mode"),
        ("POST", path, {"queries": [{"embeddings": q}] * 65}, 422, "LIMIT_EXCEEDED", "too many queries"),
        ("POST", path, "x" * 70000, 413, "PAYLOAD_TOO_LARGE", "oversized body"),
        ("POST", "/v1/indexes/nosuch/search", {"queries": [{"embeddings": q}]}, 404, "INDEX_NOT_FOUND", "unknown index"),
        ("GET", "/v1/indexes/nosuch", None, 404, "INDEX_NOT_FOUND", "unknown index info"),
        ("GET", "/v1/indexes/idx/documents/nosuchdoc", None, 404, "DOCUMENT_NOT_FOUND", "unknown document"),
        ("GET", "/v1/nothing", None, 404, "ROUTE_NOT_FOUND", "unknown route"),
        ("GET", path, None, 405, "METHOD_NOT_ALLOWED", "wrong method"),
        ("DELETE", "/v1/indexes/nosuch", None, 404, "INDEX_NOT_FOUND", "drop of an unknown index"),
        ("PUT", "/v1/indexes/idx", None, 405, "METHOD_NOT_ALLOWED", "no PUT on an index"),
        ("POST", "/v1/encode", {"texts": ["hello"]}, 422, "MODEL_NOT_LOADED", "encode without model"),
        ("POST", "/v1/encode", {"texts": "hello"}, 400, "INVALID_ARGUMENT", "encode texts wrong type"),
        ("POST", "/v1/rerank", {"query": {"embeddings": q}, "documents": [{"embeddings": [[0.1] * 3]}]}, 422,
         "DIMENSION_MISMATCH", "rerank dim mismatch"),
        ("POST", "/v1/rerank", {"query": {"embeddings": q}}, 400, "INVALID_ARGUMENT", "rerank without documents"),
    ]
    for method, p, body, status, code, what in cases:
        expect_error(srv, method, p, body, status, code, what)
    st, h, _ = srv.request("GET", path)
    check(h.get("allow") == "POST", "405 must name the allowed method, got %r" % h.get("allow"))
    # A chunked oversized body (no Content-Length) is refused too: with 413 when it ends
    # soon after the limit, by closing the connection when it goes on far beyond it.
    for n_chunks, want_413 in ((6, True), (64, False)):
        c = srv.conn()
        c.putrequest("POST", path)
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        chunk = b"x" * 16384
        try:
            for _ in range(n_chunks):
                c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            c.send(b"0\r\n\r\n")
            r = c.getresponse()
            check(r.status == 413, "chunked oversized body (%d chunks): %d" % (n_chunks, r.status))
        except (OSError, http.client.HTTPException):
            check(not want_413, "chunked body of %d chunks: connection dropped instead of 413" % n_chunks)
        c.close()
        st, _, _ = srv.request("GET", "/health")
        check(st == 200, "server serves after a chunked oversized body")


def test_rerank(srv, corpus):
    rng = random.Random(3)
    q = corpus.query(rng)
    docs = corpus.docs[:6]
    st, h, j = srv.json("POST", "/v1/rerank", {"query": {"embeddings": q},
                                               "documents": [{"embeddings": d} for d in docs]})
    check(st == 200, "rerank status %d %r" % (st, j))
    if st == 200:
        want = sorted(((-sl.maxsim(q, d), i) for i, d in enumerate(docs)))
        got = [(r["index"], r["score"]) for r in j["results"]]
        check([w[1] for w in want] == [g[0] for g in got], "rerank order %r want %r" % (got, want))
        check(all(abs(-w[0] - g[1]) <= 1e-4 for w, g in zip(want, got)), "rerank scores")


def test_openapi(srv):
    st, h, doc = srv.json("GET", "/openapi.json")
    check(st == 200 and doc.get("openapi", "").startswith("3."), "openapi document")
    documented = set()
    for p, item in doc.get("paths", {}).items():
        for m in item:
            documented.add((m.upper(), p))
    # Probe each documented operation: it must be routed (not ROUTE_NOT_FOUND / 405).
    concrete = {"{name}": "idx", "{id}": "doc-1"}
    for m, p in sorted(documented):
        path = p
        for k, v in concrete.items():
            # DELETE /v1/indexes/{name} would drop the index the other tests use: an
            # unknown name still shows that the route is served (404 INDEX_NOT_FOUND).
            path = path.replace(k, "nosuch" if (m, p) == ("DELETE", "/v1/indexes/{name}") else v)
        st, h, data = srv.request(m, path, {} if m == "POST" else None)
        code = ""
        try:
            code = json.loads(data).get("error", {}).get("code", "")
        except (ValueError, AttributeError):
            pass
        check(code not in ("ROUTE_NOT_FOUND", "METHOD_NOT_ALLOWED"), "documented %s %s is not served (%d %s)" % (m, p, st, code))
    # Every method on every path template: an undocumented one must not be served.
    for p in list(doc.get("paths", {})) + ["/v1/indexes/{name}/documents", "/"]:
        path = p
        for k, v in concrete.items():
            path = path.replace(k, v)
        for m in ["GET", "POST", "PUT", "DELETE", "PATCH"]:
            if (m, p) in documented:
                continue
            st, h, data = srv.request(m, path, {} if m in ("POST", "PUT", "PATCH") else None)
            check(st in (404, 405), "undocumented %s %s answered %d" % (m, p, st))
    # The answers of the read routes carry exactly the fields their schemas document.
    for path, schema in (("/health", "Health"), ("/v1/indexes", "IndexList"),
                         ("/v1/indexes/idx", "IndexInfo"), ("/v1/indexes/idx/documents/doc-1", "Document")):
        st, h, j = srv.json("GET", path)
        check(st == 200, "GET %s: %d" % (path, st))
        srv.check_schema(schema, j, "GET " + path)
    st, h, j = srv.json("POST", "/v1/indexes/idx/search",
                        {"queries": [{"embeddings": [[1.0] + [0.0] * (doc_dim(srv) - 1)]}], "k": 3,
                         "include": ["text", "metadata"]})
    check(st == 200, "search: %d %r" % (st, j))
    srv.check_schema("SearchResponse", j, "a search's answer")


def doc_dim(srv):
    return srv.json("GET", "/v1/indexes/idx")[2]["dim"]


def test_search_cli_consistency(srv, corpus, folder):
    rng = random.Random(21)
    qs = [corpus.query(rng, 32) for _ in range(5)]
    qpath = os.path.join(folder, "q.npy")
    sl.write_npy(qpath, "<f4", (len(qs), 32, corpus.dim), [x for q in qs for t in q for x in t])
    variants = [(False, [], {}), (True, ["--exact"], {}),
                (False, ["--ncells", "3", "--threshold", "0.3", "--ndocs", "40"],
                 {"ncells": 3, "centroid_score_threshold": 0.3, "ndocs": 40})]
    for exact, flags, params in variants:
        args = ["search", "--index", os.path.join(folder, "idx.db"), "--query-embeddings", qpath,
                "--k", "7", "--format", "json"] + flags
        p = sl.run(args)  # a failed search fails the test
        cli = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        if len(cli) == 1 and isinstance(cli[0], list):
            cli = cli[0]
        body = {"queries": [{"embeddings": q} for q in qs], "k": 7, "mode": "exact" if exact else "plaid"}
        if params:
            body["params"] = params
        j = search(srv, body)
        if not j:
            return
        for qi, res in enumerate(j["results"]):
            rows = [r for r in cli if str(r.get("qid", r.get("query_id"))) == str(qi)]
            hits = rows[0].get("hits") if len(rows) == 1 and "hits" in rows[0] else rows
            cli_ids = [r.get("id", r.get("docid")) for r in hits]
            cli_scores = [r["score"] for r in hits]
            http_ids = [h["id"] for h in res["hits"]]
            check(cli_ids == http_ids, "query %d (%s): CLI ids %r, HTTP ids %r" % (qi, flags, cli_ids, http_ids))
            check(all(abs(a - b["score"]) <= 1e-5 for a, b in zip(cli_scores, res["hits"])),
                  "query %d: CLI and HTTP scores differ by more than 1e-5" % qi)


def main():
    with tempfile.TemporaryDirectory(prefix="cp_http_") as folder:
        corpus = sl.Corpus()
        idx = sl.build_index(folder, corpus)
        before = sl.file_digest(idx)
        srv = sl.Server(["--index", idx, "--index", "alias=" + idx, "--threads", "2",
                         "--max-body-bytes", "65536"])
        try:
            for name, fn in [("service routes", lambda: test_service_routes(srv, corpus)),
                             ("search", lambda: test_search(srv, corpus, folder)),
                             ("filters", lambda: test_filters(srv, corpus)),
                             ("errors", lambda: test_errors(srv, corpus)),
                             ("rerank", lambda: test_rerank(srv, corpus)),
                             ("openapi", lambda: test_openapi(srv)),
                             ("cli consistency", lambda: test_search_cli_consistency(srv, corpus, folder))]:
                print("-- " + name, file=sys.stderr)
                fn()
                check(srv.alive(), "server died during " + name)
        finally:
            rc = srv.stop()
        check(rc == 0, "server exit status %r after SIGTERM" % rc)
        log = "".join(srv.lines)
        check('"request_id": "trace-abc.123"' in log, "access log lacks the request id")
        check(sl.file_digest(idx) == before, "the index file changed while serving")


if __name__ == "__main__":
    sl.main(main, "ok")
