#!/usr/bin/python3
"""Model fingerprints on every path, and truncated dims (issue 14 §4 and §3 --dim).

A tiny BERT checkpoint (random weights, 128-dim ColBERT head, written here without torch)
builds an index. A copy of it whose vocab.txt is shuffled (same directory name, same
config, same weights: the fingerprint before version 2 could not tell them apart) must be
refused by every path that encodes for the index:
- `colplaid search` / `eval` / `index add` exit 2 naming both models and the override;
  --allow-model-mismatch goes on with a warning;
- `colplaid serve` refuses to start (exit 2); with --allow-model-mismatch it serves the
  index, whose text searches and text upserts answer 409 MODEL_MISMATCH (nothing stored),
  while embeddings still work;
- the static model's vocabulary file is fingerprinted as well;
- `colplaid index set-model` records the shuffled model: then it is accepted and the
  original refused.
--dim 64: an index built from the 128-dim head keeps its first 64 dims renormalised (its
stored vectors match the CLI encoder's rows truncated in Python), records dim 64 in its
fingerprint, and searches with the same model use 64 automatically (CLI and HTTP, same
hits as Python-truncated query embeddings); a --dim the head cannot give is refused.

Usage: test_http_model.py   ($COLPLAID: the CLI). Exit 0 pass, 1 fail, 77 skip.
"""
import json
import math
import os
import random
import shutil
import sqlite3
import struct
import tempfile

import serverlib as sl
from serverlib import check

HIDDEN, LAYERS, HEADS, INTER, MAXPOS, HEAD_DIM = 32, 1, 2, 64, 64, 128
SPECIALS = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = [".", ",", "!", "?"]


def write_safetensors(path, tensors):
    """tensors: list of (name, shape, flat float list), stored as F32."""
    header, blobs, off = {}, [], 0
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_bert(folder, vocab):
    """A Stanford-layout ColBERT checkpoint of random weights over vocab."""
    os.makedirs(folder)
    rng = random.Random(11)

    def rand(*shape):
        n = 1
        for s in shape:
            n *= s
        return [rng.gauss(0, 0.2) for _ in range(n)]

    t = [("bert.embeddings.word_embeddings.weight", [len(vocab), HIDDEN], rand(len(vocab), HIDDEN)),
         ("bert.embeddings.position_embeddings.weight", [MAXPOS, HIDDEN], rand(MAXPOS, HIDDEN)),
         ("bert.embeddings.token_type_embeddings.weight", [2, HIDDEN], rand(2, HIDDEN)),
         ("bert.embeddings.LayerNorm.weight", [HIDDEN], [1.0] * HIDDEN),
         ("bert.embeddings.LayerNorm.bias", [HIDDEN], [0.0] * HIDDEN)]
    for i in range(LAYERS):
        p = "bert.encoder.layer.%d." % i
        for part in ("query", "key", "value"):
            t.append((p + "attention.self.%s.weight" % part, [HIDDEN, HIDDEN], rand(HIDDEN, HIDDEN)))
            t.append((p + "attention.self.%s.bias" % part, [HIDDEN], rand(HIDDEN)))
        t += [(p + "attention.output.dense.weight", [HIDDEN, HIDDEN], rand(HIDDEN, HIDDEN)),
              (p + "attention.output.dense.bias", [HIDDEN], rand(HIDDEN)),
              (p + "attention.output.LayerNorm.weight", [HIDDEN], [1.0] * HIDDEN),
              (p + "attention.output.LayerNorm.bias", [HIDDEN], [0.0] * HIDDEN),
              (p + "intermediate.dense.weight", [INTER, HIDDEN], rand(INTER, HIDDEN)),
              (p + "intermediate.dense.bias", [INTER], rand(INTER)),
              (p + "output.dense.weight", [HIDDEN, INTER], rand(HIDDEN, INTER)),
              (p + "output.dense.bias", [HIDDEN], rand(HIDDEN)),
              (p + "output.LayerNorm.weight", [HIDDEN], [1.0] * HIDDEN),
              (p + "output.LayerNorm.bias", [HIDDEN], [0.0] * HIDDEN)]
    t.append(("linear.weight", [HEAD_DIM, HIDDEN], rand(HEAD_DIM, HIDDEN)))
    write_safetensors(os.path.join(folder, "model.safetensors"), t)
    config = {"model_type": "bert", "architectures": ["HF_ColBERT"], "hidden_size": HIDDEN,
              "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "intermediate_size": INTER, "max_position_embeddings": MAXPOS,
              "vocab_size": len(vocab), "type_vocab_size": 2, "hidden_act": "gelu"}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(folder, "artifact.metadata"), "w") as f:
        json.dump({"query_maxlen": 8, "doc_maxlen": 48, "dim": HEAD_DIM}, f)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")


