#!/usr/bin/python3
"""Export the model torch_peer.py times (torch_reference.Bert, randomize(1), same shape) to
ONNX for ort_peer.js: inputs ids [B, L] int64 and attend [B, L] bool, output the projected,
L2-normalised ColBERT token vectors [B, L, dim] float32. Debian's torch.onnx.export, opset
14; batch and sequence axes are dynamic. Also writes OUT.ids (the 8 x 128 int64 token ids
torch_peer.py times: randint(1000, vocab) with seed 42) and OUT.ref (torch's float32 output
for them), which ort_peer.js times and checks against.

Usage: export_onnx.py --out model.onnx [--vocab-size N] [model shape args]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "encoder"))
import torch_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--intermediate", type=int, default=3072)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--vocab-size", dest="vocab_size", type=int, default=30522)
    ap.add_argument("--opset", type=int, default=14)
    a = ap.parse_args()
    model = ref.Bert(a.vocab_size, a.hidden, a.layers, a.heads, a.intermediate, 512, a.dim)
    model.randomize(1)  # the same weights as torch_peer.py
    model.eval()
    ids = torch.randint(1000, a.vocab_size, (8, 128), generator=torch.Generator().manual_seed(42))
    attend = torch.ones_like(ids, dtype=torch.bool)
    tmp = a.out + ".tmp"
    # Traced with autograd on (weights require grad): that keeps torch off its fused
    # encoder-layer kernel (aten::_transformer_encoder_layer_fwd, which has no ONNX
    # export), so the graph is the plain modules' ops: MatMul/Gemm, Softmax, Erf, LayerNorm.
    torch.onnx.export(model, (ids, attend), tmp, input_names=["ids", "attend"],
                      output_names=["vectors"], opset_version=a.opset,
                      dynamic_axes={"ids": {0: "batch", 1: "seq"},
                                    "attend": {0: "batch", 1: "seq"},
                                    "vectors": {0: "batch", 1: "seq"}})
    os.replace(tmp, a.out)
    # The peers' inputs and torch's output, for ort_peer.js to run and check against.
    with torch.no_grad():
        ids.numpy().astype("<i8").tofile(a.out + ".ids")
        model(ids, attend).numpy().astype("<f4").tofile(a.out + ".ref")
    print(f"wrote {a.out} ({os.path.getsize(a.out) >> 20} MiB, opset {a.opset})", file=sys.stderr)


if __name__ == "__main__":
    main()
