"""AsyncClient: the Client's methods as asyncio coroutines.

Each call runs the synchronous, keep-alive client on a thread of a bounded executor
(``loop.run_in_executor``); every executor thread keeps its own HTTP connection, so up to
``concurrency`` requests are really in flight at once (the server answers them in parallel
on its worker pool) while the event loop stays free.
"""
import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

from .client import Client

_METHODS = ("health", "metrics", "openapi", "indexes", "index_info", "create_index", "drop_index",
            "compact",
            "get_document", "upsert", "delete_documents", "has_write_routes", "search",
            "search_many", "explain", "encode", "rerank", "request")


class AsyncClient:
    def __init__(self, url: str = "http://127.0.0.1:8080", api_key: Optional[str] = None,
                 concurrency: int = 8, **kw: Any):
        self._client = Client(url, api_key=api_key, **kw)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="colplaid")

    @property
    def stats(self):
        return self._client.stats

    async def close(self):
        self._pool.shutdown(wait=True)
        self._client.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def __getattr__(self, name):
        if name not in _METHODS:
            raise AttributeError(name)
        fn = getattr(self._client, name)

        @functools.wraps(fn)
        async def call(*args, **kw):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kw))
        return call