def unit_prefix(row, d):
    v = row[:d]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def read_npy_f32(path):
    with open(path, "rb") as f:
        raw = f.read()
    hlen = struct.unpack("<H", raw[8:10])[0]
    header = raw[10:10 + hlen].decode()
    shape = tuple(int(x) for x in header.split("(")[1].split(")")[0].split(",") if x.strip())
    n = 1
    for s in shape:
        n *= s
    kind = "q" if "<i8" in header else "f"
    return shape, list(struct.unpack("<%d%s" % (n, kind), raw[10 + hlen:10 + hlen + n * (8 if kind == "q" else 4)]))


def tsv_hits(out):
    return [tuple(l.split("\t")[:2]) for l in out.strip().splitlines()]


def cli_fingerprints(folder, model, shuffled, idx, corpus):
    """search, eval and index add: exit 2 on the shuffled vocabulary, the override goes on."""
    ok = sl.run(["search", "--index", idx, "--model", model, "--query", "river stone"], check=False)
    check(ok.returncode == 0 and ok.stdout.strip(), "search with the index's model: %d %s" % (ok.returncode, ok.stderr))
    bad = sl.run(["search", "--index", idx, "--model", shuffled, "--query", "river stone"], check=False)
    check(bad.returncode == 2, "search with a shuffled vocab.txt: exit %d (want 2) %s" % (bad.returncode, bad.stderr))
    check("model mismatch" in bad.stderr and "--allow-model-mismatch" in bad.stderr and "set-model" in bad.stderr,
          "the mismatch message names the models and the override: %r" % bad.stderr)
    check(bad.stderr.count("fingerprint") >= 2, "both fingerprints named: %r" % bad.stderr)
    check(not bad.stdout.strip(), "no hits printed on a mismatch: %r" % bad.stdout[:200])
    ovr = sl.run(["search", "--index", idx, "--model", shuffled, "--query", "river stone",
                  "--allow-model-mismatch"], check=False)
    check(ovr.returncode == 0 and ovr.stdout.strip() and "warning" in ovr.stderr,
          "--allow-model-mismatch: exit %d, warning %r" % (ovr.returncode, ovr.stderr))
    queries = os.path.join(folder, "queries.jsonl")
    qrels = os.path.join(folder, "qrels.tsv")
    with open(queries, "w") as f:
        f.write(json.dumps({"_id": "q1", "text": "river stone"}) + "\n")
    with open(qrels, "w") as f:
        f.write("query-id\tcorpus-id\tscore\nq1\td001\t1\n")
    ev = sl.run(["eval", "--index", idx, "--model", shuffled, "--queries", queries, "--qrels", qrels], check=False)
    check(ev.returncode == 2 and "model mismatch" in ev.stderr, "eval with a shuffled vocab: %d %s" % (ev.returncode, ev.stderr))
    more = os.path.join(folder, "more.jsonl")
    with open(more, "w") as f:
        f.write(json.dumps({"id": "added-1", "text": "river castle"}) + "\n")
    add = sl.run(["index", "add", "--index", idx, "--corpus", more, "--model", shuffled], check=False)
    check(add.returncode == 2 and "model mismatch" in add.stderr, "index add with a shuffled vocab: %d %s" % (add.returncode, add.stderr))
    info = json.loads(sl.run(["index", "info", "--index", idx, "--format", "json"]).stdout)
    check(info.get("n_documents") == 150, "a refused add stored nothing: %r" % info.get("n_documents"))


