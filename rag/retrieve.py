"""Question -> ranked passages: dense (Chroma), BM25, or hybrid (weighted reciprocal rank fusion)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from index.embed import Embedder, make_embedder
from index.ingest import rebuild_bm25
from index.layout import IndexLayout, WriteLock
from index.lexical import Bm25Index
from rag.errors import BadQueryError, IndexLockedError
from rag.settings import RetrievalMode, Settings
from rag.types import Hit

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 4000


def fuse(rankings: Sequence[tuple[Sequence[str], float]], k: float) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion: ``sum(weight / (k + rank))`` over the rankings, best first."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        if weight <= 0:
            continue
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever:
    """Searches one index. Loads the embedder and BM25 once and reuses them; safe to share across threads.

    Example:
        >>> r = Retriever(settings)
        >>> [h.chunk.source for h in r.search("who signed the agreement", k=3)]
    """

    def __init__(self, settings: Settings, *, index_name: str | None = None,
                 embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.layout = IndexLayout.open(settings, index_name)
        self.embedder = embedder or make_embedder(settings.embed_model, batch_size=settings.embed_batch_size,
                                                  onnx_cache=settings.data_dir / "models")
        self._bm25: Bm25Index | None = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the embedder, open the store and the BM25 index now rather than on the first query."""
        self.embedder.embed_query("warm up")
        _ = self.layout.store
        self._lexical()

    def _lexical(self) -> Bm25Index | None:
        """The current BM25 index: reloaded when a writer published a new one, rebuilt when the last writer
        died before publishing (only while no writer is active; otherwise the previous one serves)."""
        with self._lock:
            published = Bm25Index.published_generation(self.layout.dir)
            if self._bm25 is None or (published is not None and published != self._bm25.generation):
                self._bm25 = Bm25Index.load(self.layout.dir)
            current = self._bm25.generation if self._bm25 is not None else None
            if current != self.layout.manifest.generation and self.layout.manifest.counts()[1]:
                try:
                    with WriteLock(self.layout.dir / "write.lock", self.layout.name):
                        rebuild_bm25(self.layout)
                    self._bm25 = Bm25Index.load(self.layout.dir)
                except IndexLockedError:
                    pass  # a writer is at work and will publish a fresh index when done
            return self._bm25

    def search(self, query: str, *, k: int | None = None, mode: RetrievalMode | None = None,
               sources: Sequence[str] | None = None) -> list[Hit]:
        """The ``k`` best chunks for ``query``.

        Args:
            query: the question or keywords.
            k: how many hits (default ``settings.top_k``).
            mode: dense, bm25 or hybrid (default ``settings.retrieval_mode``).
            sources: only chunks from these source paths (absolute, or relative to the working directory).

        Raises:
            BadQueryError: the query is empty, too long or not text.
        """
        query = _clean_query(query)
        k = k or self.settings.top_k
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        mode = mode or self.settings.retrieval_mode
        if mode not in ("dense", "bm25", "hybrid"):
            raise ValueError(f"mode must be dense, bm25 or hybrid, got {mode!r}")
        wanted_sources = [str(Path(s).expanduser().resolve()) for s in sources] if sources else None
        depth = max(k, self.settings.candidates) if mode == "hybrid" else k

        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        if mode in ("dense", "hybrid"):
            vector = self.embedder.embed_query(query)
            dense = self.layout.store.query(vector, depth, sources=wanted_sources)
        if mode in ("bm25", "hybrid"):
            bm25 = self._lexical()
            if bm25 is not None:
                allowed = self.layout.manifest.chunk_ids_of_sources(wanted_sources) if wanted_sources else None
                lexical = bm25.query(query, depth, allowed=allowed)

        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = lexical
        else:
            ranked = fuse(
                [([c for c, _ in dense], self.settings.dense_weight),
                 ([c for c, _ in lexical], self.settings.bm25_weight)],
                self.settings.rrf_k,
            )
        ranked = ranked[: k * 2]  # room for chunks deleted since the store answered
        chunks = self.layout.manifest.chunks([cid for cid, _ in ranked])
        hits = [
            Hit(chunk=chunks[cid], score=score, stage=mode, rank=0) for cid, score in ranked if cid in chunks
        ][:k]
        return [h.model_copy(update={"rank": i}) for i, h in enumerate(hits, start=1)]


def _clean_query(query: object) -> str:
    if not isinstance(query, str):
        raise BadQueryError(f"the query must be text, got {type(query).__name__}")
    if "\x00" in query:
        raise BadQueryError("the query contains binary data (NUL bytes)")
    query = query.strip()
    if not query:
        raise BadQueryError("the query is empty", hint="type a question or some keywords")
    if len(query) > MAX_QUERY_CHARS:
        raise BadQueryError(f"the query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
    return query
