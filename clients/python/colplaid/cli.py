"""colplaid-client: the HTTP API from a shell.

Pretty, colourised output on a terminal; JSON (one document) when stdout is piped, or
with --json. NO_COLOR (any value) turns colours off.
"""
import argparse
import dataclasses
import json
import os
import sys

from .client import Client, ColplaidError

USAGE_EXAMPLES = """examples:
  colplaid-client health
  colplaid-client search "what causes rain" --index scifact --k 5
  colplaid-client search "query" --json | jq .
  colplaid-client get scifact 4983
  colplaid-client explain scifact 4983 "what causes rain"
"""


class Out:
    def __init__(self, colour):
        self.colour = colour

    def c(self, code, s):
        return "\033[%sm%s\033[0m" % (code, s) if self.colour else str(s)

    def bold(self, s):
        return self.c("1", s)

    def dim(self, s):
        return self.c("2", s)

    def blue(self, s):
        return self.c("1;34", s)

    def green(self, s):
        return self.c("32", s)

    def red(self, s):
        return self.c("1;31", s)


def shorten(text, n=240):
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n - 1] + "…"


def pick_index(client, name):
    if name:
        return name
    names = [ix["name"] for ix in client.indexes() if ix]
    if len(names) == 1:
        return names[0]
    raise SystemExit("colplaid-client: the server serves %s; choose one with --index"
                     % (", ".join(names) if names else "no index"))


def cmd_health(c, a, o):
    h = c.health()
    if a.json:
        return h
    print("%s %s  version %s  up %.0f s" % (o.bold("colplaid"), o.green(h["status"]) if h["status"] == "ok"
                                            else o.red(h["status"]), h["version"], h["uptime_s"]))
    for ix in h["indexes"]:
        print("  %s  %s documents, %s tokens, dim %s" % (o.blue(ix["name"]), ix.get("documents"),
                                                       ix.get("tokens"), ix.get("dim")))
    m = h.get("model")
    print("  model: %s" % (o.dim(json.dumps(m)) if m else o.dim("none (embeddings only)")))


def cmd_indexes(c, a, o):
    ixs = c.indexes()
    if a.json:
        return {"indexes": ixs}
    for ix in ixs:
        print("%s  %s docs  %s tokens  dim %s  nbits %s  %.1f MiB on disk" % (
            o.blue(ix["name"]), ix["documents"], ix["tokens"], ix["dim"], ix["nbits"],
            ix["bytes_on_disk"] / 2**20))


def cmd_info(c, a, o):
    ix = c.index_info(pick_index(c, a.index))
    if a.json:
        return ix
    for k, v in ix.items():
        print("%-16s %s" % (o.bold(k), json.dumps(v) if isinstance(v, (dict, list)) else v))


def cmd_search(c, a, o):
    name = pick_index(c, a.index)
    kw = {"include": ["text"] + (["metadata"] if a.metadata else [])}
    if a.filter:
        kw["filter"] = json.loads(a.filter)
    for opt in ("ncells", "threshold", "ndocs"):
        if getattr(a, opt) is not None:
            kw[opt] = getattr(a, opt)
    if a.exact:
        kw["mode"] = "exact"
    if a.mode:
        if a.exact and a.mode != "exact":
            raise SystemExit("colplaid-client search: --exact and --mode %s do not go together" % a.mode)
        kw["mode"] = a.mode
    fusion = {}
    if a.fusion:
        fusion["method"] = a.fusion
    if a.alpha is not None:
        fusion["alpha"] = a.alpha
    if fusion:
        kw["fusion"] = fusion
    res = c.search(name, a.query, k=a.k, **kw)
    if a.json:
        return {"index": name, "query": a.query, "timing_ms": res.timing_ms,
                "hits": [dataclasses.asdict(h) for h in res.hits]}
    print(o.dim("%d results from %s in %.1f ms (encode %.1f ms)" % (
        len(res), name, res.timing_ms.get("search", 0), res.timing_ms.get("encode", 0))))
    for i, h in enumerate(res, 1):
        print("%s %s  %s" % (o.dim("%2d." % i), o.green("%8.3f" % h.score), o.blue(h.id)))
        if h.text and h.passage:  # windowed index: the best window's characters
            print("     " + shorten(h.passage.of(h.text)))
        elif h.text:
            print("     " + shorten(h.text))
        if a.metadata and h.metadata is not None:
            print("     " + o.dim(json.dumps(h.metadata)))


def cmd_get(c, a, o):
    d = c.get_document(a.index, a.id)
    if a.json:
        return d
    print("%s  %s tokens" % (o.blue(d["id"]), d["n_tokens"]))
    if d.get("metadata") is not None:
        print(o.dim(json.dumps(d["metadata"])))
    print(d.get("text") or o.dim("(no stored text)"))


def cmd_explain(c, a, o):
    ex = c.explain(a.index, a.query, a.id)
    if a.json:
        return ex
    print("%s %s  MaxSim %s  (%s vectors)" % (o.bold("document"), o.blue(ex["id"]),
                                             o.green("%.3f" % ex["score"]), ex["vectors"]))
    top = max([t["similarity"] for t in ex["query_tokens"]] + [1e-9])
    for t in ex["query_tokens"]:
        bar = "█" * max(1, int(round(20 * max(0.0, t["similarity"]) / top)))
        print("  %-14s → %-16s %6.3f %s" % (t["text"], "%s@%d" % (t["doc_token"], t["doc_position"]),
                                             t["similarity"], o.blue(bar)))


