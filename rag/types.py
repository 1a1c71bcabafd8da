"""Core value types shared by every stage. No heavy imports here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Document(_Frozen):
    """One loaded document: the text every chunk offset refers to."""

    id: str = Field(description="stable id: sha256 of the source (and external id), first 16 hex")
    source: str = Field(description="absolute path of the file the document came from")
    external_id: str | None = Field(None, description="id inside a multi-document file (BEIR `_id`)")
    title: str
    text: str
    content_hash: str = Field(description="sha256 of title + text, first 16 hex")
    pages: list[tuple[int, int]] = Field(
        default_factory=list,
        description="(page number, start offset) for paged formats such as PDF, in order",
    )

    def page_at(self, offset: int) -> int | None:
        """The page that holds character ``offset``, or None for unpaged formats."""
        page = None
        for number, start in self.pages:
            if start <= offset:
                page = number
            else:
                break
        return page


class Chunk(_Frozen):
    """A span of a document: ``text == document.text[start:end]``."""

    id: str
    doc_id: str
    ordinal: int
    text: str
    start: int
    end: int
    source: str
    title: str
    page: int | None = None
    external_id: str | None = None


class Hit(_Frozen):
    """A retrieved chunk with its score from one stage."""

    chunk: Chunk
    score: float
    stage: Literal["dense", "bm25", "hybrid", "rerank"]
    rank: int


class FailedDocument(_Frozen):
    source: str
    reason: str


class IngestReport(BaseModel):
    """What one indexing run did."""

    model_config = ConfigDict(extra="forbid")

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[FailedDocument] = Field(default_factory=list)
    skipped: list[FailedDocument] = Field(default_factory=list, description="files of a type we do not read")
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    documents_total: int = 0
    repaired: int = Field(0, description="documents re-indexed because the store was missing their chunks")
    seconds: dict[str, float] = Field(default_factory=dict)
