"""The text path of the HTTP API with a real (tiny) static model: a GloVe-layout word-vector
file (serverlib.write_model) is converted with `colplaid model convert`, a JSONL corpus with
text and metadata is indexed with `colplaid index build --corpus`, and the server runs with
--model.
Checks: text queries give the same ids and scores as `colplaid search --query`, /v1/encode
equals `colplaid encode` (JSON arrays and base64), rerank of texts equals MaxSim of the
encoded texts, batches mixing text and embeddings, include and filters on real metadata,
and concurrent text searches encoded in shared encoder calls (--encode-batch) answering
exactly as they do one by one.
"""
import base64
import json
import os
import struct
import sys
import tempfile
import threading

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check


def cli_search(folder, model, query, k):
    p = sl.run(["search", "--index", os.path.join(folder, "idx.db"), "--model", model, "--query", query,
                "--k", str(k), "--format", "json"])
    rows = [json.loads(l) for l in p.stdout.splitlines() if l.strip()]
    return rows[0]["hits"]


def cli_encode(model, text, kind):
    p = sl.run(["encode", "--model", model, "--" + kind, text, "--format", "json"])
    return json.loads(p.stdout.splitlines()[0])["embeddings"]


def close_rows(a, b, tol=1e-5):
    return len(a) == len(b) and all(len(x) == len(y) and all(abs(p - q) <= tol for p, q in zip(x, y))
                                    for x, y in zip(a, b))


