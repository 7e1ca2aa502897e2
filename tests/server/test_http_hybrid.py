"""Lexical and hybrid search (docs/hybrid.md) through the real CLI and `colplaid serve`.

Checks: an index built from a text corpus has a lexical side (`index info`), an index built
from embeddings has none and answers 422 UNSUPPORTED (HTTP) / exit 2 (CLI) in the lexical
and hybrid modes until `colplaid index lexical` adds one; lexical and hybrid hits over HTTP
equal `colplaid search --mode ...` (ids and scores); filters and `ids` apply to both sides
of a hybrid search; explain lists the query terms that match lexically; the lexical index
follows upserts, replaces, deletes and compaction (`index check` compares its rows and terms
with the live documents, and finds a text changed behind its back); and SIGKILL crash trials during a stream of text writes leave an index whose
lexical side holds exactly the live documents.
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
CRASH_TRIALS = int(os.environ.get("CP_HYBRID_CRASH_TRIALS", "3"))


def search(srv, body, name="idx"):
    st, _, j = srv.json("POST", "/v1/indexes/%s/search" % name, body)
    return st, j


def hits(j, i=0):
    return [(h["id"], h["score"]) for h in j["results"][i]["hits"]]


def cli_hits(idx, model, query, mode, k, extra=()):
    args = ["search", "--index", idx, "--query", query, "--k", str(k), "--mode", mode,
            "--format", "json"] + list(extra)
    if model:
        args += ["--model", model]
    p = sl.run(args)
    return [(h["id"], h["score"]) for h in json.loads(p.stdout.splitlines()[0])["hits"]]


def same_hits(a, b):
    return [x for x, _ in a] == [x for x, _ in b] and all(
        abs(s - t) <= 1e-5 * max(1.0, abs(s)) for (_, s), (_, t) in zip(a, b))


def index_check(path, what):
    p = sl.run(["index", "check", "--index", path], check=False)
    check(p.returncode == 0, "%s: index check exit %d: %s" % (what, p.returncode, (p.stdout + p.stderr)[-600:]))


def reference_hybrid(srv, q, k, alpha, depth):
    """Hybrid fusion recomputed from the plain modes (the implementation before stage 4 was
    shared: a late search, the lexical rows, an exact search of the lexical-only ones), by
    z-score linear fusion: the ids, best first, and their fused scores."""
    st, j = search(srv, {"queries": [q], "k": k, "mode": "plaid"})
    check(st == 200, "late %r: %d %r" % (q, st, j))
    late = dict(hits(j))
    st, j = search(srv, {"queries": [q], "k": depth + 1, "mode": "lexical"})
    check(st == 200, "lexical %r: %d %r" % (q, st, j))
    rows = hits(j)
    more, rows = len(rows) > depth, rows[:depth]
    lex = dict(rows)
    only = [i for i, _ in rows if i not in late]
    if only:
        st, j = search(srv, {"queries": [q], "k": len(only), "mode": "exact", "ids": only})
        check(st == 200 and len(j["results"][0]["hits"]) == len(only), "exact %r: %d %r" % (q, st, j))
        late.update(hits(j))
    floor = rows[-1][1] if more and rows else 0.0
    ids = list(late)
    lv = [lex.get(i, floor) for i in ids]
    mv = [late[i] for i in ids]

    def z(v):
        m = sum(v) / len(v)
        sd = (sum((x - m) ** 2 for x in v) / len(v)) ** 0.5
        return [(x - m) / sd if sd > 0 else 0.0 for x in v]

    fused = [alpha * a + (1 - alpha) * b for a, b in zip(z(lv), z(mv))]
    return sorted(zip(ids, fused), key=lambda t: -t[1])[:k]


def test_cli_and_http(folder, model, idx, docs):
    info = json.loads(sl.run(["index", "info", "--index", idx, "--format", "json"]).stdout)
    check(info.get("lexical") is True, "a --corpus build has a lexical side: %r" % info.get("lexical"))
    index_check(idx, "text index")
    srv = sl.Server(["--index", idx, "--model", model, "--no-access-log"])
    try:
        for q in ["river valley", "snow castle bridge", "the ocean"]:
            for mode in ["lexical", "hybrid"]:
                st, j = search(srv, {"queries": [q], "k": 5, "mode": mode})
                check(st == 200, "%s %r: %d %r" % (mode, q, st, j))
                if st != 200:
                    continue
                got = hits(j)
                want = cli_hits(idx, model if mode == "hybrid" else None, q, mode, 5)
                check(same_hits(got, want), "%s %r: HTTP %r != CLI %r" % (mode, q, got, want))
                check(len(got) > 0, "%s %r found nothing" % (mode, q))
        # Lexical hits contain a query term; a text with none of the corpus words finds nothing.
        st, j = search(srv, {"queries": ["library"], "k": 50, "mode": "lexical", "include": ["text"]})
        check(st == 200 and all("library" in h["text"].split() for h in j["results"][0]["hits"]) and
              len(j["results"][0]["hits"]) == sum("library" in d["text"].split() for d in docs),
              "lexical 'library' hits exactly the documents holding it: %r" % j)
        st, j = search(srv, {"queries": ["zzzq"], "mode": "lexical"})
        check(st == 200 and j["results"][0]["hits"] == [], "unknown term: %d %r" % (st, j))
        # Fusion variants answer, and alpha 1 / 0 rank like the pure sides.
        for fusion in [{"method": "rrf"}, {"alpha": 0.5, "normalize": "minmax"}, {"alpha": 0.9}]:
            st, j = search(srv, {"queries": ["river market"], "mode": "hybrid", "fusion": fusion})
            check(st == 200 and len(j["results"][0]["hits"]) > 0, "fusion %r: %d %r" % (fusion, st, j))
        st, j = search(srv, {"queries": ["river market"], "k": 3, "mode": "hybrid",
                             "fusion": {"alpha": 1, "depth": 200}})
        st2, j2 = search(srv, {"queries": ["river market"], "k": 3, "mode": "lexical"})
        check(st == 200 and st2 == 200 and [h["id"] for h in j["results"][0]["hits"]] ==
              [h["id"] for h in j2["results"][0]["hits"]], "alpha 1 ranks as lexical: %r %r" % (j, j2))
        # Hybrid ranks as the fusion of the plain modes' scores: the lexical-only candidates'
        # late scores come from the late search's stage 4 now, and must equal exact MaxSim.
        for q in ["river market", "snow city library", "why does the river flood"]:
            st, j = search(srv, {"queries": [q], "k": 5, "mode": "hybrid",
                                 "fusion": {"alpha": 0.9, "depth": 20}})
            check(st == 200, "hybrid %r: %d %r" % (q, st, j))
            got, want = hits(j), reference_hybrid(srv, q, 5, 0.9, 20)
            check([i for i, _ in got] == [i for i, _ in want] and
                  all(abs(a - b) <= 1e-3 for (_, a), (_, b) in zip(got, want)),
                  "hybrid %r: %r, recomputed from the plain modes %r" % (q, got, want))
        # Filters and ids apply to both sides.
        for mode in ["lexical", "hybrid"]:
            st, j = search(srv, {"queries": ["river snow"], "k": 20, "mode": mode,
                                 "filter": {"kind": "b"}, "include": ["metadata"]})
            hs = j["results"][0]["hits"] if st == 200 else []
            check(st == 200 and hs and all(h["metadata"]["kind"] == "b" for h in hs),
                  "%s with a filter: %d %r" % (mode, st, j))
            some = ["d001", "d004", "d007", "d010"]
            st, j = search(srv, {"queries": ["river snow city"], "k": 20, "mode": mode, "ids": some})
            check(st == 200 and {h["id"] for h in j["results"][0]["hits"]} <= set(some),
                  "%s with ids: %d %r" % (mode, st, j))
            st, j = search(srv, {"queries": ["river"], "mode": mode, "filter": {"kind": "b"},
                                 "ids": ["d000", "d003"]})  # kind a: nothing left
            check(st == 200 and j["results"][0]["hits"] == [], "%s filter + ids: %d %r" % (mode, st, j))
        # Lexical queries need text; mode exact stays what it was.
        st, j = search(srv, {"queries": [{"embeddings": [[0.1] * 16]}], "mode": "lexical"})
        check(st == 400, "lexical with embeddings: %d %r" % (st, j))
        st, j = search(srv, {"queries": ["river"], "mode": "exact"})
        check(st == 200, "mode exact: %d %r" % (st, j))
        # Explain: which query terms the document matches lexically.
        target = next(d for d in docs if "river" in d["text"].split() and "castle" not in d["text"].split())
        st, _, j = srv.json("POST", "/v1/indexes/idx/explain", {"query": "river castle", "id": target["id"]})
        lex = j.get("lexical") if st == 200 else None
        srv.check_schema("ExplainResponse", j, "explain on a lexical index")
        st, _, info = srv.json("GET", "/v1/indexes/idx")
        check(st == 200 and info.get("lexical") is True, "index info: lexical %r" % info)
        srv.check_schema("IndexInfo", info, "GET /v1/indexes/idx")
        check(lex is not None and lex["terms"] == [{"term": "river", "matched": True},
                                                  {"term": "castle", "matched": False}] and lex["score"] > 0,
              "explain lexical: %d %r" % (st, j))
    finally:
        srv.stop()


def test_embeddings_index(folder, model):
    corpus = sl.Corpus(n_docs=60, dim=16, seed=5)
    emb = sl.build_index(folder, corpus, "emb.db")  # texts written into the rows afterwards
    info = json.loads(sl.run(["index", "info", "--index", emb, "--format", "json"]).stdout)
    check(info.get("lexical") is False, "an --embeddings build has no lexical side")
    srv = sl.Server(["--index", emb, "--model", model, "--no-access-log"])
    try:
        for mode in ["lexical", "hybrid"]:
            st, j = search(srv, {"queries": ["river"], "mode": mode}, "emb")
            check(st == 422 and j["error"]["code"] == "UNSUPPORTED" and "lexical" in j["error"]["message"],
                  "%s on an embeddings index: %d %r" % (mode, st, j))
    finally:
        srv.stop()
    for mode in ["lexical", "hybrid"]:
        p = sl.run(["search", "--index", emb, "--model", model, "--query", "river", "--mode", mode], check=False)
        check(p.returncode == 2 and "index lexical" in p.stderr, "CLI %s: exit %d %s" % (mode, p.returncode, p.stderr))
    # The CLI adds the lexical side from the stored texts.
    sl.run(["index", "lexical", "--index", emb, "--quiet"])
    index_check(emb, "after index lexical")
    word = corpus.texts[0].split()[0]
    got = cli_hits(emb, None, word, "lexical", 100)
    check(len(got) == sum(word in t.split() for t in corpus.texts),
          "lexical after index lexical: %d hits for %r" % (len(got), word))
    # --alpha records the index's default weight: a default hybrid search then ranks as that alpha.
    sl.run(["index", "lexical", "--index", emb, "--alpha", "0.25", "--quiet"])
    import sqlite3
    db = sqlite3.connect(emb)
    meta = db.execute("SELECT value FROM meta WHERE key = 'hybrid'").fetchone()
    db.close()
    check(meta is not None and json.loads(meta[0]) == {"alpha": 0.25}, "meta hybrid: %r" % (meta,))
    q = "river snow " + corpus.texts[3].split()[-1]  # model words + a lexical term
    default = cli_hits(emb, model, q, "hybrid", 8)
    explicit = cli_hits(emb, model, q, "hybrid", 8, ["--alpha", "0.25"])
    other = cli_hits(emb, model, q, "hybrid", 8, ["--alpha", "0.9"])
    check(same_hits(default, explicit) and not same_hits(default, other),
          "default hybrid = alpha 0.25: %r %r %r" % (default, explicit, other))
    qemb = os.path.join(folder, "q.npy")
    sl.write_npy(qemb, "<f4", (1, 4, 16), [x for _ in range(4) for x in sl.normalise([1.0] * 16)])
    bad = sl.run(["search", "--index", emb, "--query-embeddings", qemb, "--mode", "hybrid"], check=False)
    check(bad.returncode == 2, "hybrid with query embeddings: exit %d" % bad.returncode)
    p = sl.run(["index", "lexical", "--index", emb, "--alpha", "2"], check=False)
    check(p.returncode == 2, "index lexical --alpha 2: exit %d" % p.returncode)


def test_writes(folder, model, base):
    """The lexical side follows upserts, replaces, deletes and compaction."""
    path = os.path.join(folder, "w.db")
    shutil.copy(base, path)
    srv = sl.Server(["--index", "idx=" + path, "--model", model, "--no-access-log", "--auto-compact", "1"])

    def lex_ids(q):
        st, j = search(srv, {"queries": [q], "k": 50, "mode": "lexical"})
        check(st == 200, "lexical %r: %d %r" % (q, st, j))
        return [h["id"] for h in j["results"][0]["hits"]] if st == 200 else []

    try:
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [
            {"id": "n1", "text": "river qqalpha"}, {"id": "n2", "text": "snow qqbeta", "metadata": {"kind": "z"}}]})
        check(st == 200, "upsert: %d %r" % (st, j))
        check(lex_ids("qqalpha") == ["n1"] and lex_ids("qqbeta") == ["n2"], "new texts are searchable")
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [{"id": "n1", "text": "city qqgamma"}]})
        check(st == 200 and j.get("replaced") == 1, "replace: %d %r" % (st, j))
        check(lex_ids("qqalpha") == [] and lex_ids("qqgamma") == ["n1"], "a replace swaps the text")
        st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"ids": ["n1"]})
        st2, _, j2 = srv.json("DELETE", "/v1/indexes/idx/documents", {"filter": {"kind": "z"}})
        check(st == 200 and st2 == 200 and j2.get("deleted") == 1, "deletes: %r %r" % (j, j2))
        check(lex_ids("qqgamma") == [] and lex_ids("qqbeta") == [], "deleted texts are gone")
        st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"ids": ["d%03d" % i for i in range(0, 150, 2)]})
        check(st == 200 and j.get("deleted") == 75, "bulk delete: %r" % j)
        index_check(path, "after deletes")
        st, _, j = srv.json("POST", "/v1/indexes/idx/compact")
        check(st == 200, "compact: %d %r" % (st, j))
        index_check(path, "after compaction")
        ids = lex_ids("river")
        check(ids and all(int(i[1:]) % 2 == 1 for i in ids), "after compaction only live docs: %r" % ids)
    finally:
        srv.stop()


def live_texts(path):
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return dict(db.execute("SELECT external_id, text FROM documents WHERE deleted = 0"))
    finally:
        db.close()


def crash_trial(base, folder, model, trial):
    path = os.path.join(folder, "crash-%d.db" % trial)
    shutil.copy(base, path)
    rng = random.Random(500 + trial)
    srv = sl.Server(["--index", "idx=" + path, "--model", model, "--no-access-log", "--auto-compact", "0.1"])
    stop = threading.Event()
    count = [0]

    def writer():
        seq = 0
        while not stop.is_set():
            seq += 1
            if rng.random() < 0.7:
                batch = [{"id": "c%d-%d" % (seq, j) if rng.random() < 0.8 else "d%03d" % rng.randrange(150),
                          "text": "river qq%dx%d" % (seq, j)} for j in range(rng.randint(1, 20))]
                batch = list({d["id"]: d for d in batch}.values())
                method, body = "POST", {"documents": batch}
            else:
                method, body = "DELETE", {"ids": ["d%03d" % rng.randrange(150) for _ in range(10)] +
                                          ["c%d-0" % rng.randrange(1, seq + 1)]}
                body["ids"] = list(dict.fromkeys(body["ids"]))
            try:
                st, _, _ = srv.request(method, "/v1/indexes/idx/documents", body, timeout=30)
            except Exception:
                return
            if st == 200:
                count[0] += 1

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(rng.uniform(0.5, 1.5))
    srv.proc.kill()  # SIGKILL
    srv.proc.wait(30)
    stop.set()
    t.join(60)
    srv.reader.join(10)
    index_check(path, "crash trial %d" % trial)  # compares the lexical side with the live rows
    live = live_texts(path)
    # Every live document is found by its own unique term, no dead version is.
    srv2 = sl.Server(["--index", "idx=" + path, "--no-access-log"])
    try:
        for ext, text in rng.sample(sorted(live.items()), min(8, len(live))):
            term = text.split()[-1]
            st, j = search(srv2, {"queries": [term], "k": 5, "mode": "lexical"})
            got = [h["id"] for h in j["results"][0]["hits"]] if st == 200 else None
            want = [ext] if term.startswith("qq") else None
            if want is not None:
                check(got == want, "crash trial %d: %r finds %r, want %r" % (trial, term, got, want))
    finally:
        srv2.stop()
    for suffix in ("", "-wal", "-shm", "-lock"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return count[0]


def test_check_terms(folder, base):
    """`index check` compares the lexical side's terms with the live texts, not only its rows:
    a text changed behind the index's back (same rows, other words) is reported."""
    import sqlite3
    path = os.path.join(folder, "terms.db")
    shutil.copy(base, path)
    index_check(path, "a copy of the text index")
    db = sqlite3.connect(path)
    db.execute("UPDATE documents SET text = 'zebra quokka ' || text WHERE doc_id ="
               " (SELECT MIN(doc_id) FROM documents WHERE deleted = 0)")
    db.commit()
    db.close()
    p = sl.run(["index", "check", "--index", path], check=False)
    out = p.stdout + p.stderr
    check(p.returncode == 1 and 'term "zebra"' in out and 'term "quokka"' in out,
          "index check of a text the lexical index does not hold: exit %d %s" % (p.returncode, out[-600:]))


def main():
    with tempfile.TemporaryDirectory(prefix="cp_http_hybrid_") as folder:
        model, idx, docs = sl.build_text_index(folder)
        base = os.path.join(folder, "base.db")
        shutil.copy(idx, base)
        test_cli_and_http(folder, model, idx, docs)
        test_embeddings_index(folder, model)
        test_writes(folder, model, base)
        test_check_terms(folder, base)
        for trial in range(CRASH_TRIALS):
            n = crash_trial(base, folder, model, trial)
            print("crash trial %d: %d acknowledged writes" % (trial, n), file=sys.stderr)


if __name__ == "__main__":
    sl.main(main)
