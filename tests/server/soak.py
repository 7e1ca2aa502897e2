"""A soak of the real `colplaid serve`: mixed reads (filtered and unfiltered searches,
document gets) and writes (upserts that add and replace, deletes) over HTTP for a while,
with SIGKILL restarts of the server, the server's RSS sampled once a second.

Checks (issue 12, "Also"):
- no acknowledged write is lost: after every restart and at the end, every id the client
  wrote holds the text of its last acknowledged upsert, every id it deleted is gone (a
  write in flight at a kill may be either way, never anything else);
- readers see no errors caused by writers (a 4xx/5xx outside a restart fails the soak);
- memory: in the last server process (after the last restart), RSS at the end is within
  10% of RSS after warm-up.

Usage: soak.py [--seconds S] [--kills N] [--warmup S] [--json FILE]
(defaults from $CP_SOAK_SECONDS (60) and $CP_SOAK_KILLS (1)). ctest runs a short one.
"""
import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check
DIM = 16
LANGS = ["en", "fr", "de"]


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Soak:
    def __init__(self, folder, corpus, idx, args):
        self.folder, self.corpus, self.idx, self.args = folder, corpus, idx, args
        self.srv = None
        self.lock = threading.Lock()
        self.restarting = threading.Event()
        self.stop = threading.Event()
        # id -> set of acceptable texts (None: absent). One entry after an acknowledged
        # write, two while a write is in flight (old and new state both possible).
        self.ledger = {i: {t} for i, t in zip(corpus.ids, corpus.texts)}
        self.pending = {}
        self.counts = {"search": 0, "search_filtered": 0, "get": 0, "upsert": 0, "delete": 0,
                       "restart_errors": 0, "errors": 0}
        self.errors = []
        self.samples = []  # (t, pid, rss_kb)
        self.segments = []  # [start_t, pid]
        self.seq = 0
        self.write_gate = threading.Event()
        self.write_gate.set()
        self.writer_idle = threading.Event()

    def start_server(self):
        self.srv = sl.Server(["--index", self.idx, "--threads", "2", "--no-access-log"])
        self.segments.append([time.time(), self.srv.proc.pid])

    def err(self, what):
        with self.lock:
            if self.restarting.is_set():
                self.counts["restart_errors"] += 1
                return
            self.counts["errors"] += 1
            if len(self.errors) < 20:
                self.errors.append(what)

    def call(self, method, path, body=None):
        srv = self.srv
        try:
            st, _, data = srv.request(method, path, body, timeout=60)
            return st, data
        except Exception as e:  # noqa: BLE001 (connection refused / reset during a kill)
            if srv is not self.srv or self.restarting.is_set() or not srv.alive():
                return None, repr(e)
            return -1, repr(e)

    def reader(self, seed):
        rng = random.Random(seed)
        while not self.stop.is_set():
            kind = rng.random()
            if kind < 0.8:
                body = {"queries": [{"embeddings": self.corpus.query(rng)}], "k": 10}
                filtered = rng.random() < 0.5
                if filtered:
                    body["filter"] = rng.choice([{"lang": rng.choice(LANGS)}, {"year": {"$gte": 2012}},
                                                 {"tags.even": True}])
                st, data = self.call("POST", "/v1/indexes/idx/search", body)
                key = "search_filtered" if filtered else "search"
            else:
                st, data = self.call("GET", "/v1/indexes/idx/documents/" + rng.choice(list(self.ledger)))
                key = "get"
                if st == 404:
                    st = 200
            if st is None:
                time.sleep(0.05)
                continue
            if st != 200:
                self.err("%s: %s %r" % (key, st, data[:300]))
            else:
                with self.lock:
                    self.counts[key] += 1
            time.sleep(self.args.pause)

    def writer(self):
        rng = random.Random(99)
        pool = ["soak-%d" % i for i in range(self.args.pool)] + list(self.corpus.ids)
        while not self.stop.is_set():
            if not self.write_gate.is_set():
                self.writer_idle.set()
                self.write_gate.wait(1.0)
                continue
            self.writer_idle.clear()
            ids = rng.sample(pool, rng.randint(1, 4))
            self.seq += 1
            if rng.random() < 0.7:
                docs, new = [], {}
                for i in ids:
                    text = "v%d %s" % (self.seq, i)
                    new[i] = text
                    toks = [sl.normalise([rng.gauss(0, 1) for _ in range(DIM)]) for _ in range(rng.randint(2, 10))]
                    docs.append({"id": i, "embeddings": toks, "text": text,
                                 "metadata": {"lang": rng.choice(LANGS), "year": 2000 + rng.randint(0, 24),
                                              "tags": {"even": rng.random() < 0.5}}})
                method, body, key = "POST", {"documents": docs}, "upsert"
            else:
                new = {i: None for i in ids}
                method, body, key = "DELETE", {"ids": ids}, "delete"
            with self.lock:
                for i, v in new.items():
                    self.ledger.setdefault(i, {None})
                    self.ledger[i] = self.ledger[i] | {v}
            st, data = self.call(method, "/v1/indexes/idx/documents", body)
            if st is None:
                # Killed in flight: either state stays acceptable until the next write of the id.
                time.sleep(0.05)
                continue
            with self.lock:
                if st == 200:
                    for i, v in new.items():
                        self.ledger[i] = {v}
                    self.counts[key] += 1
            if st != 200:
                self.err("%s: %s %r" % (key, st, data[:300]))
            time.sleep(self.args.pause)

    def sampler(self):
        t0 = time.time()
        while not self.stop.is_set():
            srv = self.srv
            r = rss_kb(srv.proc.pid) if srv else None
            if r:
                self.samples.append((time.time() - t0, srv.proc.pid, r))
            self.stop.wait(1.0)

    def index_info(self):
        try:
            st, _, data = self.srv.request("GET", "/v1/indexes/idx", timeout=30)
            j = json.loads(data) if st == 200 else {}
        except Exception:  # noqa: BLE001
            j = {}
        try:  # the file's meta, read-only beside the server
            db = sqlite3.connect("file:%s?mode=ro" % self.idx, uri=True, timeout=10)
            j["next_doc_id"] = int(db.execute("SELECT value FROM meta WHERE key = 'next_doc_id'").fetchone()[0])
            db.close()
        except Exception:  # noqa: BLE001
            pass
        return j

    def verify(self, when):
        """Every id holds its last acknowledged state (writers are paused)."""
        bad = []
        for i, ok in sorted(self.ledger.items()):
            st, _, data = self.srv.request("GET", "/v1/indexes/idx/documents/" + i, timeout=60)
            got = json.loads(data).get("text") if st == 200 else (None if st == 404 else "status %d" % st)
            if got not in ok:
                bad.append((i, got, sorted(map(str, ok))))
            else:
                self.ledger[i] = {got}
        check(not bad, "%s: %d ids not in their acknowledged state, first %r" % (when, len(bad), bad[:5]))
        return len(self.ledger)

    def run(self):
        a = self.args
        self.start_server()
        threads = [threading.Thread(target=self.reader, args=(s,), daemon=True) for s in range(a.readers)]
        threads.append(threading.Thread(target=self.sampler, daemon=True))
        wt = threading.Thread(target=self.writer, daemon=True)
        for t in threads + [wt]:
            t.start()
        t0 = time.time()
        kill_at = [a.seconds * (0.4 * (k + 1) / max(1, a.kills)) for k in range(a.kills)]
        warm_mark = None
        for at in kill_at:
            while time.time() - t0 < at and not self.stop.is_set():
                time.sleep(0.2)
            self.restarting.set()
            old = self.srv
            old.proc.send_signal(signal.SIGKILL)
            old.proc.wait(30)
            print("soak: SIGKILL at %.0f s (pid %d)" % (time.time() - t0, old.proc.pid), file=sys.stderr)
            # Restart, verify with the writer paused.
            self.write_gate.clear()
            self.writer_idle.wait(120)
            self.start_server()
            time.sleep(0.5)
            self.restarting.clear()
            self.verify("after the restart at %.0f s" % (time.time() - t0))
            self.write_gate.set()
        last_start = time.time()
        warm_mark = last_start + min(a.warmup, 0.3 * max(1.0, t0 + a.seconds - last_start))
        while time.time() < warm_mark:
            time.sleep(0.2)
        info_warm = self.index_info()
        while time.time() - t0 < a.seconds:
            time.sleep(0.2)
        info_end = self.index_info()
        self.stop.set()
        self.write_gate.set()
        for t in threads + [wt]:
            t.join(120)
        n_ids = self.verify("end")
        pid = self.srv.proc.pid
        seg = [s for s in self.samples if s[1] == pid]
        rel_warm = warm_mark - t0
        after_warm = [s for s in seg if s[0] >= rel_warm]
        rss_warm = after_warm[0][2] if after_warm else None
        rss_end = seg[-1][2] if seg else None
        rss_peak = max((s[2] for s in seg), default=None)
        self.srv.stop()
        report = {"seconds": a.seconds, "kills": a.kills, "counts": self.counts, "ids_checked": n_ids,
                  "rss_after_warmup_kb": rss_warm, "rss_end_kb": rss_end, "rss_peak_kb": rss_peak,
                  "warmup_s": round(warm_mark - last_start, 1), "last_segment_s": round(time.time() - last_start, 1),
                  "samples": len(self.samples),
                  # What the index holds in memory (snapshot arrays: internal ids are never
                  # reused, so slots grow with every document written) and the ids allocated.
                  "index_bytes_in_memory": [info_warm.get("bytes_in_memory"), info_end.get("bytes_in_memory")],
                  "internal_ids": [info_warm.get("next_doc_id"), info_end.get("next_doc_id")],
                  "live_documents": info_end.get("documents")}
        print("soak: " + json.dumps(report), file=sys.stderr)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(dict(report, rss=self.samples), f)
        check(self.counts["errors"] == 0, "%d errors outside restarts: %r" % (self.counts["errors"], self.errors[:5]))
        check(self.counts["upsert"] > 0 and self.counts["delete"] > 0 and self.counts["search_filtered"] > 0,
              "the soak did too little: %r" % self.counts)
        check(rss_warm and rss_end and rss_end <= 1.10 * rss_warm,
              "RSS grew from %s kB after warm-up to %s kB at the end (limit +10%%)" % (rss_warm, rss_end))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=float(os.environ.get("CP_SOAK_SECONDS", "60")))
    p.add_argument("--kills", type=int, default=int(os.environ.get("CP_SOAK_KILLS", "1")))
    p.add_argument("--warmup", type=float, default=120.0,
                   help="seconds after the last restart before the RSS baseline (at most 30%% of the rest)")
    p.add_argument("--readers", type=int, default=2)
    p.add_argument("--pool", type=int, default=300, help="ids the writer adds beyond the corpus")
    p.add_argument("--pause", type=float, default=0.005, help="seconds between a client's requests")
    p.add_argument("--json", help="write the report and RSS samples here")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cp_soak_") as folder:
        corpus = sl.Corpus(n_docs=300)
        idx = sl.build_index(folder, corpus)
        Soak(folder, corpus, idx, a).run()
        p = sl.run(["index", "check", "--index", idx], check=False)
        check(p.returncode == 0, "index check after the soak: %s" % (p.stdout + p.stderr)[-500:])


if __name__ == "__main__":
    sl.main(main, "ok")
