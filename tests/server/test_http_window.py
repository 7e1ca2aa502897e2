"""Long documents as windows (issue 13 section 3), end to end through the CLI and HTTP with a
tiny static model whose doc_maxlen (the windows' position limit) is 12.

Checks: `index build --window` past the position limit fails with a clear message and at the
limit works (a document of exactly one window is one window; one token more is two full
windows, the last ending at the document's end); a windowed build refuses an empty or
whitespace-only text and leaves no file; `colplaid search --format json` and HTTP search give each hit of a windowed
index a "passage" {start, end} (code points) that cuts the text at word boundaries, holds
the words the query targets (also behind multi-byte characters), and agrees between CLI and
HTTP; both document scores (--doc-score maxsim / maxp) answer; an HTTP text upsert of a long
document replaces all its windows at once (the stored windows tile its new rows; the
passage follows the new text; compaction drops the old windows); empty and whitespace-only
texts are refused (400) as in any index, and a text of unknown words upserts as one window;
`index check` verifies the stored windows; `index add --corpus` into a windowed index stores windows too.
"""
import json
import os
import random
import sqlite3
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check
FILL = "the a of and to in is it for on with as was at by an be this from or that are".split()


def filler(rng, n):
    return " ".join(rng.choice(FILL) for _ in range(n))


def windows_of(idx, ext_id):
    """(n_tokens, [(tok_start, tok_end, char_start, char_end)]) of the live document."""
    db = sqlite3.connect(idx)
    try:
        row = db.execute("SELECT d.n_tokens, w.windows FROM documents d LEFT JOIN doc_windows w"
                         " ON w.doc_id = d.doc_id WHERE d.external_id = ? AND d.deleted = 0",
                         (ext_id,)).fetchone()
    finally:
        db.close()
    if not row or row[1] is None:
        return (row[0] if row else None), []
    b = row[1]
    vals = [int.from_bytes(b[i:i + 4], "little", signed=True) for i in range(0, len(b), 4)]
    return row[0], [tuple(vals[i:i + 4]) for i in range(0, len(vals), 4)]


def tiles(n_tokens, wins):
    at = 0
    for w in wins:
        if w[0] != at or w[1] < w[0] or w[3] < w[2]:
            return False
        at = w[1]
    return at == n_tokens


def at_word_bounds(text, p):
    s, e = p["start"], p["end"]
    return (0 <= s < e <= len(text) and (s == 0 or text[s - 1].isspace())
            and (e == len(text) or text[e].isspace()))


