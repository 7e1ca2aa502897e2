"""Slow headers (issue 12, beside defect 6): a request whose request line or headers trickle
in a byte at a time is closed within about --timeout of its start, as a trickled body is,
while other connections are served meanwhile. libmicrohttpd's own timeout is an idle one,
which a byte every half second never trips.

Three trickles run at once against `colplaid serve --timeout 2`: the request line, the
headers after a quick request line, and the second request of a kept-alive connection (whose
clock starts when the first one is answered). A normal client keeps asking /health on other
connections all the while.
"""
import os
import socket
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serverlib as sl  # noqa: E402

check = sl.check
TIMEOUT = 2
GIVE_UP = 8.0  # a trickle the server never cuts stops here (the check then fails)


def send_slowly(s, slow, t0):
    """Send slow a byte at a time (one per 0.4 s read timeout) until the server closes the
    connection: the seconds since t0 when it did, or None if it never did (GIVE_UP)."""
    s.settimeout(0.4)
    for i in range(len(slow)):
        if time.time() - t0 > GIVE_UP:
            return None
        s.sendall(slow[i:i + 1])
        try:
            if not s.recv(4096):
                return time.time() - t0
        except socket.timeout:
            pass
    return None


def trickle(port, head, slow, results, name):
    """Send head at once, then slow a byte every 0.4 s; results[name] = seconds from the
    start of the slow part (or of the connection, when head is empty) until the server
    closed the connection, or None if it never did."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.time()
    closed = None
    try:
        if head:
            s.sendall(head)
        closed = send_slowly(s, slow, t0)
    except OSError:  # reset by the server
        closed = time.time() - t0
    finally:
        s.close()
    results[name] = closed


def keep_alive_then_trickle(port, results, name):
    """A first request answered at once on a kept-alive connection, then the second one's
    request line trickled: its deadline runs from the first answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    closed = None
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
        while len(body) < length:
            body += s.recv(4096)
        results[name + "_first"] = head.split(b" ")[1]
        t0 = time.time()
        closed = send_slowly(s, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", t0)
    except OSError:
        closed = time.time() - t0
    finally:
        s.close()
    results[name] = closed


def body():
    with tempfile.TemporaryDirectory(prefix="cp_http_slow_") as folder:
        corpus = sl.Corpus(n_docs=40, dim=16, seed=5)
        idx = sl.build_index(folder, corpus)
        srv = sl.Server(["--index", idx, "--timeout", str(TIMEOUT), "--no-access-log"])
        try:
            results = {}
            long_line = b"GET /health?" + b"x" * 60 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            headers = b"".join(b"X-Slow-%d: %s\r\n" % (i, b"y" * 8) for i in range(8)) + b"\r\n"
            threads = [
                threading.Thread(target=trickle, args=(srv.port, b"", long_line, results, "request line")),
                threading.Thread(target=trickle, args=(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\n",
                                                       headers, results, "headers")),
                threading.Thread(target=keep_alive_then_trickle, args=(srv.port, results, "keep-alive")),
            ]
            for t in threads:
                t.start()
            # a normal client on other connections, served all the while
            served, slowest = 0, 0.0
            t_end = time.time() + TIMEOUT + 0.5
            while time.time() < t_end:
                t0 = time.time()
                st, _, _ = srv.request("GET", "/health", timeout=5)
                slowest = max(slowest, time.time() - t0)
                served += st == 200
                time.sleep(0.1)
            for t in threads:
                t.join(GIVE_UP + 5)
            print("slow headers: closed after %r s (--timeout %d); %d normal requests served meanwhile, "
                  "slowest %.3f s" % (results, TIMEOUT, served, slowest), file=sys.stderr)
            check(served >= 10 and slowest < 1.0, "normal requests during the trickles: %d, slowest %.3f s" % (served, slowest))
            check(results.get("keep-alive_first") == b"200", "keep-alive first request: %r" % results.get("keep-alive_first"))
            for name in ("request line", "headers", "keep-alive"):
                took = results.get(name)
                check(took is not None and TIMEOUT - 0.5 <= took <= TIMEOUT + 1.0,
                      "%s trickled a byte every 0.4 s: closed after %r s, want about %d s (--timeout)" %
                      (name, took, TIMEOUT))
            st, _, text = srv.request("GET", "/metrics")
            line = [l for l in text.decode().splitlines() if l.startswith("colplaid_header_timeouts_total ")]
            check(st == 200 and line and int(line[0].split()[1]) >= 3, "header timeout counter: %r" % line)
            check(srv.alive(), "server alive")
        finally:
            check(srv.stop() == 0, "server exit status")


if __name__ == "__main__":
    sl.main(body)
