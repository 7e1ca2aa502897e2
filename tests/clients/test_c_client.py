"""The C client (clients/c, through its example program) against a real `colplaid serve` on
loopback: text and base64-embedding searches equal the raw HTTP answers, document get,
and errors as values carrying the server's status, code and message."""
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
            d = docs[9]
            rc, out, err = run(exe, ["--url", url, "--index", "idx", "--get", d["id"]])
            check(rc == 0 and rows(out)[0][0] == d["id"] and rows(out)[0][2] == d["text"], "get: %r %s" % (out, err))
            for args, want in [(["--index", "idx", "--get", "missing/doc"], 'DOCUMENT_NOT_FOUND (HTTP 404): index "idx" has no document "missing/doc"'),
                               (["--index", "nope", "--query", "river"], "INDEX_NOT_FOUND (HTTP 404)"),
                               (["--index", "idx", "--query", "river", "--k", "0"], "INVALID_ARGUMENT (HTTP 400)"),
                               (["--index", "idx", "--embeddings", path, "--dim", "8"], "DIMENSION_MISMATCH (HTTP 422)")]:
                rc, out, err = run(exe, ["--url", url] + args)
                check(rc == 1 and want in err and not out, "%r: %d %r" % (args, rc, err))
            check(srv.alive(), "server died")
        finally:
            srv.stop()
        rc, out, err = run(exe, ["--url", "http://127.0.0.1:9", "--health"])
        check(rc == 1 and "TRANSPORT (HTTP 0)" in err, "closed port: %d %r" % (rc, err))


if __name__ == "__main__":
    sl.main(main, "C client: all checks passed")
