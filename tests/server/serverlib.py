"""Helpers for the HTTP tests: build a small index with the real CLI, start the real
`colplaid serve` on a free loopback port, and talk HTTP to it (standard library only).

Every wait has a timeout, so a hung server fails the test instead of hanging ctest.
"""
import base64
import hashlib
import http.client
import json
import math
import os
import random
import re
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

COLPLAID = os.environ.get("COLPLAID")
SKIP = 77
failures = []  # the failed checks of this test process (see check and main)


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def skip(msg):
    print("SKIP: " + msg, file=sys.stderr)
    sys.exit(SKIP)


def check(cond, msg):
    """A soft assertion: a failed check is reported at once and counted; the test goes on."""
    if not cond:
        failures.append(msg)
        print("  check failed: " + msg, file=sys.stderr)


def main(body, passed="ok"):
    """The main of a test script: skip (77) when $COLPLAID is not set, run body(), then exit 1
    with the servers' own messages if any check failed, else print passed."""
    if not COLPLAID:
        skip("COLPLAID is not set")
    body()
    if failures:
        dump_server_logs()
        die("%d check(s) failed" % len(failures))
    print(passed)


def write_npy(path, dtype, shape, values):
    """A .npy file (format 1.0) without numpy: dtype '<f4' or '<i4'."""
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        dtype, ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else ""))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    fmt = "<%d%s" % (len(values), "f" if dtype == "<f4" else "i")
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack(fmt, *values))


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    hlen = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + hlen].decode()
    descr = re.search(r"'descr': '([^']+)'", header).group(1)
    shape = tuple(int(x) for x in re.search(r"'shape': \(([^)]*)\)", header).group(1).split(",") if x.strip())
    body = data[10 + hlen:]
    code = {"<f4": "f", "<i4": "i", "<i8": "q"}[descr]
    n = len(body) // struct.calcsize(code)
    return shape, list(struct.unpack("<%d%s" % (n, code), body))


def b64(rows):
    """Rows of floats as the base64 of little-endian float32 (the API's embeddings_b64)."""
    flat = [x for r in rows for x in r]
    return base64.b64encode(struct.pack("<%df" % len(flat), *flat)).decode()


def normalise(v):
    n = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / n for x in v]


class Corpus:
    """n_docs synthetic documents of a few clustered, L2-normalised token vectors."""

    def __init__(self, n_docs=300, dim=16, seed=7):
        rng = random.Random(seed)
        self.dim = dim
        centres = [normalise([rng.gauss(0, 1) for _ in range(dim)]) for _ in range(12)]
        self.docs = []
        for _ in range(n_docs):
            toks = []
            for _ in range(rng.randint(3, 12)):
                c = rng.choice(centres)
                toks.append(normalise([x + 0.35 * rng.gauss(0, 1) for x in c]))
            self.docs.append(toks)
        self.ids = ["doc-%d" % i for i in range(n_docs)]
        langs = ["en", "fr", "de"]
        self.metadata = [{"year": 2000 + i % 25, "lang": langs[i % 3], "tags": {"even": i % 2 == 0}}
                         for i in range(n_docs)]
        self.texts = ["synthetic document number %d" % i for i in range(n_docs)]

    def query(self, rng, n_tokens=8):
        base = rng.choice(self.docs)
        return [normalise([x + 0.1 * rng.gauss(0, 1) for x in rng.choice(base)]) for _ in range(n_tokens)]

    def write(self, folder):
        emb = [x for d in self.docs for t in d for x in t]
        total = sum(len(d) for d in self.docs)
        write_npy(os.path.join(folder, "emb.npy"), "<f4", (total, self.dim), emb)
        write_npy(os.path.join(folder, "doclens.npy"), "<i4", (len(self.docs),), [len(d) for d in self.docs])
        with open(os.path.join(folder, "ids.txt"), "w") as f:
            f.write("\n".join(self.ids) + "\n")


