"""The stage interfaces of the answer pipeline: what each stage needs from the part that fills it.

Core layer (no heavy imports): the pipeline (:mod:`rag.pipeline`) is typed against these protocols, the real parts
(``index.embed``, :mod:`rag.retrieve`, :mod:`rag.rerank`, :mod:`rag.support`, :mod:`rag.llm_model`,
:mod:`rag.hosted`) satisfy them structurally, and so do the fakes of the tests. Haystack's component protocols are
the model: a stage is anything with the right methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from rag.types import Answer, Hit

__all__ = [
    "AbstentionProbe", "AnswerEvent", "ChatModel", "Embedder", "Event", "Message", "Reranker", "Retriever",
    "SupportJudge", "SupportVerdict", "TokenEvent", "YesNoJudge",
]

Message = Mapping[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

TokenEvent = tuple[Literal["token"], str]
"""A piece of the LLM's raw draft, as it is generated."""
AnswerEvent = tuple[Literal["answer"], "Answer"]
"""The final, verified answer (always the last event of a stream)."""
Event = TokenEvent | AnswerEvent
"""What :meth:`rag.pipeline.Pipeline.stream` yields: a tagged union on the first item."""


@runtime_checkable
class Embedder(Protocol):
    """Texts to L2-normalised vectors (all-MiniLM-L6-v2 by default: ``index.embed``)."""

    def embed_documents(self, texts: Sequence[str]) -> Any: ...

    def embed_query(self, text: str) -> Any: ...


@runtime_checkable
class Retriever(Protocol):
    """Candidate chunks for a question (hybrid dense + BM25: :class:`rag.retrieve.Retriever`)."""

    def search(self, query: str, *, k: int | None = None, sources: Sequence[str] | None = None) -> list[Hit]: ...

    def warm_up(self) -> None: ...


@runtime_checkable
class Reranker(Protocol):
    """A cross-encoder: reorders chunks and scores sentences against the question (:mod:`rag.rerank`)."""

    def rerank(self, query: str, hits: list[Hit], top_n: int) -> list[Hit]: ...

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...

    def warm_up(self) -> None: ...


class SupportVerdict(Protocol):
    """What the pipeline reads of a support check."""

    @property
    def score(self) -> float: ...

    @property
    def supported(self) -> bool: ...


@runtime_checkable
class SupportJudge(Protocol):
    """Does a passage support a claim, read with its question? (:class:`rag.support.SupportChecker`)"""

    def check(self, premise: str, claim: str, *, question: str | None = None) -> SupportVerdict: ...

    def warm_up(self) -> None: ...


@runtime_checkable
class ChatModel(Protocol):
    """What the generation stage needs from an LLM (local llama.cpp, a hosted endpoint, or a test fake)."""

    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
    ) -> str:
        """The assistant's reply to ``messages``."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        """The same reply as :meth:`chat`, in pieces as they are generated."""
        ...

    def warm_up(self) -> None: ...


@runtime_checkable
class AbstentionProbe(Protocol):
    """An LLM whose first-token probabilities can be read (local mode's P(NOT FOUND))."""

    def next_token_probability(self, messages: Sequence[Message], word: str) -> float: ...


@runtime_checkable
class YesNoJudge(Protocol):
    """An LLM that can score a yes/no question (the groundedness check)."""

    def yes_no_probability(self, messages: Sequence[Message]) -> float:
        """P("yes") for the first token of the reply, renormalised over yes/no."""
        ...
