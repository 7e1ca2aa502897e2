"""Synchronous client for the colplaid HTTP API (standard library only).

Connections are kept alive and reused (one ``http.client`` connection per thread, so a
``Client`` may be shared by threads). Requests answered 503 or 429 are retried with
exponential backoff, honouring ``Retry-After``; a kept-alive connection the server closed
meanwhile is reopened transparently. Every error answer raises :class:`ColplaidError`
carrying the server's status, code and message.
"""
import base64
import http.client
import json
import random
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

__all__ = ["Client", "ColplaidError", "Hit", "SearchResult", "embeddings_b64", "decode_b64"]

Embeddings = Sequence[Sequence[float]]
Query = Union[str, Embeddings, Dict[str, Any]]


class ColplaidError(Exception):
    """An error answer of the server (or a transport failure: status 0, code TRANSPORT)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 request_id: Optional[str] = None, retry_after: Optional[float] = None):
        super().__init__("%s (HTTP %d): %s" % (code, status, message))
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after


@dataclass
class Passage:
    """The characters of a hit's best window (windowed indexes, ``index build --window``):
    ``text[start:end]`` of the stored text, in code points (a Python str slice)."""
    start: int
    end: int

    def of(self, text: str) -> str:
        return text[self.start:self.end]


@dataclass
class Hit:
    id: str
    score: float
    text: Optional[str] = None
    metadata: Any = None
    passage: Optional[Passage] = None  # windowed indexes only


@dataclass
class SearchResult:
    hits: List[Hit]
    timing_ms: Dict[str, float] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.hits)

    def __len__(self):
        return len(self.hits)

    def __getitem__(self, i):
        return self.hits[i]

    @property
    def ids(self) -> List[str]:
        return [h.id for h in self.hits]


def embeddings_b64(rows: Embeddings) -> Dict[str, Any]:
    """Token embeddings as the compact query form: little-endian float32, base64, shape."""
    rows = [list(r) for r in rows]
    if not rows or not rows[0]:
        raise ValueError("embeddings must be a non-empty list of non-empty rows")
    dim = len(rows[0])
    if any(len(r) != dim for r in rows):
        raise ValueError("every embedding row must have %d values" % dim)
    flat = [float(x) for r in rows for x in r]
    data = struct.pack("<%df" % len(flat), *flat)
    return {"embeddings_b64": base64.b64encode(data).decode("ascii"), "shape": [len(rows), dim]}


def decode_b64(b64: str, shape: Sequence[int]) -> List[List[float]]:
    """The inverse of :func:`embeddings_b64`: rows of floats."""
    n, dim = shape
    flat = struct.unpack("<%df" % (n * dim), base64.b64decode(b64))
    return [list(flat[i * dim:(i + 1) * dim]) for i in range(n)]


def _query(q: Query) -> Any:
    if isinstance(q, str):
        return {"text": q}
    if isinstance(q, dict):
        return q
    return {"embeddings": [[float(x) for x in row] for row in q]}


def _hit(h: Dict[str, Any]) -> Hit:
    p = h.get("passage")
    return Hit(id=h["id"], score=h["score"], text=h.get("text"), metadata=h.get("metadata"),
               passage=Passage(start=p["start"], end=p["end"]) if p else None)


def _seg(s: str) -> str:
    return urllib.parse.quote(s, safe="")


class Client:
    """A colplaid server at ``url`` (``http://host:port``; https is supported too).

    retries: how many times a 503/429 answer (or a failed connection) is retried;
    backoff: the first wait in seconds, doubled each retry up to max_backoff (a server's
    Retry-After takes precedence when it is longer).
    """

    def __init__(self, url: str = "http://127.0.0.1:8080", api_key: Optional[str] = None,
                 timeout: float = 60.0, retries: int = 4, backoff: float = 0.2,
                 max_backoff: float = 10.0, headers: Optional[Dict[str, str]] = None):
        u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("url must look like http://host:port, not %r" % url)
        self.url = url
        self._scheme = u.scheme
        self._host = u.hostname
        self._port = u.port or (443 if u.scheme == "https" else 80)
        self._base = u.path.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.headers = dict(headers or {})
        self._local = threading.local()
        self._all_conns = []
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "connections": 0}

    # ---- transport --------------------------------------------------------------------

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            c = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = c
            with self._lock:
                self._all_conns.append(c)
                self.stats["connections"] += 1
        return c

    def _drop_conn(self):
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def close(self):
        """Close every connection this client opened (from any thread)."""
        with self._lock:
            for c in self._all_conns:
                c.close()
            self._all_conns = []
        self._local = threading.local()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _once(self, method, path, data, headers):
        """One exchange on the kept-alive connection; a stale connection is reopened once."""
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, self._base + path, body=data, headers=headers)
                r = c.getresponse()
                body = r.read()
                if (r.getheader("Connection") or "").lower() == "close":
                    self._drop_conn()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, body
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                # The server closed an idle kept-alive connection: open a new one.
                self._drop_conn()
                if attempt:
                    raise

    def request(self, method: str, path: str, body: Any = None, raw: bool = False):
        """Send a request; returns the decoded JSON (or bytes with raw=True)."""
        headers = {"Accept": "application/json"}
        headers.update(self.headers)
        if self.api_key:
            headers["Authorization"] = "Bearer " + self.api_key
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        delay = self.backoff
        for attempt in range(self.retries + 1):
            self.stats["requests"] += 1
            try:
                status, h, payload = self._once(method, path, data, headers)
            except (OSError, http.client.HTTPException) as e:
                self._drop_conn()
                if attempt < self.retries:
                    self.stats["retries"] += 1
                    time.sleep(min(delay, self.max_backoff))
                    delay *= 2
                    continue
                raise ColplaidError(0, "TRANSPORT", "cannot reach %s: %s" % (self.url, e)) from None
            if status in (429, 503) and attempt < self.retries:
                self.stats["retries"] += 1
                wait = min(delay, self.max_backoff) * (0.75 + 0.5 * random.random())
                ra = h.get("retry-after")
                if ra is not None:
                    try:
                        wait = max(wait, min(float(ra), self.max_backoff * 6))
                    except ValueError:
                        pass
                time.sleep(wait)
                delay *= 2
                continue
            if status >= 400:
                raise self._error(status, h, payload)
            if raw:
                return payload
            try:
                return json.loads(payload)
            except ValueError:
                raise ColplaidError(status, "BAD_RESPONSE", "the server answered non-JSON: %r" % payload[:200])
        raise AssertionError("unreachable")

    @staticmethod
    def _error(status, h, payload):
        code, message, details = "HTTP_%d" % status, payload[:300].decode("utf-8", "replace"), None
        try:
            e = json.loads(payload)["error"]
            code, message, details = e.get("code", code), e.get("message", message), e.get("details")
        except (ValueError, KeyError, TypeError):
            pass
        ra = h.get("retry-after")
        try:
            ra = float(ra) if ra is not None else None
        except ValueError:
            ra = None
        return ColplaidError(status, code, message, details, h.get("x-request-id"), ra)

    # ---- service ----------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        return self.request("GET", "/health")

    def metrics(self) -> str:
        return self.request("GET", "/metrics", raw=True).decode()

    def openapi(self) -> Dict[str, Any]:
        return self.request("GET", "/openapi.json")

    # ---- indexes ----------------------------------------------------------------------

    def indexes(self) -> List[Dict[str, Any]]:
        return self.request("GET", "/v1/indexes")["indexes"]

    def index_info(self, name: str) -> Dict[str, Any]:
        return self.request("GET", "/v1/indexes/" + _seg(name))

    def create_index(self, name: str, codec_from: str) -> Dict[str, Any]:
        """Create an empty index NAME in the server's --index-dir with the codec of the served
        index codec_from (admin scope; fill it with upsert): the new index's information."""
        return self.request("POST", "/v1/indexes", {"name": name, "codec_from": codec_from})

    def drop_index(self, name: str) -> Dict[str, Any]:
        """Stop serving an index (admin scope); the server removes its file if it lives in
        its --index-dir: {dropped, path, file_removed, removal_pending, file_kept, ms}."""
        return self.request("DELETE", "/v1/indexes/" + _seg(name))

    def compact(self, name: str) -> Dict[str, Any]:
        """Compact the index now (admin scope): {index, segments_before, segments_after,
        tombstones_removed, ms}."""
        return self.request("POST", "/v1/indexes/%s/compact" % _seg(name), {})

    # ---- documents --------------------------------------------------------------------

    def get_document(self, index: str, doc_id: str) -> Dict[str, Any]:
        return self.request("GET", "/v1/indexes/%s/documents/%s" % (_seg(index), _seg(doc_id)))

    def upsert(self, index: str, documents: Iterable[Dict[str, Any]]) -> Any:
        """Upsert [{id, text? | embeddings? | embeddings_b64 + shape, metadata?}]."""
        return self.request("POST", "/v1/indexes/%s/documents" % _seg(index),
                            {"documents": list(documents)})

    def delete_documents(self, index: str, ids: Optional[Sequence[str]] = None,
                         filter: Optional[Dict[str, Any]] = None) -> Any:
        if (ids is None) == (filter is None):
            raise ValueError("give ids or filter")
        body = {"ids": list(ids)} if ids is not None else {"filter": filter}
        return self.request("DELETE", "/v1/indexes/%s/documents" % _seg(index), body)

    def has_write_routes(self) -> bool:
        """Whether the server serves the live-index write routes (per its OpenAPI document)."""
        paths = self.openapi().get("paths", {})
        return "post" in paths.get("/v1/indexes/{name}/documents", {})

    # ---- search -----------------------------------------------------------------------

    def _search_body(self, queries, k, ncells, threshold, ndocs, filter, ids, include, mode,
                     fusion=None):
        body: Dict[str, Any] = {"queries": [_query(q) for q in queries], "k": k}
        params = {}
        if ncells is not None:
            params["ncells"] = ncells
        if threshold is not None:
            params["centroid_score_threshold"] = threshold
        if ndocs is not None:
            params["ndocs"] = ndocs
        if params:
            body["params"] = params
        if filter is not None:
            body["filter"] = filter
        if ids is not None:
            body["ids"] = list(ids)
        if include:
            body["include"] = list(include)
        if mode is not None:
            body["mode"] = mode
        if fusion is not None:
            body["fusion"] = dict(fusion)
        return body

    def search_many(self, index: str, queries: Sequence[Query], k: int = 10,
                    ncells: Optional[int] = None, threshold: Optional[float] = None,
                    ndocs: Optional[int] = None, filter: Optional[Dict[str, Any]] = None,
                    ids: Optional[Sequence[str]] = None, include: Sequence[str] = (),
                    mode: Optional[str] = None,
                    fusion: Optional[Dict[str, Any]] = None) -> List[SearchResult]:
        """Several queries in one request (texts, embedding rows, or ready query objects
        such as :func:`embeddings_b64`'s); one SearchResult each, in order. mode: "plaid"
        (default; or "late"), "exact", "lexical" or "hybrid" (texts only); fusion (hybrid):
        {"method": "linear" | "rrf", "alpha": A, "normalize": "zscore" | "minmax", "depth": N}."""
        body = self._search_body(queries, k, ncells, threshold, ndocs, filter, ids, include, mode,
                                 fusion)
        out = self.request("POST", "/v1/indexes/%s/search" % _seg(index), body)
        return [SearchResult([_hit(h) for h in r["hits"]], r.get("timing_ms", {})) for r in out["results"]]

    def search(self, index: str, query: Query, k: int = 10, **kw) -> SearchResult:
        """One query: a text, token embeddings (rows of floats) or a query object."""
        return self.search_many(index, [query], k, **kw)[0]

    def explain(self, index: str, query: str, doc_id: str) -> Dict[str, Any]:
        """Which document token each query token matched, and how strongly."""
        return self.request("POST", "/v1/indexes/%s/explain" % _seg(index), {"query": query, "id": doc_id})

    # ---- model ------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], kind: str = "query", b64: bool = False) -> Dict[str, Any]:
        """Token embeddings of texts; with b64=True each result carries embeddings_b64 +
        shape (decode with :func:`decode_b64`)."""
        if isinstance(texts, str):
            texts = [texts]
        return self.request("POST", "/v1/encode", {"texts": list(texts), "kind": kind,
                                                   "format": "b64" if b64 else "json"})

    def rerank(self, query: Query, documents: Sequence[Union[str, Embeddings, Dict[str, Any]]]) -> List[Dict[str, Any]]:
        """MaxSim scores of documents (texts or embeddings) for a query, best first:
        [{index, score}]."""
        q = query if isinstance(query, str) else _query(query)
        docs = [d if isinstance(d, str) else _query(d) for d in documents]
        return self.request("POST", "/v1/rerank", {"query": q, "documents": docs})["results"]

