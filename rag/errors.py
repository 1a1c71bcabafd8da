"""Typed errors: failures we expect and can explain to a user.

A refusal ("the documents do not say") is never an error: it is a value on ``Answer``.
"""

from __future__ import annotations


class RagError(Exception):
    """A failure we expect and can explain to a user."""

    http_status = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class PathNotFoundError(RagError):
    """A path given to the indexer does not exist."""

    http_status = 404


class UnreadableDocumentError(RagError):
    """One document could not be read; ingest reports it and goes on."""

    http_status = 422


class IndexLockedError(RagError):
    """Another process is writing to the same index."""

    http_status = 409


class IndexNotReadyError(RagError):
    """The index is empty or missing."""

    http_status = 503


class ModelUnavailableError(RagError):
    """Model weights or the runtime needed for them are missing."""

    http_status = 503


class StoreError(RagError):
    """The vector store (Chroma) could not be reached or used."""

    http_status = 503


class BadQueryError(RagError):
    """A question or query that cannot be processed (empty, too long, binary)."""

    http_status = 400


class GenerationError(RagError):
    """The language model (local or hosted) failed while answering."""

    http_status = 502


# --------------------------------------------------------------------------- server (ui/api.py)


class UnauthorizedError(RagError):
    """The API key is missing or wrong."""

    http_status = 401


class DocumentNotFoundError(RagError):
    """No indexed document has this id."""

    http_status = 404


class ModelNotFoundError(RagError):
    """No answer model by this name (the OpenAI-compatible endpoint's `model`)."""

    http_status = 404


class PayloadTooLargeError(RagError):
    """A request body or an upload is over its size limit."""

    http_status = 413


class UnsupportedMediaTypeError(RagError):
    """A request body or an upload of a type we do not take."""

    http_status = 415


class RateLimitedError(RagError):
    """Too many requests from one client; retry after ``retry_after`` seconds."""

    http_status = 429

    def __init__(self, message: str, *, hint: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class ServerBusyError(RagError):
    """The server cannot take the request now (LLM queue full, still starting); retry after ``retry_after`` s."""

    http_status = 503

    def __init__(self, message: str, *, hint: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class RequestTimeoutError(RagError):
    """A request ran past ``RAG_REQUEST_TIMEOUT_S`` and was stopped."""

    http_status = 504
