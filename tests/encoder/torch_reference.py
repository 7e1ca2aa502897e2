#!/usr/bin/python3
"""Independent PyTorch reference for colplaid's BERT/ColBERT encoder.

Builds a randomly initialised BERT + ColBERT head from stock torch.nn modules
(nn.Embedding, nn.LayerNorm, nn.TransformerEncoderLayer with post-LN and erf GELU, which
is BERT's layer), writes it as a Hugging Face checkpoint directory in either layout
(Stanford ColBERT or sentence-transformers/PyLate) and dtype (f32, f16, bf16), with the
safetensors format written here by hand (JSON header + raw little-endian bytes), and
computes reference ColBERT query/document embeddings in float64.

Used by bert_parity.py (ctest) and bench/encoder_peers/ (speed). No `transformers`.
"""
import json
import math
import os
import string
import struct

import numpy as np
import torch
from torch import nn

PUNCT = string.punctuation


def synthetic_vocab():
    """A small BERT-style vocabulary that covers any lowercase ASCII text."""
    words = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += list(PUNCT) + list("abcdefghijklmnopqrstuvwxyz0123456789")
    words += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    words += ["the", "search", "model", "late", "interaction", "retrieval", "colbert",
              "##ing", "##s", "##ed", "query", "document", "token", "vector", "index"]
    return words


class Bert(nn.Module):
    """BERT encoder + ColBERT projection, built from stock modules."""

    def __init__(self, vocab, hidden, layers, heads, inter, max_pos, dim, eps=1e-12,
                 act="gelu"):
        super().__init__()
        activation = "gelu" if act == "gelu" else (
            lambda v: nn.functional.gelu(v, approximate="tanh"))
        self.word = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(max_pos, hidden)
        self.tok_type = nn.Embedding(2, hidden)
        self.ln = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(hidden, heads, inter, dropout=0.0, activation=activation,
                                       layer_norm_eps=eps, batch_first=True, norm_first=False)
            for _ in range(layers)])
        self.linear = nn.Linear(hidden, dim, bias=False)

    def randomize(self, seed):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() == 1:  # biases and LayerNorm: not the trivial 0 / 1
                    base = 1.0 if ("norm" in name or name.startswith("ln")) and "weight" in name else 0.0
                    p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))
            for emb in (self.word, self.pos, self.tok_type):
                emb.weight.copy_(torch.randn(emb.weight.shape, generator=g))

    def forward(self, ids, attend):
        """ids [B, L] long; attend [B, L] bool (keys that may be attended to)."""
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.ln(self.word(ids) + self.pos(pos) + self.tok_type(torch.zeros_like(ids)))
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~attend)
        return nn.functional.normalize(self.linear(x), dim=-1)


def round_to(model, dtype):
    """Round every parameter through the file dtype so the reference sees what C reads."""
    narrow = {"f16": torch.float16, "bf16": torch.bfloat16}.get(dtype)
    if narrow is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(narrow).double())


def hf_tensors(model, prefix, legacy):
    """state dict of the model under Hugging Face BertModel names."""
    t = {}
    ln = ("gamma", "beta") if legacy else ("weight", "bias")
    t[prefix + "embeddings.word_embeddings.weight"] = model.word.weight
    t[prefix + "embeddings.position_embeddings.weight"] = model.pos.weight
    t[prefix + "embeddings.token_type_embeddings.weight"] = model.tok_type.weight
    t[prefix + "embeddings.LayerNorm." + ln[0]] = model.ln.weight
    t[prefix + "embeddings.LayerNorm." + ln[1]] = model.ln.bias
    for i, layer in enumerate(model.layers):
        b = f"{prefix}encoder.layer.{i}."
        w = layer.self_attn.in_proj_weight
        bias = layer.self_attn.in_proj_bias
        h = w.shape[1]
        for j, part in enumerate(("query", "key", "value")):
            t[b + f"attention.self.{part}.weight"] = w[j * h:(j + 1) * h]
            t[b + f"attention.self.{part}.bias"] = bias[j * h:(j + 1) * h]
        t[b + "attention.output.dense.weight"] = layer.self_attn.out_proj.weight
        t[b + "attention.output.dense.bias"] = layer.self_attn.out_proj.bias
        t[b + "attention.output.LayerNorm." + ln[0]] = layer.norm1.weight
        t[b + "attention.output.LayerNorm." + ln[1]] = layer.norm1.bias
        t[b + "intermediate.dense.weight"] = layer.linear1.weight
        t[b + "intermediate.dense.bias"] = layer.linear1.bias
        t[b + "output.dense.weight"] = layer.linear2.weight
        t[b + "output.dense.bias"] = layer.linear2.bias
        t[b + "output.LayerNorm." + ln[0]] = layer.norm2.weight
        t[b + "output.LayerNorm." + ln[1]] = layer.norm2.bias
    return t