def metric(srv, name):
    _, _, body = srv.request("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def check_batching(idx, model, queries):
    """Concurrent text searches queued behind a busy worker are encoded in shared encoder
    calls: every answer must equal the one-by-one answer, a bad request or an embedding query
    among them must not disturb the others, and the metrics must show shared calls."""
    srv = sl.Server(["--index", idx, "--model", model, "--threads", "1", "--encode-batch", "8",
                     "--no-access-log"])
    try:
        texts = queries + ["%s %s" % (a, b) for a, b in zip(queries, reversed(queries))]
        emb = cli_encode(model, texts[0], "query")
        bodies = [{"queries": [{"text": t}], "k": 6} for t in texts]
        bodies.append({"queries": [texts[1], {"embeddings": emb}], "k": 6})
        bodies.append({"queries": [{"embeddings": emb}], "k": 6})
        bodies.append({"queries": [{"text": "river", "bogus": 1}], "k": 6})
        want = [srv.json("POST", "/v1/indexes/idx/search", b) for b in bodies]
        for rnd in range(10):
            got = [None] * (len(bodies) * 3)

            def send(i):
                got[i] = srv.json("POST", "/v1/indexes/idx/search", bodies[i % len(bodies)])
            threads = [threading.Thread(target=send, args=(i,)) for i in range(len(got))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for i, (st, _, j) in enumerate(got):
                wst, _, wj = want[i % len(bodies)]
                check(st == wst, "batched request %d: status %d, alone %d" % (i, st, wst))
                if st == 200 and wst == 200:
                    a = [[(h["id"], round(h["score"], 4)) for h in r["hits"]] for r in j["results"]]
                    b = [[(h["id"], round(h["score"], 4)) for h in r["hits"]] for r in wj["results"]]
                    check(a == b, "batched request %d: hits %r, alone %r" % (i, a, b))
                elif st == wst:
                    check(j["error"]["code"] == wj["error"]["code"], "batched request %d: %r" % (i, j))
            if (metric(srv, "colplaid_encode_batches_total") or 0) > 0:
                break
        n = metric(srv, "colplaid_encode_batches_total")
        m = metric(srv, "colplaid_encode_batched_searches_total")
        check(n is not None and n > 0 and m >= 2 * n,
              "no shared encoder call after 10 bursts (batches %r, searches %r)" % (n, m))
    finally:
        rc = srv.stop()
    check(rc == 0, "batching server exit status %r" % rc)


def main():
    with tempfile.TemporaryDirectory(prefix="cp_http_text_") as folder:
        model, idx, docs = sl.build_text_index(folder)
        srv = sl.Server(["--index", idx, "--model", model, "--threads", "2"])
        try:
            queries = ["river mountain", "music painting history", "train bridge city", "snow"]
            for q in queries:
                st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [{"text": q}], "k": 8})
                check(st == 200, "text search %r: %d %r" % (q, st, j))
                if st != 200:
                    continue
                want = cli_search(folder, model, q, 8)
                got = j["results"][0]["hits"]
                check([h["id"] for h in got] == [h["id"] for h in want],
                      "text query %r: HTTP ids %r, CLI ids %r" % (q, [h["id"] for h in got], [h["id"] for h in want]))
                check(all(abs(a["score"] - b["score"]) <= 1e-5 for a, b in zip(got, want)),
                      "text query %r: scores differ" % q)
            # /v1/encode against `colplaid encode`, both formats and both kinds.
            for kind in ("query", "document"):
                st, _, j = srv.json("POST", "/v1/encode", {"texts": queries, "kind": kind})
                st2, _, j2 = srv.json("POST", "/v1/encode", {"texts": queries, "kind": kind, "format": "b64"})
                check(st == 200 and st2 == 200, "encode %s: %d %d" % (kind, st, st2))
                if st != 200 or st2 != 200:
                    continue
                for q, r, r2 in zip(queries, j["results"], j2["results"]):
                    want = cli_encode(model, q, kind)
                    check(close_rows(r["embeddings"], want), "encode %s %r differs from the CLI" % (kind, q))
                    raw = base64.b64decode(r2["embeddings_b64"])
                    n, d = r2["shape"]
                    flat = struct.unpack("<%df" % (n * d), raw)
                    rows = [list(flat[i * d:(i + 1) * d]) for i in range(n)]
                    check(close_rows(rows, r["embeddings"], 1e-6), "encode b64 %s %r differs from JSON" % (kind, q))
            # Rerank of texts equals MaxSim of the encoded query and documents.
            texts = [d["text"] for d in docs[:5]]
            st, _, j = srv.json("POST", "/v1/rerank", {"query": queries[0], "documents": texts})
            check(st == 200, "rerank texts: %d %r" % (st, j))
            if st == 200:
                qv = cli_encode(model, queries[0], "query")
                want = sorted(((-sl.maxsim(qv, cli_encode(model, t, "document")), i) for i, t in enumerate(texts)))
                got = [(r["index"], r["score"]) for r in j["results"]]
                check(all(abs(-w[0] - g[1]) <= 1e-4 for w, g in zip(want, got)), "rerank scores %r want %r" % (got, want))
            # A batch mixing text and embeddings; include and filter on real metadata.
            emb = cli_encode(model, queries[1], "query")
            st, _, j = srv.json("POST", "/v1/indexes/idx/search", {
                "queries": [queries[1], {"embeddings": emb}], "k": 5, "include": ["text", "metadata"],
                "filter": {"kind": {"$in": ["a", "c"]}, "n": {"$lt": 120}}})
            check(st == 200, "mixed batch: %d %r" % (st, j))
            if st == 200:
                a, b = j["results"]
                check([h["id"] for h in a["hits"]] == [h["id"] for h in b["hits"]], "text and its embeddings disagree")
                for h in a["hits"]:
                    d = docs[int(h["id"][1:])]
                    check(h["text"] == d["text"] and h["metadata"] == d["metadata"], "include for %s" % h["id"])
                    check(d["metadata"]["kind"] in ("a", "c") and d["metadata"]["n"] < 120, "filter let %s through" % h["id"])
            st, _, j = srv.json("GET", "/health")
            check(st == 200 and isinstance(j.get("model"), dict), "health shows the model: %r" % j.get("model"))
        finally:
            rc = srv.stop()
        check(rc == 0, "server exit status %r" % rc)
        check_batching(idx, model, queries)


if __name__ == "__main__":
    sl.main(main, "ok")
