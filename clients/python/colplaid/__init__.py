"""Python client for the colplaid late-interaction retrieval server (standard library only).

    from colplaid import Client
    c = Client("http://127.0.0.1:8080")
    for hit in c.search("scifact", "what causes rain", k=5, include=["text"]):
        print(hit.score, hit.id, hit.text)

AsyncClient offers the same methods as coroutines.
"""
from .client import Client, ColplaidError, Hit, Passage, SearchResult, decode_b64, embeddings_b64
from .aio import AsyncClient

__all__ = ["Client", "AsyncClient", "ColplaidError", "Hit", "Passage", "SearchResult", "embeddings_b64",
           "decode_b64"]
__version__ = "0.1.0"