def serve_fingerprints(model, shuffled, idx):
    """serve refuses to start; with the override, text answers 409 and nothing is stored."""
    srv = sl.Server(["--index", "idx=" + idx, "--model", shuffled, "--no-access-log"], expect_start=False)
    try:
        rc = srv.proc.wait(60)
    except Exception:
        rc = None
    srv.stop()
    check(rc == 2, "serve with a shuffled vocab.txt: exit %r (want 2, refused)" % rc)
    check(any("model mismatch" in l for l in srv.lines) and any("--allow-model-mismatch" in l for l in srv.lines),
          "serve names the mismatch and the override: %r" % srv.lines[-3:])
    srv = sl.Server(["--index", "idx=" + idx, "--model", shuffled, "--allow-model-mismatch", "--no-access-log"])
    try:
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [{"id": "http-1", "text": "river castle"}]})
        check(st == 409 and j["error"]["code"] == "MODEL_MISMATCH", "text upsert, mismatched model: %d %r" % (st, j))
        st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": ["river stone"], "k": 3})
        check(st == 409 and j["error"]["code"] == "MODEL_MISMATCH", "text search, mismatched model: %d %r" % (st, j))
        st, _, j = srv.json("GET", "/v1/indexes/idx/documents/http-1")
        check(st == 404, "a refused upsert stored nothing: %d" % st)
        emb = [[1.0] + [0.0] * (HEAD_DIM - 1)]
        st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [{"embeddings": emb}], "k": 3})
        check(st == 200, "embedding search on a mismatched index: %d %r" % (st, j))
    finally:
        srv.stop()
    srv = sl.Server(["--index", "idx=" + idx, "--model", model, "--no-access-log"])
    try:
        st, _, j = srv.json("POST", "/v1/indexes/idx/documents", {"documents": [{"id": "http-1", "text": "river castle"}]})
        check(st == 200, "text upsert with the index's model: %d %r" % (st, j))
        st, _, j = srv.json("DELETE", "/v1/indexes/idx/documents", {"ids": ["http-1"]})
        check(st == 200, "delete: %d %r" % (st, j))
    finally:
        srv.stop()


def set_model(model, shuffled, idx):
    p = sl.run(["index", "set-model", "--index", idx, "--model", shuffled], check=False)
    check(p.returncode == 0 and "new:" in p.stdout, "index set-model: %d %s" % (p.returncode, p.stderr))
    ok = sl.run(["search", "--index", idx, "--model", shuffled, "--query", "river"], check=False)
    check(ok.returncode == 0, "search with the recorded model after set-model: %d %s" % (ok.returncode, ok.stderr))
    bad = sl.run(["search", "--index", idx, "--model", model, "--query", "river"], check=False)
    check(bad.returncode == 2, "the former model after set-model: %d" % bad.returncode)
    sl.run(["index", "set-model", "--index", idx, "--model", model, "--quiet"])


def compatibility(folder, model, shuffled, corpus):
    """Indexes recorded before fingerprint version 2, and imported ColBERT indexes."""
    idx = os.path.join(folder, "old.db")
    sl.run(["index", "build", "--index", idx, "--corpus", corpus, "--model", model,
            "--centroids", "16", "--seed", "1", "--quiet", "--no-calibrate"])
    con = sqlite3.connect(idx)
    fp = json.loads(con.execute("SELECT value FROM meta WHERE key = 'encoder'").fetchone()[0])
    check(fp.get("fingerprint_version") == 2 and len(fp.get("hash", "")) == 16, "version 2 record: %r" % fp)
    old = {k: v for k, v in fp.items() if k not in ("fingerprint_version", "model_dim", "hash")}
    con.execute("UPDATE meta SET value = ? WHERE key = 'encoder'", (json.dumps(old, separators=(",", ":")),))
    con.commit()
    con.close()
    p = sl.run(["search", "--index", idx, "--model", model, "--query", "river"], check=False)
    check(p.returncode == 0, "a version 1 record and its model: %d %s" % (p.returncode, p.stderr))
    other = os.path.join(folder, "q12", "model")
    shutil.copytree(model, other)
    with open(os.path.join(other, "artifact.metadata"), "w") as f:
        json.dump({"query_maxlen": 12, "doc_maxlen": 48, "dim": HEAD_DIM}, f)
    p = sl.run(["search", "--index", idx, "--model", other, "--query", "river"], check=False)
    check(p.returncode == 2 and "version 2" in p.stderr,
          "a version 1 record, another query_maxlen: %d %s" % (p.returncode, p.stderr))
    p = sl.run(["index", "set-model", "--index", idx, "--model", model, "--quiet"], check=False)
    info = json.loads(sl.run(["index", "info", "--index", idx, "--format", "json"]).stdout)
    check(p.returncode == 0 and info.get("encoder", {}).get("fingerprint_version") == 2,
          "set-model upgrades a version 1 record: %r" % info.get("encoder"))
    p = sl.run(["search", "--index", idx, "--model", shuffled, "--query", "river"], check=False)
    check(p.returncode == 2, "after the upgrade the shuffled vocabulary is seen: %d" % p.returncode)
    # an index imported from Stanford ColBERT (dim 128): its checkpoint is unknown, dims agree
    data = os.environ.get("CP_TEST_DATA") or os.path.join(os.path.dirname(__file__), "..", "data")
    imp = os.path.join(folder, "imported.db")
    sl.run(["index", "import", "--index", imp, "--colbert", os.path.join(data, "colbert-miyazaki", "nbits4"), "--quiet"])
    p = sl.run(["search", "--index", imp, "--model", model, "--query", "river", "--k", "3"], check=False)
    check(p.returncode == 0 and p.stdout.strip(), "an imported index searched with a 128-dim model: %d %s" % (p.returncode, p.stderr))


