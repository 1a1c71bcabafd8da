"""The vector store: the only home of ``chromadb``.

Embedded ``PersistentClient`` under the data directory by default; ``HttpClient`` when a server URL is
configured, through the same code. Chroma never embeds anything here: vectors are always passed in
(its default embedding function would try to download a model).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from rag.errors import StoreError
from rag.types import Chunk

logger = logging.getLogger(__name__)

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def _client(chroma_dir: Path, url: str | None):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if url:
            u = urlparse(url)
            return chromadb.HttpClient(
                host=u.hostname or "127.0.0.1",
                port=u.port or (443 if u.scheme == "https" else 8000),
                ssl=u.scheme == "https",
                settings=chroma_settings,
            )
        chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(chroma_dir), settings=chroma_settings)
    except Exception as exc:  # chromadb raises plain Exception/ValueError for connection problems
        where = url or str(chroma_dir)
        raise StoreError(f"cannot open Chroma at {where}: {exc}",
                         hint="check RAG_CHROMA_URL, or unset it to use the embedded store") from exc


class ChromaStore:
    """One Chroma collection of chunk vectors (cosine space).

    Example:
        >>> store = ChromaStore(Path(".rag/chroma"), "default-abc123")
        >>> store.upsert(chunks, vectors)
        >>> store.query(vector, k=5)   # [(chunk_id, similarity), ...]
    """

    def __init__(self, chroma_dir: Path, collection: str, *, url: str | None = None) -> None:
        self.location = url or str(chroma_dir)
        self.collection_name = collection
        self._client = _client(chroma_dir, url)
        try:
            self._col = self._client.get_or_create_collection(
                name=collection, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
            self._max_batch = int(self._client.get_max_batch_size())
        except Exception as exc:
            raise StoreError(f"cannot open Chroma collection {collection!r} at {self.location}: {exc}") from exc

    def count(self) -> int:
        return int(self._col.count())

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Insert or replace chunks by id (idempotent: the same chunk twice is stored once)."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        for s in range(0, len(chunks), self._max_batch):
            part = chunks[s : s + self._max_batch]
            self._col.upsert(
                ids=[c.id for c in part],
                embeddings=np.asarray(vectors[s : s + self._max_batch], dtype=np.float32),
                documents=[c.text for c in part],
                metadatas=[_metadata(c) for c in part],
            )

    def delete_ids(self, ids: Sequence[str]) -> None:
        for s in range(0, len(ids), self._max_batch):
            self._col.delete(ids=list(ids[s : s + self._max_batch]))

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """Remove every chunk of these documents, including strays left by an interrupted run."""
        for s in range(0, len(doc_ids), 500):
            self._col.delete(where={"doc_id": {"$in": list(doc_ids[s : s + 500])}})

    def ids(self) -> set[str]:
        """All chunk ids in the collection."""
        out: set[str] = set()
        offset, page = 0, 5000
        while True:
            got = self._col.get(include=[], limit=page, offset=offset)
            out.update(got["ids"])
            if len(got["ids"]) < page:
                return out
            offset += page

    def query(self, vector: np.ndarray, k: int, *, sources: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Nearest chunks as ``(chunk_id, cosine similarity)``, best first."""
        where = {"source": {"$in": list(sources)}} if sources else None
        res = self._col.query(
            query_embeddings=np.asarray([vector], dtype=np.float32),
            n_results=k,  # Chroma returns fewer when the collection holds fewer
            where=where,
            include=["distances"],
        )
        return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0], strict=True)]

    def drop(self) -> None:
        self._client.delete_collection(self.collection_name)


def _metadata(c: Chunk) -> dict[str, str | int]:
    meta: dict[str, str | int] = {
        "doc_id": c.doc_id, "source": c.source, "title": c.title, "start": c.start, "end": c.end,
        "ordinal": c.ordinal,
    }
    if c.page is not None:
        meta["page"] = c.page
    if c.external_id is not None:
        meta["external_id"] = c.external_id
    if c.section is not None:
        meta["section"] = c.section
    return meta
