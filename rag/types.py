"""Core value types shared by every stage. No heavy imports here."""

from __future__ import annotations

from bisect import bisect_right
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
    sections: list[tuple[int, str]] = Field(
        default_factory=list,
        description="(start offset, heading path such as '4 Ciphers > 4.3 DER functions') in order; a span's "
        "section is the last entry starting at or before it",
    )

    def page_at(self, offset: int) -> int | None:
        """The page that holds character ``offset``, or None for unpaged formats (bisection: pages are in order)."""
        i = bisect_right(self.pages, offset, key=lambda p: p[1])
        return self.pages[i - 1][0] if i else None

    def section_at(self, offset: int) -> str | None:
        """The heading path of the section that holds character ``offset``, or None before any heading."""
        i = bisect_right(self.sections, offset, key=lambda s: s[0])
        return self.sections[i - 1][1] if i else None


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
    section: str | None = Field(None, description="heading path of the section the chunk starts in")

    @property
    def heading(self) -> str:
        """The document title and section path as one label ("Libgcrypt > 4 Ciphers > 4.3 Modes"); the section's
        first heading is left out when it repeats the title."""
        title, section = self.title.strip(), (self.section or "").strip()
        first, sep, rest = section.partition(" > ")
        if title and first.strip().casefold() == title.casefold():
            section = rest.strip() if sep else ""
        if title and section:
            return f"{title} > {section}"
        return section or title


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


# --------------------------------------------------------------------------- answers

AnswerMode = Literal["local", "hosted", "extractive"]  # same as rag.settings.AnswerMode


class Citation(_Frozen):
    """A passage an answer rests on: ``quote == document.text[start:end]`` exactly."""

    n: int = Field(description="the number shown in the answer text as [n]")
    chunk_id: str
    source: str
    title: str
    page: int | None = None
    section: str | None = Field(None, description="heading path of the section the quote is in")
    quote: str = Field(description="the exact cited text: the evidence sentence(s) in the document")
    start: int = Field(description="character offset of quote in the document text")
    end: int
    score: float = Field(description="support score of the best sentence that cites it (0..1)")


class SentenceSupport(_Frozen):
    """How one sentence of the answer was checked."""

    text: str = Field(description="the sentence as shown (citation markers included)")
    citations: list[int] = Field(default_factory=list, description="citation numbers it rests on")
    score: float = Field(description="support score against its best passage (0..1)")
    supported: bool
    method: Literal["checker", "verbatim", "span"] = Field(
        "checker", description="verbatim: the sentence is quoted from the passage; checker: rag.support scored it; "
        "span: a span the local LLM copied from the passage, kept by the calibrated acceptance model"
    )


class Passage(_Frozen):
    """One numbered evidence passage: ``text == document.text[start:end]``."""

    n: int
    chunk_id: str
    source: str
    title: str
    page: int | None = None
    section: str | None = None
    text: str
    start: int
    end: int
    score: float = Field(description="cross-encoder logit of its best sentence against the question")


class Answer(BaseModel):
    """What the pipeline returns for one question."""

    model_config = ConfigDict(extra="forbid")

    question: str
    standalone_question: str = Field(description="the question after resolving a follow-up (== question if none)")
    text: str = Field(description="the answer with [n] citation markers, or the refusal message")
    citations: list[Citation] = Field(default_factory=list)
    sentences: list[SentenceSupport] = Field(default_factory=list, description="support per shown sentence")
    dropped: list[SentenceSupport] = Field(
        default_factory=list, description="sentences the model wrote that were removed as unsupported"
    )
    refused: bool = False
    refusal_reason: Literal["no_evidence", "not_found", "not_supported"] | None = Field(
        None,
        description="no_evidence: the answerability decision refused before any LLM call; not_found: the LLM "
        "found no answer in the evidence; not_supported: nothing it wrote could be verified",
    )
    mode: AnswerMode
    model: str | None = Field(None, description="the LLM that wrote the answer (None in extractive mode)")
    fallback: bool = Field(False, description="the LLM's answer failed verification; an extractive answer is shown")
    evidence_score: float | None = Field(None, description="the gate's score of the best evidence (0..1)")
    evidence: list[Passage] = Field(
        default_factory=list, description="the numbered passages the answer was drawn from (shown to the LLM)"
    )
    signals: dict[str, float] = Field(
        default_factory=dict,
        description="what the refusal decisions read: the answerability signals (rag/answerability.py) and, in local "
        "mode, llm_yes (the LLM's probability that the passage states the answer to the question)",
    )
    seconds: dict[str, float] = Field(default_factory=dict, description="wall time per stage")
