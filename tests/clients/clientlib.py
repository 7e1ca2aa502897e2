"""Shared set-up of the client tests, on top of tests/server/serverlib.py (a tiny real static
model, a JSONL corpus with text and metadata indexed by the real CLI, and a real `colplaid
serve` on a loopback port): a BEIR-layout copy of the corpus and a venv with the Python client.
No mock of the server anywhere."""
import json
import os
import random
import shutil
import subprocess
import sys
import venv

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
import serverlib as sl  # noqa: E402

SOURCE = os.environ.get("CP_SOURCE_DIR", os.path.abspath(os.path.join(HERE, "..", "..")))
BINARY = os.environ.get("CP_BINARY_DIR", os.getcwd())


def write_beir(folder, docs, n_queries=30, seed=5):
    """A BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv): each query is a few words
    of one document, judged relevant for that document (and grade 2 for a second one)."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(folder, "qrels"), exist_ok=True)
    with open(os.path.join(folder, "corpus.jsonl"), "w") as f:
        for d in docs:
            f.write(json.dumps({"_id": d["id"], "title": "", "text": d["text"]}) + "\n")
    with open(os.path.join(folder, "queries.jsonl"), "w") as fq, \
            open(os.path.join(folder, "qrels", "test.tsv"), "w") as fr:
        fr.write("query-id\tcorpus-id\tscore\n")
        for i in range(n_queries):
            d = rng.choice(docs)
            words = d["text"].split()
            q = " ".join(rng.sample(words, min(3, len(words))))
            fq.write(json.dumps({"_id": "q%d" % i, "text": q}) + "\n")
            fr.write("q%d\t%s\t1\n" % (i, d["id"]))
            fr.write("q%d\t%s\t2\n" % (i, rng.choice(docs)["id"]))
    return folder


def client_venv(name="clients-venv"):
    """A venv under $CP_BINARY_DIR with ./clients/python pip-installed into it (no network:
    --no-build-isolation uses Debian's setuptools and wheel through system site packages). Returns its python."""
    root = os.path.join(BINARY, name)
    py = os.path.join(root, "bin", "python")
    if not os.path.exists(py):
        try:
            venv.EnvBuilder(with_pip=True, clear=True, system_site_packages=True).create(root)
        except Exception as e:  # ensurepip missing: python3-venv not installed
            sl.skip("cannot create a venv (%s): apt-get install python3-venv" % e)
    # Install from a copy: building in place would leave build/ and *.egg-info in the tree.
    src = os.path.join(BINARY, name + "-src")
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(os.path.join(SOURCE, "clients", "python"), src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    p = subprocess.run([py, "-m", "pip", "install", "--quiet", "--no-input", "--disable-pip-version-check",
                        "--no-build-isolation", "--no-deps", "--force-reinstall", src],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sl.die("pip install ./clients/python failed:\n" + p.stdout[-2000:] + p.stderr[-3000:])
    return py


def build_windowed_index(folder):
    """A windowed index (`index build --window 12 --stride 8` with the tiny static model's
    doc_maxlen set to 12): short documents plus two long ones whose target words lie deep
    inside, behind multi-byte text. Returns (model, index path, {id: text})."""
    os.makedirs(os.path.join(folder, "wmodel"), exist_ok=True)
    model = sl.write_model(os.path.join(folder, "wmodel"), doc_maxlen=12)
    rng = random.Random(7)
    fill = "the a of and to in is it for on with as was at by an be this from or that are".split()

    def filler(n):
        return " ".join(rng.choice(fill) for _ in range(n))

    texts = {"s%02d" % i: filler(rng.randint(3, 8)) + " " + rng.choice(["river", "music", "snow"])
             for i in range(30)}
    texts["long1"] = filler(30) + " ü€ Rivér " + filler(2) + " castle island " + filler(30)
    texts["long2"] = filler(20) + " desert valley " + filler(40)
    corpus = os.path.join(folder, "wcorpus.jsonl")
    with open(corpus, "w") as f:
        for i, t in texts.items():
            f.write(json.dumps({"_id": i, "text": t}, ensure_ascii=False) + "\n")
    idx = os.path.join(folder, "win.db")
    sl.run(["index", "build", "--index", idx, "--corpus", corpus, "--model", model, "--centroids", "16",
            "--seed", "1", "--quiet", "--window", "12", "--stride", "8"])
    return model, idx, texts