def body():
    tmp = tempfile.mkdtemp(prefix="cp_http_window_")
    model = sl.write_model(tmp, doc_maxlen=12)
    rng = random.Random(5)
    docs = []
    for i in range(40):
        docs.append({"_id": "s%02d" % i, "text": filler(rng, rng.randint(3, 10)) + " " +
                     rng.choice(["river", "forest", "music", "garden", "snow"])})
    # long documents: the target words deep inside, behind multi-byte text ("Rivér" is the
    # known word river once accents are stripped; "ü€" is unknown)
    long1 = (filler(rng, 30) + " ü€ Rivér ü€ " + filler(rng, 2) + " castle island " +
             filler(rng, 30))
    long2 = filler(rng, 20) + " desert valley " + filler(rng, 40)
    docs += [{"_id": "long1", "text": long1}, {"_id": "long2", "text": long2}]
    corpus = os.path.join(tmp, "corpus.jsonl")
    with open(corpus, "w") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    texts = {d["_id"]: d["text"] for d in docs}
    idx = os.path.join(tmp, "idx.db")
    base = ["index", "build", "--index", idx, "--corpus", corpus, "--model", model,
            "--centroids", "16", "--seed", "1", "--quiet"]
    p = sl.run(base + ["--window", "13"], check=False)
    check(p.returncode == 1 and "position limit" in p.stderr,
          "--window past the position limit: exit %d, %s" % (p.returncode, p.stderr.strip()))
    check(not os.path.exists(idx), "a refused build left a file")
    # Empty and whitespace-only texts are refused by a windowed build too, leaving nothing.
    for blank in ("", "  \n\t "):
        bad = os.path.join(tmp, "blank.jsonl")
        with open(bad, "w") as f:
            f.write(json.dumps({"_id": "ok", "text": "river forest"}) + "\n")
            f.write(json.dumps({"_id": "blank", "text": blank}) + "\n")
        p = sl.run(["index", "build", "--index", idx, "--corpus", bad, "--model", model, "--centroids", "2",
                    "--quiet", "--window", "12"], check=False)
        check(p.returncode == 1 and "line 2" in p.stderr and "no text" in p.stderr and not os.path.exists(idx),
              "windowed build of %r: exit %d %s" % (blank, p.returncode, p.stderr.strip()))
    # At the position limit: a document of exactly 12 known words is one window of 12 rows,
    # one of 13 is two full windows, the second ending at the document's end.
    docs += [{"_id": "exact12", "text": " ".join(["garden"] * 12)},
             {"_id": "exact13", "text": " ".join(["garden"] * 12) + " snow"}]
    with open(corpus, "w") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    texts = {d["_id"]: d["text"] for d in docs}
    sl.run(base + ["--window", "12", "--stride", "8"])
    n, wins = windows_of(idx, "exact12")
    check(n == 12 and wins == [(0, 12, 0, len(texts["exact12"]))],
          "a document of exactly one window: %r rows, windows %r" % (n, wins))
    n, wins = windows_of(idx, "exact13")
    check(n == 24 and len(wins) == 2 and tiles(n, wins) and wins[0][2] == 0 and
          wins[1][3] == len(texts["exact13"]) and wins[1][2] == len("garden "),
          "a document one token past the window: %r rows, windows %r" % (n, wins))
    n, wins = windows_of(idx, "long1")
    check(len(wins) >= 7 and tiles(n, wins), "long1's windows %r do not tile its %r rows" % (wins, n))
    check(all(w[1] - w[0] == 12 for w in wins), "long1's windows are not full: %r" % wins)
    n, wins = windows_of(idx, "s00")
    check(len(wins) == 1 and wins[0][2] == 0 and wins[0][3] == len(texts["s00"]),
          "a short document is one window over its text: %r" % wins)

    def cli(query, extra=()):
        p = sl.run(["search", "--index", idx, "--model", model, "--query", query, "--k", "5",
                    "--format", "json"] + list(extra))
        return json.loads(p.stdout.splitlines()[0])["hits"]

    for query, doc, words in (("castle island", "long1", "castle island"),
                              ("river castle", "long1", "Rivér"),
                              ("desert valley", "long2", "desert valley")):
        hits = cli(query)
        check(hits and hits[0]["id"] == doc, "%s: top hit %r" % (query, hits[:1]))
        for h in hits:
            pa = h.get("passage")
            check(pa and at_word_bounds(texts[h["id"]], pa),
                  "%s: hit %s passage %r off word bounds" % (query, h["id"], pa))
        if hits and hits[0].get("passage"):
            pa = hits[0]["passage"]
            span = texts[doc][pa["start"]:pa["end"]]
            check(words in span, "%s: the passage %r lacks %r" % (query, span, words))
    maxp = cli("castle island", ["--doc-score", "maxp"])
    check(maxp and maxp[0]["id"] == "long1" and maxp[0]["score"] <= cli("castle island")[0]["score"] + 1e-4,
          "maxp: %r" % maxp[:1])
    p = sl.run(["search", "--index", idx, "--model", model, "--query", "x", "--doc-score", "best"],
               check=False)
    check(p.returncode == 2, "--doc-score best: exit %d" % p.returncode)

    # HTTP: the same passages; a long upsert replaces every window at once
    srv = sl.Server(["--index", idx, "--model", model, "--no-access-log"])
    try:
        st, _, info = srv.json("GET", "/v1/indexes/idx")
        check(st == 200 and info.get("windows") == {"window": 12, "stride": 8, "doc_score": "maxp"}
              and info.get("pool_factor") == 1 and info.get("lexical") is True,
              "index info of a windowed index: %d %r" % (st, info))
        srv.check_schema("IndexInfo", info, "GET /v1/indexes/idx")
        cli_hits = cli("castle island")
        st, _, j = srv.json("POST", "/v1/indexes/idx/search",
                            {"queries": [{"text": "castle island"}], "k": 5, "include": ["text"]})
        check(st == 200, "search: %d %r" % (st, j))
        srv.check_schema("SearchResponse", j, "a windowed search's answer")
        hh = j["results"][0]["hits"] if st == 200 else []
        check([(h["id"], h.get("passage")) for h in hh] ==
              [(h["id"], h.get("passage")) for h in cli_hits],
              "HTTP and CLI passages differ: %r vs %r" % (hh, cli_hits))
        new1 = "castle island " + filler(rng, 50) + " desért valley"
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents",
                            {"documents": [{"id": "long1", "text": new1}]})
        check(st == 200 and j.get("replaced") == 1, "upsert: %d %r" % (st, j))
        n, wins = windows_of(idx, "long1")
        check(tiles(n, wins) and wins[-1][3] == len(new1) and wins[0][2] == 0,
              "after the upsert, long1's windows %r do not tile %r rows of the new text" % (wins, n))
        st, _, j = srv.json("POST", "/v1/indexes/idx/search",
                            {"queries": [{"text": "desert valley"}], "k": 3, "include": ["text"]})
        hh = j["results"][0]["hits"] if st == 200 else []
        got = {h["id"]: h for h in hh}
        check("long1" in got and got["long1"].get("passage") and
              "desért valley" in new1[got["long1"]["passage"]["start"]:got["long1"]["passage"]["end"]]
              and got["long1"]["text"] == new1, "the passage does not follow the new text: %r" % hh)
        for blank in ("", "   \n\t "):  # refused as in any index, nothing written
            st, _, j = srv.json("POST", "/v1/indexes/idx/documents",
                                {"documents": [{"id": "blank", "text": blank}]})
            check(st == 400 and windows_of(idx, "blank")[0] is None,
                  "upsert of %r: %d %r" % (blank, st, j))
        unknown = " ü€ ?! "  # no word the model knows: one window, the "no known word" row
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents",
                            {"documents": [{"id": "blank", "text": unknown}]})
        n, wins = windows_of(idx, "blank")
        check(st == 200 and n == 1 and wins == [(0, 1, 0, len(unknown))],
              "unknown words: %d %r %r %r" % (st, j, n, wins))
        for name, text, rows in (("h12", " ".join(["music"] * 12), 12), ("h13", " ".join(["music"] * 13), 24)):
            st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [{"id": name, "text": text}]})
            n, wins = windows_of(idx, name)
            check(st == 200 and n == rows and len(wins) == rows // 12 and tiles(n, wins) and wins[-1][3] == len(text),
                  "HTTP upsert of %d words at the position limit: %d %r %r %r" % (rows, st, j, n, wins))
        st, _, page = srv.request("GET", "/")
        check(st == 200 and b"mark" in page and b"passage" in page, "the page does not mark passages")
        st, _, j = srv.json("POST", "/v1/indexes/idx/compact", {})
        check(st == 200, "compact: %d %r" % (st, j))
    finally:
        srv.stop()
    db = sqlite3.connect(idx)
    orphans = db.execute("SELECT COUNT(*) FROM doc_windows WHERE doc_id NOT IN"
                         " (SELECT doc_id FROM documents WHERE deleted = 0)").fetchone()[0]
    db.close()
    check(orphans == 0, "%d windows of removed documents after compaction" % orphans)

    # index add --corpus into the windowed index uses its windows
    more = os.path.join(tmp, "more.jsonl")
    with open(more, "w") as f:
        f.write(json.dumps({"_id": "long3", "text": filler(rng, 40) + " stone bridge"}) + "\n")
    sl.run(["index", "add", "--index", idx, "--corpus", more, "--model", model])
    n, wins = windows_of(idx, "long3")
    check(len(wins) > 1 and tiles(n, wins), "index add: long3's windows %r (%r rows)" % (wins, n))
    p = sl.run(["index", "check", "--index", idx], check=False)
    check(p.returncode == 0, "index check: %s" % (p.stdout + p.stderr)[-500:])
    db = sqlite3.connect(idx)  # windows that no longer tile their document: check says so
    db.execute("UPDATE doc_windows SET windows = substr(windows, 17) WHERE doc_id ="
               " (SELECT doc_id FROM documents WHERE external_id = 'long3' AND deleted = 0)")
    db.commit()
    db.close()
    p = sl.run(["index", "check", "--index", idx], check=False)
    check(p.returncode == 1 and "windows do not tile" in p.stdout + p.stderr,
          "index check of broken windows: %d %s" % (p.returncode, (p.stdout + p.stderr)[-300:]))


sl.main(body)