def static_model(folder, corpus):
    """The static model: its vocabulary file is fingerprinted too."""
    sub = os.path.join(folder, "static")
    os.makedirs(sub)
    model = sl.write_model(sub)
    idx = os.path.join(sub, "s.db")
    sl.run(["index", "build", "--index", idx, "--corpus", corpus, "--model", model,
            "--centroids", "16", "--seed", "1", "--quiet", "--no-calibrate"])
    shuffled = os.path.join(sub, "shuffled", "model")
    shutil.copytree(model, shuffled)
    with open(os.path.join(shuffled, "vocab.txt")) as f:
        words = f.read().split("\n")
    body = [w for w in words if w]
    random.Random(3).shuffle(body)
    with open(os.path.join(shuffled, "vocab.txt"), "w") as f:
        f.write("\n".join(body) + ("\n" if words[-1] == "" else ""))
    ok = sl.run(["search", "--index", idx, "--model", model, "--query", "river"], check=False)
    bad = sl.run(["search", "--index", idx, "--model", shuffled, "--query", "river"], check=False)
    check(ok.returncode == 0 and bad.returncode == 2,
          "static model, shuffled vocabulary: exit %d / %d %s" % (ok.returncode, bad.returncode, bad.stderr))


def dims(folder, model, corpus, docs):
    """--dim 64 from the 128-dim head."""
    idx = os.path.join(folder, "idx64.db")
    sl.run(["index", "build", "--index", idx, "--corpus", corpus, "--model", model, "--dim", "64",
            "--nbits", "8", "--centroids", "16", "--seed", "1", "--quiet"])
    info = json.loads(sl.run(["index", "info", "--index", idx, "--format", "json"]).stdout)
    enc = info.get("encoder") or {}
    check(info.get("dim") == 64 and enc.get("dim") == 64 and enc.get("model_dim") == HEAD_DIM,
          "--dim 64 recorded: dim %r, fingerprint %r" % (info.get("dim"), enc))
    # stored document vectors: the encoder's rows, first 64 dims renormalised (nbits 8)
    emb, dl, ids = (os.path.join(folder, n) for n in ("exp.npy", "expdl.npy", "exp_ids.txt"))
    sl.run(["index", "export", "--index", idx, "--out", emb, "--doclens-out", dl, "--ids", ids])
    shape, flat = read_npy_f32(emb)
    _, lens = read_npy_f32(dl)
    check(shape[1:] == (64,), "exported dims %r" % (shape,))
    with open(ids) as f:
        order = f.read().split()
    text = {d["id"]: d["text"] for d in docs}
    row = 0
    worst = 1.0
    for i, n in enumerate(lens[:5]):
        full = json.loads(sl.run(["encode", "--model", model, "--document", text[order[i]], "--format", "json"]).stdout)
        want = [unit_prefix(r, 64) for r in full["embeddings"]]
        check(len(want) == n, "doc %s: %d rows, the encoder gives %d" % (order[i], n, len(want)))
        for r in range(min(n, len(want))):
            got = flat[(row + r) * 64:(row + r + 1) * 64]
            worst = min(worst, cos(got, want[r]))
            check(abs(math.sqrt(sum(x * x for x in got)) - 1) < 1e-3, "stored row not unit length")
        row += n
    check(worst > 0.995, "stored rows vs the encoder's truncated rows: worst cosine %.4f" % worst)
    # queries: the same model encodes 64 dims by itself; same hits as Python-truncated ones
    qs = ["river stone", "music of the city", "garden rain"]
    q = json.loads(sl.run(["encode", "--model", model, "--query", qs[0], "--format", "json"]).stdout)["embeddings"]
    qn = os.path.join(folder, "q64.npy")
    sl.write_npy(qn, "<f4", [1, len(q), 64], [x for r in q for x in unit_prefix(r, 64)])
    by_text = sl.run(["search", "--index", idx, "--model", model, "--query", qs[0], "--exact"], check=False)
    by_emb = sl.run(["search", "--index", idx, "--query-embeddings", qn, "--exact"])
    check(by_text.returncode == 0, "search of the --dim index with its model: %d %s" % (by_text.returncode, by_text.stderr))
    check(tsv_hits(by_text.stdout) == tsv_hits(by_emb.stdout) and by_text.stdout.strip(),
          "text query hits %r != truncated-embedding hits %r" % (by_text.stdout[:200], by_emb.stdout[:200]))
    srv = sl.Server(["--index", "idx64=" + idx, "--model", model, "--no-access-log"])
    try:
        st, _, j = srv.json("POST", "/v1/indexes/idx64/search", {"queries": [qs[0]], "k": 10, "mode": "exact"})
        http_ids = [h["id"] for h in j["results"][0]["hits"]] if st == 200 else None
        check(http_ids == [h[1] for h in tsv_hits(by_text.stdout)], "HTTP text search of the --dim index: %d %r" % (st, j))
        st, _, j = srv.json("POST", "/v1/indexes/idx64/documents", {"documents": [{"id": "n1", "text": "river castle"}]})
        check(st == 200, "HTTP text upsert into the --dim index: %d %r" % (st, j))
    finally:
        srv.stop()
    # a model config's truncate_dim does not change the fingerprint: the index's 64 wins
    m32 = os.path.join(folder, "m32", "model")
    shutil.copytree(model, m32)
    with open(os.path.join(m32, "config.json")) as f:
        cfg = json.load(f)
    cfg["truncate_dim"] = 32
    with open(os.path.join(m32, "config.json"), "w") as f:
        json.dump(cfg, f)
    p = sl.run(["search", "--index", idx, "--model", m32, "--query", qs[0], "--exact"], check=False)
    check(p.returncode == 0 and tsv_hits(p.stdout) == tsv_hits(by_text.stdout),
          "a model config with truncate_dim 32 searches the 64-dim index at 64: %d %s" % (p.returncode, p.stderr))
    # dims the head cannot give, and dims the index cannot store
    for d, rc, word in (("256", 1, "cannot encode 256"), ("60", 2, "multiple of 8")):
        p = sl.run(["index", "build", "--index", os.path.join(folder, "bad.db"), "--corpus", corpus,
                    "--model", model, "--dim", d, "--quiet"], check=False)
        check(p.returncode == rc and word in p.stderr, "--dim %s: exit %d %r" % (d, p.returncode, p.stderr))
    q128 = os.path.join(folder, "q128.npy")
    sl.write_npy(q128, "<f4", [1, len(q), HEAD_DIM], [x for r in q for x in r])
    p = sl.run(["search", "--index", idx, "--query-embeddings", q128], check=False)
    check(p.returncode == 1 and "dim" in p.stderr, "128-dim queries to the 64-dim index: %d %r" % (p.returncode, p.stderr))


