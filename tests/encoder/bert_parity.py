#!/usr/bin/python3
"""Numeric parity of colplaid's BERT/ColBERT encoder against the PyTorch reference.

For each checkpoint variant (layout x dtype x attention rule x matrix kernel), writes a
random checkpoint with torch_reference.py, encodes texts with the C helper
bert_parity_dump (all texts in one batch, as queries and as documents), and checks:
identical kept token ids, and max |C - torch| <= 1e-4 on the normalised vectors.

Usage: bert_parity.py DUMP_TOOL [--full] [--vocab VOCAB]
--full (BERT-base shape, minutes) runs only when CP_SLOW_TESTS=1 is set.
Exit 0 pass, 1 fail, 77 skip (no torch).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

if "--full" in sys.argv and not os.environ.get("CP_SLOW_TESTS"):
    print("SKIP: the BERT-base shape takes minutes; set CP_SLOW_TESTS=1 to run it")
    sys.exit(77)

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402

TOL = 1e-4
# CP_GEMM=bf16 (opt-in reduced precision) is only checked for gross errors here;
# bench_encoder reports its cosine drift against fp32 at BERT-base shape.
BF16_TOL = 0.05

TEXTS = [
    "The late interaction model",
    "colbert search, with punctuation!!! (and brackets) ... ok?",
    "",
    "Ünïcödé àccents are stripped; UPPER case is lowered.",
    "a",
    " ".join(["retrieval token vector index"] * 30),  # longer than doc_maxlen: truncated
    "query document: 42 + 7 = 49 @ #tag $5 & 100%",
    "the [MASK] token in text",
]


def compare(name, got, want_vecs, want_ids, tol):
    if got["ids"] != want_ids:
        return f"{name}: token ids differ\n  C:     {got['ids']}\n  torch: {want_ids}", 0.0
    diff = (torch.tensor(got["emb"], dtype=torch.float64) - want_vecs).abs().max().item()
    return (f"{name}: max abs diff {diff:.3g} > {tol}" if diff > tol else None), diff


def run_variant(tool, a, texts, env_extra, threads, label):
    model, vocab = ref.build(a)
    tf = os.path.join(a.out, "texts.json")
    of = os.path.join(a.out, "out.json")
    with open(tf, "w") as f:
        json.dump(texts, f)
    env = dict(os.environ, **env_extra)
    t0 = time.time()
    subprocess.run([tool, a.out, tf, of, str(threads)], check=True, env=env)
    t_c = time.time() - t0
    with open(of) as f:
        got = json.load(f)
    errors, worst = [], 0.0
    for i, item in enumerate(got):
        for kind in ("query", "doc"):
            vecs, ids = ref.reference(model, item["raw"], "query" if kind == "query" else "doc",
                                      a, vocab)
            tol = BF16_TOL if env_extra.get("CP_GEMM") == "bf16" else TOL
            e, d = compare(f"{label} text {i} {kind}", item[kind], vecs, ids, tol)
            worst = max(worst, d)
            if e:
                errors.append(e)
    print(f"{label}: {len(got)} texts, max abs diff {worst:.3g} (C {t_c:.1f}s)")
    return errors


def variants(full):
    base = dict(layout="stanford", dtype="f32", attend_mask=False)
    out = [
        (dict(base), {}, 1),
        (dict(base, dtype="f16"), {}, 2),
        (dict(base, layout="pylate"), {}, 2),
        (dict(base, layout="pylate", dtype="f16", attend_mask=True), {}, 1),
        (dict(base, layout="pylate", dtype="bf16"), {}, 2),
    ]
    if not full:
        out.append((dict(base, act="gelu_new"), {}, 1))
    if not full:  # every matrix kernel against the reference (CI shape only: fast)
        out.append((dict(base), {"CP_GEMM": "portable"}, 2))
        out.append((dict(base, attend_mask=True), {"CP_GEMM": "blas"}, 1))
        out.append((dict(base, layout="pylate"), {"CP_GEMM": "bf16"}, 2))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tool")
    ap.add_argument("--full", action="store_true", help="BERT-base shape (12 x 768, dim 128)")
    ap.add_argument("--vocab", help="vocab.txt for the full shape")
    opt = ap.parse_args()
    if opt.vocab and not os.path.exists(opt.vocab):
        print(f"FAIL: the vocabulary {opt.vocab} is missing (tests/data)")
        sys.exit(1)
    torch.manual_seed(0)
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (v, env, threads) in enumerate(variants(opt.full)):
            p = argparse.ArgumentParser()
            ref.add_model_args(p)
            a = p.parse_args(["--out", os.path.join(tmp, f"m{i}")])
            for k, val in v.items():
                setattr(a, k, val)
            if opt.full:
                a.hidden, a.layers, a.heads, a.intermediate = 768, 12, 12, 3072
                a.max_pos, a.dim, a.query_maxlen, a.doc_maxlen = 512, 128, 32, 180
                a.vocab = opt.vocab
            label = f"{a.layout}/{a.dtype}{'/attend-mask' if a.attend_mask else ''}" + \
                    ("/gelu_new" if a.act != "gelu" else "") + \
                    "".join(f"/{k}={x}" for k, x in env.items()) + f"/threads={threads}"
            errors += run_variant(opt.tool, a, TEXTS, env, threads, label)
    for e in errors:
        print("FAIL", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
