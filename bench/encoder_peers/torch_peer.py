#!/usr/bin/python3
"""PyTorch peer for bench_encoder: the same BERT shape (stock torch.nn modules, float32,
inference mode, fused fast path allowed), on a batch of random token ids; prints one JSON
line like bench_encoder. Run with OPENBLAS_CORETYPE set to the CPU's real type (run.sh
does) so that PyTorch's BLAS gets its full speed.

Usage: torch_peer.py --threads T [--batch 8] [--tokens 128] [--reps 5] [model shape args]
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "encoder"))
import torch_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=3072)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--vocab-size", dest="vocab_size", type=int, default=30522)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = ref.Bert(a.vocab_size, a.hidden, a.layers, a.heads, a.intermediate, 512, a.dim)
    model.randomize(1)
    model.eval()
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(1000, a.vocab_size, (a.batch, a.tokens), generator=g)
    attend = torch.ones_like(ids, dtype=torch.bool)
    best, cpu_at_best = 1e30, 0.0
    with torch.inference_mode():
        for r in range(a.reps + 1):  # run 0 is warm-up
            w0, c0 = time.perf_counter(), time.process_time()
            model(ids, attend)
            w, c = time.perf_counter() - w0, time.process_time() - c0
            if r > 0 and w < best:
                best, cpu_at_best = w, c
    n = a.batch * a.tokens
    print(json.dumps({"engine": "pytorch " + torch.__version__, "threads": a.threads,
                      "batch": a.batch, "tokens": a.tokens, "seconds": round(best, 4),
                      "tokens_per_s": round(n / best, 1),
                      "tokens_per_cpu_s": round(n / cpu_at_best, 1),
                      "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE")}))


if __name__ == "__main__":
    main()