def body():
    with tempfile.TemporaryDirectory() as folder:
        vocab = SPECIALS + PUNCT + sl.WORDS + ["##s", "##ing"]
        model = os.path.join(folder, "orig", "model")
        write_bert(model, vocab)
        # the same checkpoint with its words shuffled in vocab.txt (specials in place), in a
        # directory of the same name: the old fingerprint saw no difference
        shuffled = os.path.join(folder, "shuffled", "model")
        shutil.copytree(model, shuffled)
        words = vocab[len(SPECIALS):]
        random.Random(5).shuffle(words)
        with open(os.path.join(shuffled, "vocab.txt"), "w") as f:
            f.write("\n".join(SPECIALS + words) + "\n")
        corpus, docs = sl.write_corpus(folder)
        idx = os.path.join(folder, "idx.db")
        sl.run(["index", "build", "--index", idx, "--corpus", corpus, "--model", model,
                "--centroids", "16", "--seed", "1", "--quiet"])
        cli_fingerprints(folder, model, shuffled, idx, corpus)
        serve_fingerprints(model, shuffled, idx)
        set_model(model, shuffled, idx)
        compatibility(folder, model, shuffled, corpus)
        static_model(folder, corpus)
        dims(folder, model, corpus, docs)


if __name__ == "__main__":
    sl.main(body)
