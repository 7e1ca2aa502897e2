#!/usr/bin/env python3
"""A long-document collection made from BEIR SciFact (issue 13 section 3; docs/search.md
"Long documents").

  gen_long_scifact.py make SCIFACT_DIR OUT_DIR [--group 8] [--seed 13]
      Shuffle the abstracts (seeded) and join every `group` of them ("title text" each,
      separated by a blank line) into one document L0, L1, ...; write OUT_DIR/corpus.jsonl,
      OUT_DIR/queries.jsonl (SciFact's), OUT_DIR/qrels/test.tsv (each judgement mapped to the
      joined document, the highest grade kept) and OUT_DIR/parts.tsv (abstract id<TAB>joined
      id<TAB>start<TAB>end: the abstract's characters in the joined text, in code points).

  gen_long_scifact.py best-of OUT_DIR RUN.tsv
      The "score the abstracts separately and take the best" reference: RUN.tsv is a
      `colplaid search --format tsv` run over the ORIGINAL abstracts (qid, docid, rank,
      score); each abstract is mapped to its joined document, which takes the rank of its
      best abstract. Prints nDCG@10 against OUT_DIR's qrels, computed as `colplaid eval`
      does (eval/eval.c: graded gains, log2 discount, ideal DCG from the query's judgements;
      only queries with a positive judgement).
"""
import json
import math
import os
import random
import sys


def make(src, out, group=8, seed=13):
    docs = []
    with open(os.path.join(src, "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                t = (d.get("title") or "").strip()
                docs.append((d["_id"], (t + " " + d["text"]) if t else d["text"]))
    random.Random(seed).shuffle(docs)
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    to_joined = {}
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as c, \
            open(os.path.join(out, "parts.tsv"), "w", encoding="utf-8") as p:
        for g in range(0, len(docs), group):
            jid = "L%d" % (g // group)
            text, at = "", 0
            for k, (did, t) in enumerate(docs[g:g + group]):
                if k:
                    text += "\n\n"
                start = len(text)
                text += t
                p.write("%s\t%s\t%d\t%d\n" % (did, jid, start, len(text)))
                to_joined[did] = jid
            c.write(json.dumps({"_id": jid, "text": text}, ensure_ascii=False) + "\n")
    with open(os.path.join(src, "queries.jsonl"), encoding="utf-8") as f, \
            open(os.path.join(out, "queries.jsonl"), "w", encoding="utf-8") as o:
        o.write(f.read())
    best = {}
    with open(os.path.join(src, "qrels", "test.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            key = (q, to_joined[d])
            best[key] = max(best.get(key, 0), int(s))
    with open(os.path.join(out, "qrels", "test.tsv"), "w", encoding="utf-8") as o:
        o.write("query-id\tcorpus-id\tscore\n")
        for (q, j), s in sorted(best.items()):
            o.write("%s\t%s\t%d\n" % (q, j, s))
    print("%d abstracts -> %d documents of up to %d; %d judgements" %
          (len(docs), (len(docs) + group - 1) // group, group, len(best)))


def best_of(out, run):
    to_joined = {}
    with open(os.path.join(out, "parts.tsv"), encoding="utf-8") as f:
        for line in f:
            did, jid, _, _ = line.rstrip("\n").split("\t")
            to_joined[did] = jid
    qrels = {}
    with open(os.path.join(out, "qrels", "test.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            qrels.setdefault(q, {})[d] = int(s)
    ranked = {}
    with open(run, encoding="utf-8") as f:
        for line in f:
            q, d, rank, _ = line.rstrip("\n").split("\t")
            ranked.setdefault(q, []).append((int(rank), to_joined[d]))
    total, n = 0.0, 0
    for q, judged in qrels.items():
        if not any(s > 0 for s in judged.values()):
            continue
        seen, order = set(), []
        for _, j in sorted(ranked.get(q, [])):
            if j not in seen:
                seen.add(j)
                order.append(j)
        dcg = sum(judged.get(j, 0) / math.log2(r + 2) for r, j in enumerate(order[:10])
                  if judged.get(j, 0) > 0)
        ideal = sorted((s for s in judged.values() if s > 0), reverse=True)[:10]
        idcg = sum(s / math.log2(r + 2) for r, s in enumerate(ideal))
        total += dcg / idcg if idcg > 0 else 0.0
        n += 1
    print("queries evaluated  %d\nnDCG@10            %.4f" % (n, total / n if n else 0.0))


def main(argv):
    if len(argv) >= 4 and argv[1] == "make":
        opts = dict(zip(argv[4::2], argv[5::2]))
        make(argv[2], argv[3], int(opts.get("--group", 8)), int(opts.get("--seed", 13)))
    elif len(argv) == 4 and argv[1] == "best-of":
        best_of(argv[2], argv[3])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
