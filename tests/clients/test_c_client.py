"""The C client (clients/c, through its example program) against a real `colplaid serve` on
loopback: text and base64-embedding searches equal the raw HTTP answers; document get;
encode (base64 decoded) and rerank equal the raw HTTP answers; upserts (text, embeddings,
metadata) and deletes (ids, filter) change what the server returns; errors as values
carrying the server's status, code and message."""
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib as cl  # noqa: E402

sl = cl.sl
check = sl.check


def run(exe, args):
    p = subprocess.run([exe] + args, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def rows(out):
    return [line.split("\t") for line in out.splitlines() if line]


def check_encode_rerank(exe, srv, folder):
    url = srv.url
    texts = ["river mountain", "snow covers the castle"]
    for kind in ["query", "document"]:
        st, _, j = srv.json("POST", "/v1/encode", {"texts": texts, "kind": kind})
        args = ["--url", url, "--kind", kind]
        for t in texts:
            args += ["--encode", t]
        rc, out, err = run(exe, args)
        lines = out.splitlines()
        check(rc == 0, "encode %s: %d %s" % (kind, rc, err))
        for r in j["results"]:
            want = r["embeddings"]
            head = lines.pop(0).split("\t") if lines else []
            check(head == ["shape", str(len(want)), str(len(want[0]))], "encode %s shape %r, HTTP %r" %
                  (kind, head, r.get("shape")))
            got = [[float(x) for x in lines.pop(0).split()] for _ in want if lines]
            check(len(got) == len(want) and all(abs(a - b) <= 1e-6 for g, w in zip(got, want) for a, b in zip(g, w)),
                  "encode %s: the decoded base64 rows differ from the JSON rows" % kind)
        check(not lines, "encode %s: %d lines too many" % (kind, len(lines)))
    docs = ["snow covers the forest", "the city library", "river valley and mountain"]
    st, _, j = srv.json("POST", "/v1/rerank", {"query": "mountain river", "documents": docs})
    args = ["--url", url, "--rerank", "mountain river"]
    for d in docs:
        args += ["--doc", d]
    rc, out, err = run(exe, args)
    got = [(int(r[0]), float(r[1])) for r in rows(out)]
    want = [(r["index"], r["score"]) for r in j["results"]]
    check(rc == 0 and [g[0] for g in got] == [w[0] for w in want] and
          all(abs(g[1] - w[1]) <= 1e-6 for g, w in zip(got, want)), "rerank %r, HTTP %r %s" % (got, want, err))
    rc, out, err = run(exe, ["--url", url, "--rerank", "mountain", "--doc", ""])
    check(rc == 1 and "(HTTP 400)" in err and not out, "rerank with an empty document: %d %r" % (rc, err))


def check_writes(exe, srv, folder):
    url = srv.url
    base = ["--url", url, "--index", "idx"]
    # text, stored and encoded by the server, with metadata
    rc, out, err = run(exe, base + ["--upsert", "c-1", "--text", "castle island snow", "--metadata", '{"kind": "z"}',
                                    "--upsert", "d000", "--text", "desert valley train"])
    check(rc == 0 and out.startswith("upserted 2 added 1 replaced 1 tokens "), "upsert texts: %d %r %s" % (rc, out, err))
    st, _, d = srv.json("GET", "/v1/indexes/idx/documents/c-1")
    check(st == 200 and d["text"] == "castle island snow" and d["metadata"] == {"kind": "z"}, "upserted c-1: %d %r" % (st, d))
    st, _, d = srv.json("GET", "/v1/indexes/idx/documents/d000")
    check(st == 200 and d["text"] == "desert valley train", "replaced d000: %d %r" % (st, d))
    # embeddings (the server's own encoding of a text) with a stored text
    st, _, e = srv.json("POST", "/v1/encode", {"texts": ["library market"], "kind": "document"})
    emb = e["results"][0]["embeddings"]
    path = os.path.join(folder, "doc.f32")
    with open(path, "wb") as f:
        f.write(struct.pack("<%df" % (len(emb) * len(emb[0])), *[x for r in emb for x in r]))
    rc, out, err = run(exe, base + ["--upsert", "e-1", "--embeddings", path, "--dim", str(len(emb[0])),
                                    "--text", "library market"])
    check(rc == 0 and out.startswith("upserted 1 added 1 replaced 0 tokens %d" % len(emb)), "upsert embeddings: %d %r %s" % (rc, out, err))
    st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": ["library market"], "k": 3, "mode": "exact"})
    check(st == 200 and j["results"][0]["hits"][0]["id"] == "e-1", "e-1 is not the best hit for its own text: %r" % j)
    # deletes by ids (an unknown one is not counted) and by filter
    rc, out, err = run(exe, base + ["--delete", "c-1", "--delete", "no-such-id"])
    check(rc == 0 and out.strip() == "deleted 1", "delete ids: %d %r %s" % (rc, out, err))
    st, _, _ = srv.json("GET", "/v1/indexes/idx/documents/c-1")
    check(st == 404, "c-1 still there after its delete: %d" % st)
    n_b = sum(1 for i in range(150) if i % 3 == 1)
    rc, out, err = run(exe, base + ["--delete-filter", '{"kind": "b"}'])
    check(rc == 0 and out.strip() == "deleted %d" % n_b, "delete filter: %d %r %s (want %d)" % (rc, out, err, n_b))
    st, _, j = srv.json("GET", "/v1/indexes/idx")
    check(st == 200 and j.get("documents") == 150 + 1 + 1 - 1 - n_b, "documents after the writes: %r" % j)
    # errors carry the server's code; bad input is refused before sending
    for args, want in [(base + ["--upsert", "x", "--text", "river", "--metadata", "[1]"], "INVALID_ARGUMENT (HTTP 0): document 0: metadata is not a JSON object"),
                       (base + ["--upsert", "x", "--embeddings", path, "--dim", str(len(emb[0]))], None),
                       (["--url", url, "--index", "nope", "--delete", "a"], "INDEX_NOT_FOUND (HTTP 404)"),
                       (base + ["--delete-filter", '{"kind": {"$bogus": 1}}'], "(HTTP 400)"),
                       (base + ["--delete-filter", "not json"], "INVALID_ARGUMENT (HTTP 0): the filter is not a JSON object")]:
        rc, out, err = run(exe, args)
        if want is None:  # embeddings without text: indexed, no text stored
            check(rc == 0 and out.startswith("upserted 1"), "%r: %d %r %s" % (args, rc, out, err))
            continue
        check(rc == 1 and want in err and not out, "%r: %d %r" % (args, rc, err))
    rc, out, err = run(exe, ["--url", url, "--upsert", "x", "--text", "river"])
    check(rc == 2 and "usage" in err, "upsert without --index: %d %r" % (rc, err))


def check_passages(exe, folder):
    """cpc_hit.passage_start / passage_end: a windowed index's hits carry their best window's
    span (equal to raw HTTP's); a plain index's hits -1 -1."""
    model, idx, texts = cl.build_windowed_index(folder)
    srv = sl.Server(["--index", "win=" + idx, "--model", model, "--no-access-log"])
    try:
        for q, doc, words in (("castle island", "long1", "castle island"), ("desert valley", "long2", "desert valley")):
            st, _, j = srv.json("POST", "/v1/indexes/win/search", {"queries": [q], "k": 5})
            want = [(h["id"], h["passage"]["start"], h["passage"]["end"]) for h in j["results"][0]["hits"]]
            rc, out, err = run(exe, ["--url", srv.url, "--index", "win", "--query", q, "--k", "5", "--passages"])
            got = [(r[2], int(r[3]), int(r[4])) for r in rows(out)] if rc == 0 else None
            check(got == want, "passages %r: C client %r, raw HTTP %r %s" % (q, got, want, err))
            check(got and got[0][0] == doc and words in texts[doc][got[0][1]:got[0][2]],
                  "%r: the top hit's passage %r lacks %r" % (q, got and got[0], words))
    finally:
        srv.stop()


def main():
    exe = os.path.join(cl.BINARY, "colplaid_client_example")
    if not os.path.exists(exe):
        sl.skip("colplaid_client_example was not built (libcurl missing?)")
    with tempfile.TemporaryDirectory(prefix="cp_cclient_") as folder:
        model, idx, docs = sl.build_text_index(folder)
        srv = sl.Server(["--index", idx, "--model", model, "--no-access-log"])
        url = srv.url
        try:
            rc, out, err = run(exe, ["--url", url, "--health"])
            check(rc == 0 and json.loads(out)["status"] == "ok", "health: %d %s %s" % (rc, out, err))
            for q in ["river mountain", "music painting history", "snow"]:
                st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [q], "k": 5, "include": ["text"]})
                want = j["results"][0]["hits"]
                rc, out, err = run(exe, ["--url", url, "--index", "idx", "--query", q, "--k", "5", "--text"])
                got = rows(out)
                check(rc == 0 and [g[2] for g in got] == [w["id"] for w in want], "text %r: %r vs %r %s" % (q, got, want, err))
                check(all(float(g[1]) == w["score"] and g[3] == w["text"] for g, w in zip(got, want)),
                      "text %r: scores/texts differ" % q)
                rc, out, err = run(exe, ["--url", url, "--index", "idx", "--query", q, "--k", "5", "--passages"])
                check(rc == 0 and all(r[3:5] == ["-1", "-1"] for r in rows(out)) and rows(out),
                      "a plain index's hits have passages: %r %s" % (out, err))
                st, _, e = srv.json("POST", "/v1/encode", {"texts": [q], "kind": "query"})
                emb = e["results"][0]["embeddings"]
                path = os.path.join(folder, "q.f32")
                with open(path, "wb") as f:
                    f.write(struct.pack("<%df" % (len(emb) * len(emb[0])), *[x for r in emb for x in r]))
                rc, out, err = run(exe, ["--url", url, "--index", "idx", "--embeddings", path,
                                         "--dim", str(len(emb[0])), "--k", "5"])
                got = rows(out)
                check(rc == 0 and [g[2] for g in got] == [w["id"] for w in want], "embeddings %r: %r %s" % (q, got, err))
                check(all(abs(float(g[1]) - w["score"]) < 1e-5 for g, w in zip(got, want)), "embedding scores %r" % q)
                for mode in ("lexical", "hybrid"):  # the search modes (docs/hybrid.md)
                    st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [q], "k": 5, "mode": mode})
                    want_m = j["results"][0]["hits"]
                    rc, out, err = run(exe, ["--url", url, "--index", "idx", "--query", q, "--k", "5",
                                             "--mode", mode])
                    got = rows(out)
                    check(rc == 0 and [g[2] for g in got] == [w["id"] for w in want_m] and
                          all(float(g[1]) == w["score"] for g, w in zip(got, want_m)),
                          "mode %s %r: %r vs %r %s" % (mode, q, got, want_m, err))
            d = docs[9]
            rc, out, err = run(exe, ["--url", url, "--index", "idx", "--get", d["id"]])
            check(rc == 0 and rows(out)[0][0] == d["id"] and rows(out)[0][2] == d["text"], "get: %r %s" % (out, err))
            for args, want in [(["--index", "idx", "--get", "missing/doc"], 'DOCUMENT_NOT_FOUND (HTTP 404): index "idx" has no document "missing/doc"'),
                               (["--index", "nope", "--query", "river"], "INDEX_NOT_FOUND (HTTP 404)"),
                               (["--index", "idx", "--query", "river", "--k", "0"], "INVALID_ARGUMENT (HTTP 400)"),
                               (["--index", "idx", "--embeddings", path, "--dim", "8"], "DIMENSION_MISMATCH (HTTP 422)")]:
                rc, out, err = run(exe, ["--url", url] + args)
                check(rc == 1 and want in err and not out, "%r: %d %r" % (args, rc, err))
            check_encode_rerank(exe, srv, folder)
            check_writes(exe, srv, folder)
            check(srv.alive(), "server died")
        finally:
            srv.stop()
        check_passages(exe, folder)
        rc, out, err = run(exe, ["--url", "http://127.0.0.1:9", "--health"])
        check(rc == 1 and "TRANSPORT (HTTP 0)" in err, "closed port: %d %r" % (rc, err))


if __name__ == "__main__":
    sl.main(main, "C client: all checks passed")
