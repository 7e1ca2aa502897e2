"""Operational behaviour of the real `colplaid serve`: API keys and scopes, loopback-only
without keys, many concurrent clients, a full queue answering 503 + Retry-After,
slowloris-style connections not blocking other clients, and graceful shutdown on SIGTERM
finishing in-flight requests. No assertion depends on timing: waits only bound the test.
"""
import json
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check


def test_keys(idx, folder):
    keys = os.path.join(folder, "keys.txt")
    with open(keys, "w") as f:
        f.write("# test keys\nreader-key-0123456789 read\nadmin-key-0123456789 admin\n")
    srv = sl.Server(["--index", idx, "--api-keys", keys])
    try:
        st, _, _ = srv.request("GET", "/health")
        check(st == 200, "health is public: %d" % st)
        st, _, _ = srv.request("GET", "/openapi.json")
        check(st == 200, "openapi is public: %d" % st)
        st, _, j = srv.json("GET", "/v1/indexes")
        check(st == 401 and j["error"]["code"] == "UNAUTHENTICATED", "no key: %d %r" % (st, j))
        st, _, j = srv.json("GET", "/v1/indexes", headers={"Authorization": "Bearer wrong-key-0123456789"})
        check(st == 403 and j["error"]["code"] == "FORBIDDEN", "wrong key: %d %r" % (st, j))
        st, _, j = srv.json("GET", "/metrics", headers={"Authorization": "Basic abc"})
        check(st == 403, "a non-Bearer Authorization header: %d" % st)
        for key in ("reader-key-0123456789", "admin-key-0123456789"):
            st, _, _ = srv.request("GET", "/v1/indexes", headers={"Authorization": "Bearer " + key})
            check(st == 200, "valid key %s...: %d" % (key[:6], st))
        st, _, _ = srv.request("GET", "/metrics", headers={"Authorization": "Bearer reader-key-0123456789x"})
        check(st == 403, "a key with an extra character must fail: %d" % st)
    finally:
        srv.stop()
    log = "".join(srv.lines)
    check("reader-key" not in log and "admin-key" not in log and "wrong-key" not in log,
          "keys must never be logged")
    # Without keys, a non-loopback address is refused with a clear message.
    p = sl.subprocess.run([sl.COLPLAID, "serve", "--index", idx, "--host", "0.0.0.0", "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    check(p.returncode != 0 and "api-keys" in p.stderr, "non-loopback without keys: rc %d %r" % (p.returncode, p.stderr[-300:]))


def query_body(corpus, rng, n_queries=1, exact=False):
    return {"queries": [{"embeddings": corpus.query(rng)} for _ in range(n_queries)], "k": 10,
            "mode": "exact" if exact else "plaid"}


def test_rate_limits(idx, folder):
    """Per-key rate limits (issue 12): a key's rate=N, else --rate-limit; over it 429
    RATE_LIMITED with Retry-After; public routes are not counted; without keys,
    --rate-limit holds for all requests together."""
    keys = os.path.join(folder, "rate-keys.txt")
    with open(keys, "w") as f:
        f.write("slow-key-0123456789 read rate=2\ndefault-key-0123456789 read\n")
    srv = sl.Server(["--index", idx, "--api-keys", keys, "--rate-limit", "5", "--no-access-log"])
    try:
        def burst(key, n=12):
            out = []
            for _ in range(n):
                st, h, data = srv.request("GET", "/v1/indexes/idx", headers={"Authorization": "Bearer " + key})
                out.append((st, h.get("retry-after"), json.loads(data).get("error", {}).get("code")))
            return out
        slow, dflt = burst("slow-key-0123456789"), burst("default-key-0123456789")
        for name, got, rate in (("rate=2", slow, 2), ("--rate-limit 5", dflt, 5)):
            ok = sum(1 for g in got if g[0] == 200)
            limited = [g for g in got if g[0] == 429]
            # A burst of one second's worth; a slow machine may earn a token back meanwhile.
            check(rate <= ok <= rate + 2, "%s: %d of %d requests passed: %r" % (name, ok, len(got), got))
            check(limited and all(g[1] and int(g[1]) >= 1 and g[2] == "RATE_LIMITED" for g in limited),
                  "%s: 429 with Retry-After and RATE_LIMITED: %r" % (name, got))
        st, _, _ = srv.request("GET", "/health")
        check(st == 200, "health is not rate limited: %d" % st)
        time.sleep(1.2)
        st, _, _ = srv.request("GET", "/v1/indexes/idx", headers={"Authorization": "Bearer slow-key-0123456789"})
        check(st == 200, "a token is back after a second: %d" % st)
    finally:
        srv.stop()
    srv = sl.Server(["--index", idx, "--rate-limit", "3", "--no-access-log"])
    try:
        got = [srv.request("GET", "/v1/indexes/idx")[0] for _ in range(10)]
        check(3 <= got.count(200) <= 5 and 429 in got, "no keys, --rate-limit 3: %r" % got)
    finally:
        srv.stop()


def test_concurrency(srv, corpus):
    rng = random.Random(9)
    bodies = [query_body(corpus, rng) for _ in range(20)]
    want = []
    for b in bodies:
        st, _, j = srv.json("POST", "/v1/indexes/idx/search", b)
        want.append(j if st == 200 else None)
    check(all(want), "sequential searches failed")
    errors = []

    def client(t):
        for i in range(40):
            k = (t * 7 + i) % len(bodies)
            try:
                st, _, data = srv.request("POST", "/v1/indexes/idx/search", bodies[k])
                j = json.loads(data)
                if st != 200 or [h["id"] for h in j["results"][0]["hits"]] != \
                        [h["id"] for h in want[k]["results"][0]["hits"]]:
                    errors.append("thread %d request %d: %d" % (t, i, st))
            except Exception as e:  # noqa: BLE001 - any failure is a test failure
                errors.append("thread %d: %r" % (t, e))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, "concurrent searches: %d errors, first %r" % (len(errors), errors[:3]))


def test_queue_full(idx, corpus):
    """One worker and a queue of one: a burst of heavy searches must see 503 + Retry-After
    for some, 200 for the others, and nothing else."""
    srv = sl.Server(["--index", idx, "--threads", "1", "--queue-depth", "1", "--no-access-log"])
    rng = random.Random(4)
    body = json.dumps(query_body(corpus, rng, n_queries=64, exact=True))
    statuses, bad = [], []
    try:
        for _round in range(10):
            barrier = threading.Barrier(48)

            def client():
                try:
                    barrier.wait(30)
                    st, h, data = srv.request("POST", "/v1/indexes/idx/search", body)
                    statuses.append(st)
                    if st == 503 and (h.get("retry-after") != "1" or json.loads(data)["error"]["code"] != "OVERLOADED"):
                        bad.append("503 without Retry-After/OVERLOADED: %r %r" % (h, data[:200]))
                    elif st not in (200, 503):
                        bad.append("status %d" % st)
                except Exception as e:  # noqa: BLE001
                    bad.append(repr(e))

            threads = [threading.Thread(target=client) for _ in range(48)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            if 503 in statuses:
                break
        check(503 in statuses, "no 503 in %d requests against a queue of one" % len(statuses))
        check(200 in statuses, "no request succeeded under overload")
        check(not bad, "overload answers: %r" % bad[:3])
        st, _, _ = srv.request("GET", "/health")
        check(st == 200, "server serves after overload")
        st, _, data = srv.request("GET", "/metrics")
        check(b'status="503"' in data, "metrics count 503s")
    finally:
        srv.stop()


def test_slowloris(srv, corpus):
    socks = []
    try:
        for i in range(60):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.sendall(b"POST /v1/indexes/idx/search HTTP/1.1\r\nHost: x\r\n")
            if i % 2:
                s.sendall(b"Content-Length: 1000\r\n\r\n{\"queries\": [")  # stalls in the body
            socks.append(s)
        rng = random.Random(8)
        for _ in range(10):
            st, _, _ = srv.request("POST", "/v1/indexes/idx/search", query_body(corpus, rng), timeout=30)
            check(st == 200, "a normal client during slowloris got %d" % st)
        for s in socks:  # dribble one more byte each: still nothing blocks
            s.sendall(b"X")
        st, _, _ = srv.request("GET", "/health", timeout=30)
        check(st == 200, "health during slowloris: %d" % st)
    finally:
        for s in socks:
            s.close()


def test_graceful_shutdown(idx, corpus):
    srv = sl.Server(["--index", idx, "--threads", "1", "--queue-depth", "64"])
    rng = random.Random(6)
    body = json.dumps(query_body(corpus, rng, n_queries=64, exact=True))
    results, sent = [], threading.Semaphore(0)

    def client():
        c = srv.conn(120)
        try:
            c.request("POST", "/v1/indexes/idx/search", body=body, headers={"Content-Type": "application/json"})
            sent.release()
            r = c.getresponse()
            results.append((r.status, len(r.read())))
        except Exception as e:  # noqa: BLE001
            results.append(("error", repr(e)))
        finally:
            c.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for _ in threads:
        sent.acquire(timeout=60)
    # Every request is on the wire; wait until the server has read them all (in flight).
    for _ in range(600):
        st, _, data = srv.request("GET", "/metrics")
        line = [l for l in data.decode().splitlines() if l.startswith("colplaid_http_in_flight ")]
        if line and int(line[0].split()[1]) >= 9:  # 8 searches + this metrics request
            break
    rc = srv.stop(signal.SIGTERM)
    for t in threads:
        t.join(120)
    check(rc == 0, "exit status after SIGTERM: %r" % rc)
    check(len(results) == 8 and all(r[0] == 200 for r in results),
          "in-flight requests during SIGTERM: %r" % results)
    check(any("SIGTERM received" in l for l in srv.lines), "shutdown not announced")


def test_sigterm_at_start(idx, runs=60):
    """SIGTERM right after the server says it listens: before the fix it sometimes reached
    a library thread (OpenBLAS's) that did not block it and killed the process (about half
    of such starts exited -15), skipping the drain."""
    bad = []
    for _ in range(runs):
        srv = sl.Server(["--index", idx, "--no-access-log"])
        rc = srv.stop(signal.SIGTERM)
        if rc != 0 or not any("stopped" in l for l in srv.lines):
            bad.append(rc)
    check(not bad, "SIGTERM at start: %d of %d exits not graceful: %r" % (len(bad), runs, bad))


def main():
    with tempfile.TemporaryDirectory(prefix="cp_http_ops_") as folder:
        corpus = sl.Corpus(n_docs=400)
        idx = sl.build_index(folder, corpus)
        before = sl.file_digest(idx)
        print("-- keys", file=sys.stderr)
        test_keys(idx, folder)
        print("-- rate limits", file=sys.stderr)
        test_rate_limits(idx, folder)
        srv = sl.Server(["--index", idx, "--threads", "2", "--timeout", "20", "--no-access-log"])
        try:
            print("-- concurrency", file=sys.stderr)
            test_concurrency(srv, corpus)
            print("-- slowloris", file=sys.stderr)
            test_slowloris(srv, corpus)
        finally:
            check(srv.stop() == 0, "server exit status")
        print("-- queue full", file=sys.stderr)
        test_queue_full(idx, corpus)
        print("-- graceful shutdown", file=sys.stderr)
        test_graceful_shutdown(idx, corpus)
        print("-- SIGTERM at start", file=sys.stderr)
        test_sigterm_at_start(idx)
        check(sl.file_digest(idx) == before, "the index file changed while serving")


if __name__ == "__main__":
    sl.main(main, "ok")
