"""Tested examples: every ```sh block of README.md and docs/*.md runs, so the docs cannot rot.

Rules (docs/troubleshooting.md repeats them for writers):
- A fenced block opened with ```sh is a command block and is run. Other fences (```json,
  ```console, ``` ...) are illustrations and are not run.
- A block preceded (on the line before its fence) by `<!-- doc-test: skip REASON -->` is not
  run: long-running commands (the demo, the full test suite, a build from source) and
  downloads.
- The blocks of one file run in order as ONE bash script (`set -euo pipefail`: any failing
  command fails the test), in a fresh temporary folder, with `colplaid` (the binary under
  test), `colplaid-client` and `python3` (a venv with the Python client pip-installed) on PATH and
  $CP_SOURCE_DIR pointing to the repository. Background servers are stopped at the end.
- Port 8080 in a block is replaced by a free loopback port (several tests may run at once).
- `models/glove`, the default model the docs fetch with scripts/fetch-glove-model.sh (a
  download, skipped here), is provided as a small GloVe-layout model over the words of the
  doc blocks (random vectors, converted with the real `colplaid model convert`), so the
  commands run offline and fast.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib as cl  # noqa: E402

sl = cl.sl
FENCE = re.compile(r"^```(\S*)\s*$")
SKIP = re.compile(r"<!--\s*doc-test:\s*skip\b")


def blocks(path):
    """[(line number, lang, text, skipped)] of the fenced blocks of a Markdown file."""
    out = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        start, lang = i, m.group(1)
        skipped = i > 0 and bool(SKIP.search(lines[i - 1]))
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        out.append((start + 1, lang, "\n".join(lines[i + 1:j]), skipped))
        i = j + 1
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_model(folder, words):
    """A GloVe-layout JSON over words, converted into folder/models/glove."""
    path = sl.write_glove(os.path.join(folder, "glove.json"), sorted(words), 16, 11)
    os.makedirs(os.path.join(folder, "models"), exist_ok=True)
    sl.run(["model", "convert", "--glove", path, "--out", os.path.join(folder, "models", "glove")])


def main():
    files = [os.path.join(cl.SOURCE, "README.md")] + sorted(
        os.path.join(cl.SOURCE, "docs", f) for f in os.listdir(os.path.join(cl.SOURCE, "docs")) if f.endswith(".md"))
    plan = []
    words = set()
    for f in files:
        bs = blocks(f)
        run = [b for b in bs if b[1] == "sh" and not b[3]]
        skipped = [b for b in bs if b[1] == "sh" and b[3]]
        for b in run:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+", b[2]))
        if run:
            plan.append((f, run))
        print("%s: %d sh block(s) to run, %d skipped by marker" % (os.path.relpath(f, cl.SOURCE), len(run), len(skipped)))
    if not plan:
        sl.die("no ```sh block found in README.md or docs/: the test would check nothing")
    py = cl.client_venv("docs-venv")
    failures = []
    with tempfile.TemporaryDirectory(prefix="cp_docs_") as tmp:
        bindir = os.path.join(tmp, "bin")
        os.makedirs(bindir)
        os.symlink(os.path.abspath(sl.COLPLAID), os.path.join(bindir, "colplaid"))
        os.symlink(os.path.join(os.path.dirname(py), "colplaid-client"), os.path.join(bindir, "colplaid-client"))
        # python3 is the venv's (system site packages + the client), as after `pip install`.
        # (a wrapper, not a symlink: a venv is found from the interpreter's own path)
        with open(os.path.join(bindir, "python3"), "w") as f:
            f.write('#!/bin/sh\nexec "%s" "$@"\n' % py)
        os.chmod(os.path.join(bindir, "python3"), 0o755)
        shared = os.path.join(tmp, "shared")
        os.makedirs(shared)
        make_model(shared, words)
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), CP_SOURCE_DIR=cl.SOURCE,
                   NO_COLOR="1")
        for f, run in plan:
            rel = os.path.relpath(f, cl.SOURCE)
            work = os.path.join(tmp, re.sub(r"\W", "_", rel))
            os.makedirs(os.path.join(work, "models"))
            shutil.copytree(os.path.join(shared, "models", "glove"), os.path.join(work, "models", "glove"))
            port = str(free_port())
            # (|| true: with no background job `kill` fails, and under set -e that would be the
            # script's exit status)
            script = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT"]
            for line, _, text, _ in run:
                script.append("echo '>>> %s:%d' >&2" % (rel, line))
                script.append(text.replace("8080", port))
            t0 = time.monotonic()
            p = subprocess.run(["bash", "-c", "\n".join(script) + "\n"], cwd=work, env=env, capture_output=True,
                               text=True, timeout=300)
            dt = time.monotonic() - t0
            if p.returncode != 0:
                failures.append(rel)
                last = [l for l in p.stderr.splitlines() if l.startswith(">>> ")]
                print("FAIL %s (exit %d after %.1f s), in the block at %s:\n--- stdout\n%s\n--- stderr\n%s"
                      % (rel, p.returncode, dt, last[-1][4:] if last else "?", p.stdout[-3000:], p.stderr[-4000:]),
                      file=sys.stderr)
            else:
                print("ok   %s: %d block(s) in %.1f s" % (rel, len(run), dt))
    if failures:
        sl.die("doc examples failed: " + ", ".join(failures))


if __name__ == "__main__":
    sl.main(main, "docs: every sh block ran")
