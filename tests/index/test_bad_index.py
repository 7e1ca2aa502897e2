"""Index files that lie about themselves (issue 12, defect 13): meta format_version 0 or 999,
NaN centroids, NaN bucket weights or cutoffs. Before the fix such files opened, passed
`index check`, and `search` ran on them (NaN scores, or 0 hits with exit 0). Now: open,
`index check`, `index info` and `search` all refuse them with a message naming the problem.
"""
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "server"))
import serverlib as sl  # noqa: E402

check = sl.check


def cli(*args):
    p = subprocess.run([sl.COLPLAID] + list(args), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def patch_blob(path, column, index, value):
    db = sqlite3.connect(path)
    blob = bytearray(db.execute("SELECT %s FROM codec WHERE id = 1" % column).fetchone()[0])
    struct.pack_into("<f", blob, 4 * index, value)
    db.execute("UPDATE codec SET %s = ? WHERE id = 1" % column, (bytes(blob),))
    db.commit()
    db.close()


def set_meta(path, key, value):
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    db.commit()
    db.close()


def main():
    with tempfile.TemporaryDirectory(prefix="cp_bad_index_") as folder:
        corpus = sl.Corpus(n_docs=120, dim=16, seed=5)
        good = sl.build_index(folder, corpus)
        sl.write_npy(os.path.join(folder, "q.npy"), "<f4", (1, 4, 16),
                     [x for t in corpus.docs[0][:4] for x in t] + [0.0] * 16 * max(0, 4 - len(corpus.docs[0])))
        rc, out = cli("index", "check", "--index", good)
        check(rc == 0, "the good index passes check: %d %s" % (rc, out[-300:]))
        cases = [
            ("format_version 0", lambda p: set_meta(p, "format_version", "0"), "format_version"),
            ("format_version 999", lambda p: set_meta(p, "format_version", "999"), "format_version"),
            ("NaN centroid", lambda p: patch_blob(p, "centroids", 5, float("nan")), "centroid"),
            ("inf centroid", lambda p: patch_blob(p, "centroids", 0, float("inf")), "centroid"),
            ("NaN bucket weight", lambda p: patch_blob(p, "bucket_weights", 1, float("nan")), "bucket weight"),
            ("NaN bucket cutoff", lambda p: patch_blob(p, "bucket_cutoffs", 0, float("nan")), "bucket cutoff"),
        ]
        for i, (name, damage, word) in enumerate(cases):
            path = os.path.join(folder, "bad%d.db" % i)
            shutil.copy(good, path)
            damage(path)
            for what, args in [("index check", ["index", "check", "--index", path]),
                               ("index info", ["index", "info", "--index", path]),
                               ("search", ["search", "--index", path, "--query-embeddings",
                                           os.path.join(folder, "q.npy"), "--k", "3"]),
                               ("exact search", ["search", "--index", path, "--query-embeddings",
                                                 os.path.join(folder, "q.npy"), "--k", "3", "--exact"])]:
                rc, out = cli(*args)
                check(rc == 1 and word in out and "nan" not in out.split("\n")[0].split("\t")[-1:],
                      "%s on %s: expected exit 1 naming %r, got %d: %s" % (what, name, word, rc, out[-300:]))


if __name__ == "__main__":
    sl.main(main, "ok")
