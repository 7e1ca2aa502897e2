"""Evaluate a BEIR dataset through the colplaid HTTP API: nDCG@10 (and Recall@100).

    python -m colplaid.beir --url http://127.0.0.1:8080 --corpus DIR \
        --queries DIR/queries.jsonl --qrels DIR/qrels/test.tsv [--index NAME]

When the server serves the write routes (POST /v1/indexes/{name}/documents, per its
/openapi.json), the corpus is upserted through the API into the index it serves under
--index (the helper does not create it: serve one, e.g. built by `colplaid index build`,
or create an empty one with POST /v1/indexes, Client.create_index).
A server without them (--read-only) is evaluated against the index it already serves under
--index, which must have been built from the same corpus (`colplaid index build --corpus
DIR`); the helper says which of the two it did. Only queries with a positive judgement are evaluated,
with trec_eval's linear-gain nDCG (as BEIR / pytrec_eval and `colplaid eval` compute it).
"""
import argparse
import json
import math
import os
import sys
import time

from .client import Client, ColplaidError


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def read_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (i == 0 and not parts[2].lstrip("-").isdigit()):
                continue  # header
            qid, did, rel = parts[0], parts[1], int(parts[2])
            qrels.setdefault(qid, {})[did] = rel
    return qrels


def ndcg_at(ranked, rels, k=10):
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked, rels, k=100):
    pos = {d for d, r in rels.items() if r > 0}
    return len(pos & set(ranked[:k])) / len(pos) if pos else 0.0


def index_corpus(client, name, corpus_dir, batch):
    path = os.path.join(corpus_dir, "corpus.jsonl") if os.path.isdir(corpus_dir) else corpus_dir
    if name not in [ix["name"] for ix in client.indexes() if ix]:
        raise SystemExit("beir: the server serves no index \"%s\": serve it (`colplaid serve --index "
                         "%s=FILE`), create it (POST /v1/indexes, admin scope) or name a served one "
                         "with --index" % (name, name))
    docs, n = [], 0
    for d in read_jsonl(path):
        text = ((d.get("title") or "") + " " + (d.get("text") or "")).strip()
        docs.append({"id": str(d.get("_id", d.get("id"))), "text": text})
        if len(docs) == batch:
            client.upsert(name, docs)
            n += len(docs)
            docs = []
            print("beir: indexed %d documents" % n, file=sys.stderr)
    if docs:
        client.upsert(name, docs)
        n += len(docs)
    return n


def evaluate(client, name, queries_path, qrels_path, k=100, batch=16):
    qrels = read_qrels(qrels_path)
    queries = [(str(q.get("_id", q.get("id"))), q["text"]) for q in read_jsonl(queries_path)]
    queries = [(qid, t) for qid, t in queries if any(r > 0 for r in qrels.get(qid, {}).values())]
    if not queries:
        raise SystemExit("beir: no query of %s has a positive judgement in %s" % (queries_path, qrels_path))
    ndcg = rec = 0.0
    t0 = time.monotonic()
    for i in range(0, len(queries), batch):
        chunk = queries[i:i + batch]
        results = client.search_many(name, [t for _, t in chunk], k=k)
        for (qid, _), res in zip(chunk, results):
            ranked = res.ids
            ndcg += ndcg_at(ranked, qrels[qid], 10)
            rec += recall_at(ranked, qrels[qid], 100)
    n = len(queries)
    return {"index": name, "queries": n, "k": k, "ndcg@10": ndcg / n, "recall@100": rec / n,
            "seconds": round(time.monotonic() - t0, 3)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m colplaid.beir", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("COLPLAID_URL", "http://127.0.0.1:8080"))
    p.add_argument("--api-key", default=os.environ.get("COLPLAID_API_KEY"))
    p.add_argument("--corpus", required=True, help="BEIR folder (corpus.jsonl) or a corpus .jsonl")
    p.add_argument("--queries", help="queries.jsonl (default CORPUS/queries.jsonl)")
    p.add_argument("--qrels", help="qrels .tsv (default CORPUS/qrels/test.tsv)")
    p.add_argument("--index", help="index name (default: the folder's name, or the only served index)")
    p.add_argument("--k", type=int, default=100, help="results per query (default 100, as colplaid eval)")
    p.add_argument("--batch", type=int, default=256, help="documents per upsert request")
    a = p.parse_args(argv)
    queries = a.queries or os.path.join(a.corpus, "queries.jsonl")
    qrels = a.qrels or os.path.join(a.corpus, "qrels", "test.tsv")
    c = Client(a.url, api_key=a.api_key, timeout=600)
    try:
        served = [ix["name"] for ix in c.indexes() if ix]
        if c.has_write_routes():
            name = a.index or os.path.basename(os.path.normpath(a.corpus))
            n = index_corpus(c, name, a.corpus, a.batch)
            mode = "indexed %d documents through the API into \"%s\"" % (n, name)
        else:
            name = a.index or (served[0] if len(served) == 1 else None)
            if name not in served:
                raise SystemExit("beir: this server has no write routes, so the corpus cannot be "
                                 "indexed through the API; serve an index built with `colplaid index "
                                 "build --corpus %s` and name it with --index (served: %s)"
                                 % (a.corpus, ", ".join(served) or "none"))
            mode = ("the server has no write routes: evaluated the index \"%s\" it already serves "
                    "(built from the corpus offline)" % name)
        print("beir: " + mode, file=sys.stderr)
        r = evaluate(c, name, queries, qrels, a.k)
        r["indexing"] = "api" if mode.startswith("indexed") else "served"
        print("nDCG@10 %.4f  Recall@100 %.4f  (%d queries, %.1f s)" % (
            r["ndcg@10"], r["recall@100"], r["queries"], r["seconds"]), file=sys.stderr)
        print(json.dumps(r))
        return 0
    except ColplaidError as e:
        print("beir: %s (HTTP %d): %s" % (e.code, e.status, e.message), file=sys.stderr)
        return 1
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