def cmd_encode(c, a, o):
    r = c.encode(a.texts, kind=a.kind, b64=a.b64)
    if a.json:
        return r
    for t, e in zip(a.texts, r["results"]):
        print("%s  shape %s" % (o.blue(shorten(t, 60)), e["shape"]))


def cmd_rerank(c, a, o):
    r = c.rerank(a.query, a.documents)
    if a.json:
        return {"results": r}
    for x in r:
        print("%s  %s" % (o.green("%8.3f" % x["score"]), shorten(a.documents[x["index"]], 100)))


def cmd_metrics(c, a, o):
    text = c.metrics()
    if a.json:
        return {"metrics": text}
    sys.stdout.write(text)


def common_options(top):
    """Options accepted before or after the command; the sub-parsers' copies default to
    SUPPRESS so that `--url X health` is not overwritten by the sub-parser's default."""
    def d(value):
        return value if top else argparse.SUPPRESS
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=d(os.environ.get("COLPLAID_URL", "http://127.0.0.1:8080")),
                        help="server URL (default $COLPLAID_URL or http://127.0.0.1:8080)")
    common.add_argument("--api-key", default=d(os.environ.get("COLPLAID_API_KEY")),
                        help="API key (default $COLPLAID_API_KEY)")
    common.add_argument("--json", action="store_true", default=d(None),
                        help="print JSON (the default when stdout is not a terminal)")
    common.add_argument("--pretty", dest="json", action="store_false", default=d(None),
                        help="print for humans even when piped")
    common.add_argument("--timeout", type=float, default=d(60.0), help="seconds per request (default 60)")
    return common


def build_parser():
    top = common_options(True)
    common = common_options(False)
    p = argparse.ArgumentParser(prog="colplaid-client", parents=[top],
                                description="Talk to a colplaid server.", epilog=USAGE_EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="command")
    sub.required = True
    sub.add_parser("health", parents=[common], help="server status, indexes and model")
    sub.add_parser("indexes", parents=[common], help="list the served indexes")
    s = sub.add_parser("info", parents=[common], help="one index's information")
    s.add_argument("index", nargs="?", help="index name (default: the only one served)")
    s = sub.add_parser("search", parents=[common], help="search with a text query")
    s.add_argument("query")
    s.add_argument("--index", help="index name (default: the only one served)")
    s.add_argument("--k", type=int, default=10, help="results (default 10)")
    s.add_argument("--ncells", type=int)
    s.add_argument("--threshold", type=float, help="centroid score threshold")
    s.add_argument("--ndocs", type=int)
    s.add_argument("--exact", action="store_true", help="score every document (mode exact)")
    s.add_argument("--mode", choices=["plaid", "late", "exact", "lexical", "hybrid"],
                   help="late interaction (plaid, the default), exact, lexical (BM25) or hybrid")
    s.add_argument("--fusion", choices=["linear", "rrf"], help="hybrid: how the two sides are fused")
    s.add_argument("--alpha", type=float, help="hybrid, linear fusion: the lexical side's weight in [0, 1]")
    s.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'')
    s.add_argument("--metadata", action="store_true", help="show metadata")
    s = sub.add_parser("get", parents=[common], help="a stored document")
    s.add_argument("index")
    s.add_argument("id")
    s = sub.add_parser("explain", parents=[common], help="token matches of a document for a query")
    s.add_argument("index")
    s.add_argument("id")
    s.add_argument("query")
    s = sub.add_parser("encode", parents=[common], help="token embeddings of texts")
    s.add_argument("texts", nargs="+")
    s.add_argument("--kind", choices=["query", "document"], default="query")
    s.add_argument("--b64", action="store_true", help="base64 float32 instead of JSON arrays")
    s = sub.add_parser("rerank", parents=[common], help="MaxSim scores of texts for a query")
    s.add_argument("query")
    s.add_argument("documents", nargs="+")
    sub.add_parser("metrics", parents=[common], help="Prometheus metrics text")
    return p


COMMANDS = {"health": cmd_health, "indexes": cmd_indexes, "info": cmd_info, "search": cmd_search,
            "get": cmd_get, "explain": cmd_explain, "encode": cmd_encode, "rerank": cmd_rerank,
            "metrics": cmd_metrics}


def main(argv=None):
    a = build_parser().parse_args(argv)
    tty = sys.stdout.isatty()
    if a.json is None:
        a.json = not tty
    o = Out(tty and not a.json and "NO_COLOR" not in os.environ)
    c = Client(a.url, api_key=a.api_key, timeout=a.timeout)
    try:
        out = COMMANDS[a.command](c, a, o)
        if a.json and out is not None:
            json.dump(out, sys.stdout, indent=None if not tty else 2, ensure_ascii=False)
            sys.stdout.write("\n")
        return 0
    except ColplaidError as e:
        err = Out(sys.stderr.isatty() and "NO_COLOR" not in os.environ)
        print("%s %s (HTTP %d): %s" % (err.red("error:"), e.code, e.status, e.message), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    finally:
        c.close()


if __name__ == "__main__":
    sys.exit(main())