def run(args, timeout=120, check=True):
    p = subprocess.run([COLPLAID] + args, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        die("colplaid %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()[-2000:]))
    return p


def build_index(folder, corpus, name="idx.db"):
    corpus.write(folder)
    path = os.path.join(folder, name)
    p = run(["index", "build", "--index", path, "--embeddings", os.path.join(folder, "emb.npy"),
             "--doclens", os.path.join(folder, "doclens.npy"), "--ids", os.path.join(folder, "ids.txt"),
             "--centroids", "16", "--nbits", "2", "--seed", "3"], check=False)
    if p.returncode != 0:
        die("index build failed: " + p.stderr.strip())
    # The embeddings builder stores no text or metadata; the test writes them into the
    # documents table (the documented file format) before the server opens the file, so
    # that filters and include=text/metadata have something to read.
    db = sqlite3.connect(path)
    for ext, text, meta in zip(corpus.ids, corpus.texts, corpus.metadata):
        db.execute("UPDATE documents SET text = ?, metadata = ? WHERE external_id = ? AND deleted = 0",
                   (text, json.dumps(meta), ext))
    db.commit()
    db.close()
    return path


# The text fixture: a tiny static model over WORDS and a JSONL corpus written with them.
WORDS = ("the a of and to in is it for on with as was at by an be this from or that are "
         "river mountain forest ocean city music painting science history garden rain snow "
         "stone bridge market train library castle island desert valley").split()


def write_glove(path, words, dim, seed):
    """A GloVe-layout JSON word-vector file (random vectors) for `colplaid model convert`."""
    rng = random.Random(seed)
    vectors = {}
    for i, w in enumerate(words):
        v = [rng.gauss(0, 1) for _ in range(dim)]
        vectors[w] = v + [sum(x * x for x in v) ** 0.5, i]
    glove = {"precision": 8, "l2NormIndex": dim, "wordIndex": dim + 1, "size": len(words),
             "dimensions": dim, "words": words, "vectors": vectors, "unkVector": [0] * dim + [0, -1]}
    with open(path, "w") as f:
        json.dump(glove, f)
    return path


def write_model(folder, **config):
    """folder/model: a static model over WORDS (8-dim vectors, encoding 2 x 8 dims); a failed
    conversion fails the test. config: keys of colplaid-static.json to override (doc_maxlen)."""
    path = write_glove(os.path.join(folder, "glove.json"), WORDS, 8, 2)
    model = os.path.join(folder, "model")
    run(["model", "convert", "--glove", path, "--out", model])
    if config:
        cfg = os.path.join(model, "colplaid-static.json")
        with open(cfg) as f:
            c = json.load(f)
        c.update(config)
        with open(cfg, "w") as f:
            json.dump(c, f)
    return model


def write_corpus(folder):
    """(folder/corpus.jsonl, docs): 150 documents d000.. of WORDS with metadata {n, kind}."""
    rng = random.Random(4)
    docs = []
    content = WORDS[20:]
    for i in range(150):
        text = " ".join(rng.choice(content if rng.random() < 0.7 else WORDS) for _ in range(rng.randint(4, 14)))
        docs.append({"id": "d%03d" % i, "text": text, "metadata": {"n": i, "kind": ["a", "b", "c"][i % 3]}})
    path = os.path.join(folder, "corpus.jsonl")
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps(d) + "\n")
    return path, docs


def build_text_index(folder, name="idx"):
    """(model dir, index path, docs): write_corpus indexed with write_model by the real CLI."""
    model = write_model(folder)
    corpus, docs = write_corpus(folder)
    idx = os.path.join(folder, name + ".db")
    p = run(["index", "build", "--index", idx, "--corpus", corpus, "--model", model,
             "--centroids", "16", "--seed", "1", "--quiet"], check=False)
    if p.returncode != 0:
        die("index build --corpus failed: " + p.stderr.strip()[-500:])
    return model, idx, docs


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


SERVERS = []


def dump_server_logs():
    """The servers' own messages (not the access log), to explain a failure."""
    for srv in SERVERS:
        lines = [l for l in srv.lines if not l.startswith('{"ts"')]
        print("---- server %s stderr (last lines):" % " ".join(srv.args), file=sys.stderr)
        sys.stderr.write("".join(lines[-60:]))


class Server:
    """A running `colplaid serve`; stderr lines are collected in self.lines."""

    def __init__(self, args, expect_start=True):
        self.args = args
        SERVERS.append(self)
        self.proc = subprocess.Popen([COLPLAID, "serve", "--host", "127.0.0.1", "--port", "0"] + args,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.port = None
        self.started = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if expect_start:
            if not self.started.wait(60) or self.port is None:
                self.stop()
                die("server did not start: " + "".join(self.lines[-20:]))

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"listening on http://[^ ]*:(\d+)/", line)
            if m:
                self.port = int(m.group(1))
                self.started.set()
        self.started.set()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers dict (lower-case), body bytes) on a fresh connection."""
        c = self.conn(timeout)
        try:
            h = dict(headers or {})
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
                h.setdefault("Content-Type", "application/json")
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None):
        status, h, data = self.request(method, path, body, headers)
        try:
            return status, h, json.loads(data)
        except ValueError:
            die("%s %s: status %d, body is not JSON: %r" % (method, path, status, data[:200]))

    def alive(self):
        return self.proc.poll() is None

    def check_schema(self, name, value, what):
        """Fails the test when value does not match components/schemas/NAME of the server's
        own /openapi.json, or carries a field the schema does not document."""
        if getattr(self, "_openapi", None) is None:
            st, _, self._openapi = self.json("GET", "/openapi.json")
            check(st == 200, "GET /openapi.json: %d" % st)
        problems = schema_problems(self._openapi, {"$ref": "#/components/schemas/" + name}, value, "$")
        check(not problems, "%s does not match the OpenAPI schema %s: %s" % (what, name, "; ".join(problems[:8])))

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            die("server did not stop within %ds of signal %d" % (timeout, sig))
        self.reader.join(10)
        return rc


_JSON_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def schema_problems(spec, schema, v, at):
    """What of value v (at JSON path at) breaks the OpenAPI 3.0 schema: type, nullable, enum,
    minimum / maximum, required, items, oneOf, $ref; and strictly, a key of an object whose
    schema lists its properties without additionalProperties is a problem (undocumented)."""
    while "$ref" in schema:
        ref = schema["$ref"]
        schema = spec
        for part in ref.lstrip("#/").split("/"):
            schema = schema[part]
    if v is None:
        return [] if schema.get("nullable") or not schema.get("type") else ["%s is null" % at]
    if "oneOf" in schema:
        ok = [s for s in schema["oneOf"] if not schema_problems(spec, s, v, at)]
        return [] if len(ok) == 1 else ["%s matches %d of oneOf" % (at, len(ok))]
    t = schema.get("type")
    if t in ("integer", "number"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (t == "integer" and v != int(v)):
            return ["%s = %r is not %s" % (at, v, t)]
        if "minimum" in schema and v < schema["minimum"]:
            return ["%s = %r < %r" % (at, v, schema["minimum"])]
        if "maximum" in schema and v > schema["maximum"]:
            return ["%s = %r > %r" % (at, v, schema["maximum"])]
    elif t and not isinstance(v, _JSON_TYPES[t]):
        return ["%s = %r is not %s" % (at, v, t)]
    if "enum" in schema and v not in schema["enum"]:
        return ["%s = %r is not one of %r" % (at, v, schema["enum"])]
    out = []
    if isinstance(v, dict):
        props = schema.get("properties")
        for k in schema.get("required", []):
            if k not in v:
                out.append("%s lacks %r" % (at, k))
        for k, x in v.items():
            if props is not None and k in props:
                out += schema_problems(spec, props[k], x, "%s.%s" % (at, k))
            elif isinstance(schema.get("additionalProperties"), dict):
                out += schema_problems(spec, schema["additionalProperties"], x, "%s.%s" % (at, k))
            elif props is not None and not schema.get("additionalProperties"):
                out.append("%s.%s is not documented" % (at, k))
    if isinstance(v, list) and "items" in schema:
        for i, x in enumerate(v):
            out += schema_problems(spec, schema["items"], x, "%s[%d]" % (at, i))
    return out


def maxsim(q, d):
    return sum(max(sum(a * b for a, b in zip(qt, dt)) for dt in d) for qt in q)
