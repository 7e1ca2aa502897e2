"""The explain route (POST /v1/indexes/{name}/explain) and the browser page (GET /), against
the real server with a real (tiny) static model and a JSONL corpus indexed by the CLI.

Explain: query token texts are the query's words, document token texts the document's words
(the static model tokenizes into words), each match names a real document position, the
similarities add up to the score, and that score equals the exact-mode search score of the
document (the stored vectors are used: "vectors": "index"). Errors are the documented ones.
Page: served without a key even when keys are configured, self-contained (no external URL).
"""
import os
import re
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check


def test_explain(srv, docs):
    by_id = {d["id"]: d for d in docs}
    for q in ["river mountain", "music painting history", "train bridge city snow"]:
        st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [q], "k": 3})
        check(st == 200, "search %r: %d" % (q, st))
        for hit in j["results"][0]["hits"] if st == 200 else []:
            st, _, ex = srv.json("POST", "/v1/indexes/idx/explain", {"query": q, "id": hit["id"]})
            check(st == 200, "explain %r %s: %d %r" % (q, hit["id"], st, ex))
            if st != 200:
                continue
            check(ex["id"] == hit["id"] and ex["vectors"] == "index", "explain header %r" % {k: ex[k] for k in ("id", "vectors")})
            words = by_id[hit["id"]]["text"].split()
            check(ex["doc_tokens"] == words, "doc tokens %r vs text words %r" % (ex["doc_tokens"][:8], words[:8]))
            qt = [t["text"] for t in ex["query_tokens"]]
            check(qt[:len(q.split())] == q.split(), "query tokens %r for %r" % (qt, q))
            for t in ex["query_tokens"]:
                pos = t["doc_position"]
                check(0 <= pos < len(words) and t["doc_token"] == ex["doc_tokens"][pos],
                      "query token %r matched position %d / %r" % (t["text"], pos, t["doc_token"]))
                check(-1.0001 <= t["similarity"] <= 1.0001, "similarity of normalised vectors %r" % t)
            total = sum(t["similarity"] for t in ex["query_tokens"])
            check(abs(total - ex["score"]) <= 1e-4, "similarities add up to %f, score %f" % (total, ex["score"]))
            st, _, e = srv.json("POST", "/v1/indexes/idx/search",
                                {"queries": [q], "k": 1, "mode": "exact", "ids": [hit["id"]]})
            exact = e["results"][0]["hits"][0]["score"]
            check(abs(exact - ex["score"]) <= 1e-4, "explain score %f, exact search score %f" % (ex["score"], exact))
    # Errors.
    cases = [({"query": "river", "id": "nope"}, 404, "DOCUMENT_NOT_FOUND"),
             ({"query": "river"}, 400, "INVALID_ARGUMENT"),
             ({"query": "", "id": docs[0]["id"]}, 400, "INVALID_ARGUMENT"),
             ({"query": "river", "id": docs[0]["id"], "k": 3}, 400, "INVALID_ARGUMENT"),
             ({"query": 5, "id": docs[0]["id"]}, 400, "INVALID_ARGUMENT"),
             ("[1, 2", 400, "MALFORMED_JSON")]
    for body, want_st, want_code in cases:
        st, _, j = srv.json("POST", "/v1/indexes/idx/explain", body)
        check(st == want_st and j.get("error", {}).get("code") == want_code and j["error"].get("message"),
              "explain %r: %d %r (want %d %s)" % (body, st, j, want_st, want_code))
    st, _, j = srv.json("POST", "/v1/indexes/nope/explain", {"query": "river", "id": docs[0]["id"]})
    check(st == 404 and j["error"]["code"] == "INDEX_NOT_FOUND", "unknown index %d %r" % (st, j))
    st, h, _ = srv.request("GET", "/v1/indexes/idx/explain")
    check(st == 405 and h.get("allow") == "POST", "GET explain: %d %r" % (st, h.get("allow")))
    st, _, text = srv.request("GET", "/metrics")
    check('route="/v1/indexes/{name}/explain"' in text.decode(), "explain requests are in the metrics")


def test_page(srv):
    st, h, body = srv.request("GET", "/")
    page = body.decode("utf-8")
    check(st == 200 and h.get("content-type", "").startswith("text/html"), "GET /: %d %r" % (st, h.get("content-type")))
    check("<title>colplaid" in page and "/v1/indexes" in page and "/explain" in page, "page content")
    external = re.findall(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', page) + re.findall(r"@import|url\(\s*['\"]?https?:", page)
    check(not external, "the page loads external resources: %r" % external)
    st, h, body = srv.request("HEAD", "/")
    check(st == 200 and not body, "HEAD /: %d" % st)


def main():
    with tempfile.TemporaryDirectory(prefix="cp_http_explain_") as folder:
        model, idx, docs = sl.build_text_index(folder)
        srv = sl.Server(["--index", idx, "--model", model, "--threads", "2"])
        try:
            test_explain(srv, docs)
            test_page(srv)
            check(srv.alive(), "the server died")
        finally:
            rc = srv.stop()
            check(rc == 0, "the server exited %d (a sanitizer report?)" % rc)
        # Without a model: explain cannot encode the query.
        srv = sl.Server(["--index", idx])
        try:
            st, _, j = srv.json("POST", "/v1/indexes/idx/explain", {"query": "river", "id": docs[0]["id"]})
            check(st == 422 and j["error"]["code"] == "MODEL_NOT_LOADED", "explain without a model: %d %r" % (st, j))
        finally:
            rc = srv.stop()
            check(rc == 0, "the server exited %d (a sanitizer report?)" % rc)
        # With API keys: the page is public, the API behind it is not.
        keys = os.path.join(folder, "keys.txt")
        with open(keys, "w") as f:
            f.write("reader-key-123456 read\n")
        srv = sl.Server(["--index", idx, "--model", model, "--api-keys", keys])
        try:
            st, _, _ = srv.request("GET", "/")
            check(st == 200, "the page needs no key: %d" % st)
            st, _, _ = srv.request("POST", "/v1/indexes/idx/explain", {"query": "river", "id": docs[0]["id"]})
            check(st == 401, "explain without a key: %d" % st)
            st, _, _ = srv.request("POST", "/v1/indexes/idx/explain", {"query": "river", "id": docs[0]["id"]},
                                   {"Authorization": "Bearer reader-key-123456"})
            check(st == 200, "explain with a read key: %d" % st)
        finally:
            rc = srv.stop()
            check(rc == 0, "the server exited %d (a sanitizer report?)" % rc)


if __name__ == "__main__":
    sl.main(main, "explain and page: all checks passed")