def write_safetensors(path, tensors, dtype):
    """The safetensors format: u64 LE header length, JSON header, raw bytes."""
    np_dtype = {"f32": ("F32", np.float32), "f16": ("F16", np.float16)}
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, tensor in tensors.items():
        if tensor.dtype == torch.int64:
            code, arr = "I64", tensor.numpy().astype("<i8")
        elif dtype == "bf16":  # numpy has no bfloat16: take torch's bits
            code = "BF16"
            arr = tensor.detach().to(torch.bfloat16).view(torch.int16).numpy().astype("<i2")
        else:
            code, npd = np_dtype[dtype]
            arr = tensor.detach().numpy().astype(npd).astype(npd().dtype.newbyteorder("<"))
        raw = arr.tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def bert_config(a, vocab_size):
    return {"architectures": ["HF_ColBERT"], "model_type": "bert", "hidden_size": a.hidden,
            "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
            "intermediate_size": a.intermediate, "max_position_embeddings": a.max_pos,
            "type_vocab_size": 2, "vocab_size": vocab_size, "layer_norm_eps": 1e-12,
            "hidden_act": a.act, "position_embedding_type": "absolute"}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def write_stanford(out, model, a, vocab_size):
    """bert.* tensors + linear.weight in one file; settings in artifact.metadata."""
    t = hf_tensors(model, "bert.", legacy=(a.dtype == "f16"))
    t["bert.embeddings.position_ids"] = torch.arange(a.max_pos).unsqueeze(0)
    t["linear.weight"] = model.linear.weight
    t["cls.predictions.bias"] = torch.zeros(vocab_size)  # pre-training head: ignored
    write_safetensors(os.path.join(out, "model.safetensors"), t, a.dtype)
    write_json(os.path.join(out, "artifact.metadata"), {
        "query_maxlen": a.query_maxlen, "doc_maxlen": a.doc_maxlen, "dim": a.dim,
        "attend_to_mask_tokens": a.attend_mask, "mask_punctuation": True,
        "query_token_id": "[unused0]", "doc_token_id": "[unused1]"})


def write_pylate(out, model, a, vocab_size):
    """Transformer at the root, projection in 1_Dense/, settings for sentence-transformers."""
    write_safetensors(os.path.join(out, "model.safetensors"), hf_tensors(model, "", False), a.dtype)
    os.makedirs(os.path.join(out, "1_Dense"), exist_ok=True)
    write_safetensors(os.path.join(out, "1_Dense", "model.safetensors"),
                      {"linear.weight": model.linear.weight}, a.dtype)
    write_json(os.path.join(out, "1_Dense", "config.json"),
               {"in_features": a.hidden, "out_features": a.dim, "bias": False})
    write_json(os.path.join(out, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}])
    write_json(os.path.join(out, "config_sentence_transformers.json"), {
        "query_prefix": "[unused0]", "document_prefix": "[unused1]",
        "query_length": a.query_maxlen, "document_length": a.doc_maxlen,
        "attend_to_expansion_tokens": a.attend_mask, "skiplist_words": list(PUNCT)})


def build(a):
    """Write the checkpoint directory a.out; return (model, vocab list)."""
    os.makedirs(a.out, exist_ok=True)
    if a.vocab:
        with open(a.vocab, encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f]
    else:
        vocab = synthetic_vocab()
    with open(os.path.join(a.out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    model = Bert(len(vocab), a.hidden, a.layers, a.heads, a.intermediate, a.max_pos, a.dim,
                 act=a.act)
    model.randomize(a.seed)
    model = model.double()
    round_to(model, a.dtype)
    write_json(os.path.join(a.out, "config.json"), bert_config(a, len(vocab)))
    (write_stanford if a.layout == "stanford" else write_pylate)(a.out, model, a, len(vocab))
    return model, vocab


def colbert_input(raw, kind, a, vocab):
    """ColBERT ids + attention from the tokenizer's [CLS] ... [SEP] ids (PLAID.md 2)."""
    ids = {w: i for i, w in enumerate(vocab)}
    toks = raw[1:-1]
    maxlen = a.query_maxlen if kind == "query" else a.doc_maxlen
    toks = toks[:maxlen - 3]
    marker = ids["[unused0]"] if kind == "query" else ids["[unused1]"]
    seq = [ids["[CLS]"], marker] + toks + [ids["[SEP]"]]
    attend = [True] * len(seq)
    if kind == "query":
        pad = maxlen - len(seq)
        seq += [ids["[MASK]"]] * pad
        attend += [a.attend_mask] * pad
    return seq, attend


@torch.no_grad()
def reference(model, raw_ids, kind, a, vocab):
    """Embeddings ([n, dim] float64) and the ids of the kept rows, for one text."""
    seq, attend = colbert_input(raw_ids, kind, a, vocab)
    model.train()  # training mode with dropout 0: the plain (non-fused) code path
    out = model(torch.tensor([seq]), torch.tensor([attend]))[0]
    if kind == "query":
        return out, seq
    skip = {i for i, w in enumerate(vocab) if w in PUNCT}
    keep = [j for j, t in enumerate(seq) if t not in skip]
    return out[keep], [seq[j] for j in keep]


def add_model_args(p):
    p.add_argument("--out", required=True)
    p.add_argument("--layout", choices=["stanford", "pylate"], default="stanford")
    p.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=128)
    p.add_argument("--max-pos", dest="max_pos", type=int, default=128)
    p.add_argument("--dim", type=int, default=24)
    p.add_argument("--query-maxlen", dest="query_maxlen", type=int, default=12)
    p.add_argument("--doc-maxlen", dest="doc_maxlen", type=int, default=40)
    p.add_argument("--attend-mask", dest="attend_mask", action="store_true")
    p.add_argument("--vocab", help="vocab.txt to use (default: a small synthetic one)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--act", choices=["gelu", "gelu_new"], default="gelu",
                   help="hidden_act: erf GELU, or the tanh approximation")


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    add_model_args(ap)
    build(ap.parse_args())
