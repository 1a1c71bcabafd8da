"""Split documents into chunks with llama-index, keeping exact character offsets.

The only home of ``llama_index`` in the project. Every chunk satisfies
``chunk.text == document.text[chunk.start:chunk.end]``, so a citation can quote an exact span.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from rag.types import Chunk, Document


def _bundled_tiktoken_cache() -> None:
    """Point tiktoken at llama-index's bundled cache (there is no network for a download)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return
    import llama_index.core

    cache = Path(llama_index.core.__file__).parent / "_static" / "tiktoken_cache"
    if cache.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


@lru_cache(maxsize=8)
def _splitter(chunk_size: int, chunk_overlap: int):
    _bundled_tiktoken_cache()
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap, include_metadata=False)


def _locate(text: str, piece: str, cursor: int) -> tuple[int, int] | None:
    """Where ``piece`` sits in ``text`` at or after ``cursor`` (whitespace-tolerant)."""
    at = text.find(piece, cursor)
    if at < 0:
        at = text.find(piece)
    if at >= 0:
        return at, at + len(piece)
    words = piece.split()
    if not words:
        return None
    pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
    m = pattern.search(text, cursor) or pattern.search(text)
    return (m.start(), m.end()) if m else None


def chunk_document(doc: Document, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Chunks of ``doc`` in order, ids ``{doc.id}:{ordinal:04d}``, each with the page and the section (heading
    path) it starts in: ``doc.page_at(chunk.start)`` and ``doc.section_at(chunk.start)``."""
    pieces = _splitter(chunk_size, chunk_overlap).split_text(doc.text)
    page_starts = [start for _, start in doc.pages]
    section_starts = [start for start, _ in doc.sections]
    if page_starts != sorted(page_starts) or section_starts != sorted(section_starts):
        raise ValueError(f"document {doc.id}: pages and sections must be in offset order")
    chunks: list[Chunk] = []
    cursor = 0
    for piece in pieces:
        if not piece.strip():
            continue
        span = _locate(doc.text, piece.strip(), cursor)
        if span is None:  # the splitter rewrote the text beyond whitespace: keep going without this piece
            continue
        start, end = span
        # the next chunk overlaps this one, so it starts somewhere after this chunk's start
        cursor = start + 1
        ordinal = len(chunks)
        chunks.append(
            Chunk(
                id=f"{doc.id}:{ordinal:04d}",
                doc_id=doc.id,
                ordinal=ordinal,
                text=doc.text[start:end],
                start=start,
                end=end,
                source=doc.source,
                title=doc.title,
                page=doc.page_at(start),
                external_id=doc.external_id,
                section=doc.section_at(start),
            )
        )
    return chunks
