"""Test doubles that plug into the pipeline and the :class:`rag.models.Models` container, in one place.

``Models(settings, llms={"local": ScriptedChatModel([...])})`` gives a pipeline a deterministic LLM; everything
else (index, cross-encoder, support checker) stays real. Nothing in the product imports this module.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rag.llm_model import _check_messages, _check_sampling
from rag.stages import Message

__all__ = ["ScriptedChatModel"]


class ScriptedChatModel:
    """A deterministic :class:`ChatModel` for tests: replies are enqueued, prompts are recorded.

    Example::

        fake = ScriptedChatModel(["Paris [S1]."])
        fake.chat([{"role": "user", "content": "Capital of France?"}])  # -> "Paris [S1]."
        fake.prompts[-1][0]["content"]                                  # -> "Capital of France?"

    Args:
        replies: replies returned in order by :meth:`chat` / :meth:`stream`.
        default: reply used once the queue is empty; None raises instead.
        probabilities: values returned in order by :meth:`yes_no_probability`.
    """

    def __init__(
        self,
        replies: Iterable[str] = (),
        *,
        default: str | None = None,
        probabilities: Iterable[float] = (),
    ) -> None:
        self._replies: deque[str] = deque(replies)
        self._probabilities: deque[float] = deque(probabilities)
        self._next_token: deque[float] = deque()
        self.next_token_default = 0.0
        self.default = default
        self.prompts: list[list[dict[str, str]]] = []
        self.calls: list[dict[str, Any]] = []

    def enqueue(self, *replies: str) -> None:
        """Add replies to the end of the queue."""
        self._replies.extend(replies)

    def enqueue_probability(self, *values: float) -> None:
        """Add values for :meth:`yes_no_probability`."""
        for v in values:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"probability must be in [0, 1], got {v}")
        self._probabilities.extend(values)

    def warm_up(self) -> None:
        """Nothing to load."""

    def _next(self, method: str, messages: Sequence[Message], **kwargs: Any) -> str:
        checked = _check_messages(messages)
        _check_sampling(kwargs["max_tokens"], kwargs["temperature"])
        self.prompts.append(checked)
        self.calls.append({"method": method, "messages": checked, **kwargs})
        if self._replies:
            reply = self._replies.popleft()
        elif self.default is not None:
            reply = self.default
        else:
            raise RuntimeError(f"ScriptedChatModel: no reply enqueued for call {len(self.calls)}")
        for s in kwargs.get("stop") or ():
            if s and s in reply:
                reply = reply[: reply.index(s)]
        return reply

    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
    ) -> str:
        """The next scripted reply (cut at the first ``stop`` string)."""
        return self._next("chat", messages, max_tokens=max_tokens, temperature=temperature,
                          stop=list(stop or ()), grammar=grammar)

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        """The next scripted reply in word-sized pieces (the prompt is recorded at the call)."""
        reply = self._next("stream", messages, max_tokens=max_tokens, temperature=temperature,
                           stop=list(stop or ()), grammar=grammar)
        return iter(_pieces(reply))

    def next_token_probability(self, messages: Sequence[Message], word: str) -> float:
        """The next value enqueued with :meth:`enqueue_next_token`, else ``next_token_default``."""
        checked = _check_messages(messages)
        self.calls.append({"method": "next_token_probability", "messages": checked, "word": word})
        return self._next_token.popleft() if self._next_token else self.next_token_default

    def enqueue_next_token(self, *values: float) -> None:
        """Add values for :meth:`next_token_probability`."""
        for v in values:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"probability must be in [0, 1], got {v}")
        self._next_token.extend(values)

    def yes_no_probability(self, messages: Sequence[Message]) -> float:
        """The next enqueued probability."""
        checked = _check_messages(messages)
        self.prompts.append(checked)
        self.calls.append({"method": "yes_no_probability", "messages": checked})
        if not self._probabilities:
            raise RuntimeError(f"ScriptedChatModel: no probability enqueued for call {len(self.calls)}")
        return self._probabilities.popleft()


def _pieces(text: str) -> list[str]:
    """Split text into pieces that join back to it: each word with the whitespace before it."""
    pieces: list[str] = []
    start = 0
    for i in range(1, len(text)):
        if text[i].isspace() and not text[i - 1].isspace():
            pieces.append(text[start:i])
            start = i
    if text:
        pieces.append(text[start:])
    return pieces
