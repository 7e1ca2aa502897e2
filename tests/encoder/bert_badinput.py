#!/usr/bin/python3
"""Damaged BERT checkpoints must be refused with a clear error, never a crash.

Writes a valid small checkpoint with torch_reference.py, damages a copy in one way at a
time, runs bert_parity_dump on it and checks that it exits with status 1 (an error
reported, not a signal) and that its message names the problem.

Usage: bert_badinput.py DUMP_TOOL      Exit 0 pass, 1 fail, 77 skip (no torch).
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

try:
    import torch  # noqa: F401
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402


def read_st(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data):
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def truncate(d):
    p = os.path.join(d, "model.safetensors")
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.truncate(size - 100)


def wrong_shape(d):
    p = os.path.join(d, "model.safetensors")
    h, data = read_st(p)
    t = h["bert.encoder.layer.1.intermediate.dense.weight"]
    t["shape"] = [t["shape"][1], t["shape"][0]]  # same bytes, transposed shape
    write_st(p, h, data)


def missing_tensor(d):
    p = os.path.join(d, "model.safetensors")
    h, data = read_st(p)
    del h["bert.encoder.layer.0.attention.self.key.bias"]
    write_st(p, h, data)


def int_weights(d):
    p = os.path.join(d, "model.safetensors")
    h, data = read_st(p)
    h["linear.weight"]["dtype"] = "I32"
    write_st(p, h, data)


def overlap(d):
    p = os.path.join(d, "model.safetensors")
    h, data = read_st(p)
    t = h["linear.weight"]
    n = t["data_offsets"][1] - t["data_offsets"][0]
    t["data_offsets"] = [0, n]
    write_st(p, h, data)


def put(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


def config_edit(**kv):
    def edit(d):
        p = os.path.join(d, "config.json")
        c = json.load(open(p))
        c.update(kv)
        put(d, "config.json", json.dumps(c))
    return edit


CASES = [
    ("truncated safetensors", truncate, "truncated"),
    ("transposed tensor shape", wrong_shape, "has shape"),
    ("missing tensor", missing_tensor, "is missing"),
    ("integer weights", int_weights, "must be F32, F16 or BF16"),
    ("overlapping tensors", overlap, "overlap"),
    ("corrupt config.json", lambda d: put(d, "config.json", "{\"model_type\": "), "not valid JSON"),
    ("corrupt artifact.metadata", lambda d: put(d, "artifact.metadata", "[1,"), "artifact.metadata"),
    ("ModernBERT", config_edit(model_type="modernbert"), "precomputed"),
    ("XLM-R", config_edit(model_type="xlm-roberta"), "xlm-roberta"),
    ("hidden size mismatch", config_edit(hidden_size=32, num_attention_heads=4), "has shape"),
    ("unknown marker", lambda d: put(d, "artifact.metadata", json.dumps(
        {"query_token_id": "[Q]"})), "[Q]"),
    ("maxlen beyond positions", lambda d: put(d, "artifact.metadata", json.dumps(
        {"doc_maxlen": 4000})), "max_position_embeddings"),
    ("no vocabulary", lambda d: os.remove(os.path.join(d, "vocab.txt")), "tokenizer"),
    ("no weights", lambda d: os.remove(os.path.join(d, "model.safetensors")), "missing"),
    ("empty safetensors", lambda d: put(d, "model.safetensors", ""), "too short"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tool")
    opt = ap.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        p = argparse.ArgumentParser()
        ref.add_model_args(p)
        good = os.path.join(tmp, "good")
        ref.build(p.parse_args(["--out", good]))
        texts = os.path.join(tmp, "texts.json")
        with open(texts, "w") as f:
            json.dump(["hello world"], f)
        pylate_args = p.parse_args(["--out", os.path.join(tmp, "pylate"), "--layout", "pylate"])
        ref.build(pylate_args)
        cases = CASES + [("PyLate without 1_Dense",
                          lambda d: shutil.rmtree(os.path.join(d, "1_Dense")), "Dense", "pylate")]
        for case in cases:
            name, damage, want = case[:3]
            src = os.path.join(tmp, case[3] if len(case) > 3 else "good")
            d = os.path.join(tmp, "bad")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(src, d)
            damage(d)
            r = subprocess.run([opt.tool, d, texts, os.path.join(tmp, "out.json")],
                               capture_output=True, text=True)
            msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
            ok = r.returncode == 1 and want in msg
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: rc={r.returncode} {msg}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
