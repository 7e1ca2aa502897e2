"""Browser test: Debian's chromium, driven headless by playwright-core (npm, pinned in
tests/clients/browser/package-lock.json and installed with `npm ci` under $CP_BINARY_DIR),
against the search page of a real `colplaid serve` on loopback. It types a query, checks the
ranked results against the API, opens the token-match view and checks it against the
explain route. Screenshots go to $CP_BINARY_DIR/artifacts/. Skips (77) when npm cannot
reach its registry or chromium is not installed."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clientlib as cl  # noqa: E402

sl = cl.sl
check = sl.check
HERE = os.path.dirname(os.path.abspath(__file__))
ARTIFACTS = os.path.join(cl.BINARY, "artifacts")


def pinned_version(work):
    with open(os.path.join(work, "package.json")) as f:
        return json.load(f)["dependencies"]["playwright-core"]


def installed_version(work):
    """The playwright-core left by an earlier run, or None: a build folder may hold one
    from before the pin changed, which must not be reused."""
    try:
        with open(os.path.join(work, "node_modules", "playwright-core", "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return None


def install():
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        sl.skip("%s is missing: apt-get install chromium (scripts/setup-deps.sh)" % chromium)
    if not shutil.which("node") or not shutil.which("npm"):
        sl.skip("node/npm are missing: apt-get install nodejs npm")
    work = os.path.join(cl.BINARY, "browser-test")
    os.makedirs(work, exist_ok=True)
    for f in ("package.json", "package-lock.json", "browser.js"):
        shutil.copy(os.path.join(HERE, "browser", f), work)
    if installed_version(work) != pinned_version(work):
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=work, capture_output=True, text=True,
                           timeout=600)
        if p.returncode != 0:
            sl.skip("npm ci could not install playwright-core (registry unreachable?): " + p.stderr.strip()[-300:])
    return work


def main():
    work = install()
    os.makedirs(ARTIFACTS, exist_ok=True)
    query = "river mountain forest"
    with tempfile.TemporaryDirectory(prefix="cp_browser_") as folder:
        model, idx, docs = sl.build_text_index(folder)
        srv = sl.Server(["--index", idx, "--model", model, "--threads", "2"])
        url = srv.url
        try:
            p = subprocess.run(["node", os.path.join(work, "browser.js"), url, ARTIFACTS, query],
                               capture_output=True, text=True, timeout=300, cwd=work)
            check(p.returncode == 0, "browser run failed (%d): %s" % (p.returncode, p.stderr[-3000:]))
            if p.returncode == 0:
                seen = json.loads(p.stdout.strip().splitlines()[-1])
                check(seen["title"].startswith("colplaid"), "title %r" % seen["title"])
                check(seen["indexes"] == ["idx"], "index picker %r" % seen["indexes"])
                check(not seen["external"], "the page requested external resources: %r" % seen["external"])
                check(not seen["errors"], "JavaScript errors: %r" % seen["errors"])
                check("query" in seen["empty_status"], "empty query message %r" % seen["empty_status"])
                st, _, j = srv.json("POST", "/v1/indexes/idx/search", {"queries": [query], "k": 10, "include": ["text"]})
                want = j["results"][0]["hits"]
                got = seen["hits"]
                check([h["id"] for h in got] == [w["id"] for w in want], "page ids %r, API %r"
                      % ([h["id"] for h in got], [w["id"] for w in want]))
                check(all(abs(h["score"] - w["score"]) < 6e-4 and h["text"] == w["text"] for h, w in zip(got, want)),
                      "page scores/texts differ from the API")
                check(seen["status"].startswith("%d results" % len(want)), "status line %r" % seen["status"])
                st, _, ex = srv.json("POST", "/v1/indexes/idx/explain", {"query": query, "id": want[0]["id"]})
                rows = seen["matches"]
                check(len(rows) == len(ex["query_tokens"]), "token-match rows %d, explain %d" % (len(rows), len(ex["query_tokens"])))
                for r, t in zip(rows, ex["query_tokens"]):
                    check(r[0] == t["text"] and r[1].startswith(t["doc_token"]) and r[1].endswith("@%d" % t["doc_position"])
                          and abs(float(r[2]) - t["similarity"]) < 6e-4, "row %r vs explain %r" % (r, t))
                check(set(seen["highlighted"]) == {t["doc_token"] for t in ex["query_tokens"]},
                      "highlighted document tokens %r" % seen["highlighted"])
                check("%.3f" % ex["score"] in seen["note"], "explain note %r" % seen["note"])
                # The lexical terms of the explain view, and the mode switch (hybrid).
                check(seen.get("lexical_terms") == [{"term": t["term"], "matched": t["matched"]}
                                                    for t in ex["lexical"]["terms"]],
                      "lexical terms %r vs explain %r" % (seen.get("lexical_terms"), ex.get("lexical")))
                st, _, j = srv.json("POST", "/v1/indexes/idx/search",
                                    {"queries": [query], "k": 10, "mode": "hybrid"})
                want_h = j["results"][0]["hits"]
                check([h["id"] for h in seen.get("hybrid_hits", [])] == [w["id"] for w in want_h] and
                      all(abs(h["score"] - w["score"]) < 6e-4 for h, w in zip(seen["hybrid_hits"], want_h)),
                      "hybrid page hits %r, API %r" % (seen.get("hybrid_hits"), want_h))
                for f in ("browser-results.png", "browser-explain.png", "browser-page.png"):
                    path = os.path.join(ARTIFACTS, f)
                    check(os.path.exists(path) and os.path.getsize(path) > 5000, "screenshot %s" % path)
            check(srv.alive(), "server died")
        finally:
            srv.stop()


if __name__ == "__main__":
    sl.main(main, "browser: all checks passed; screenshots in " + ARTIFACTS)
