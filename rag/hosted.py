"""A hosted LLM: any OpenAI-compatible chat-completions endpoint, over HTTP.

Works with llama.cpp's servers (``python -m llama_cpp.server``, ``llama-server``), vLLM, Ollama's
``/v1`` API, OpenAI itself and most proxies: everything that answers ``POST {base_url}/chat/completions``
and, for streaming, sends Server-Sent Events ending with ``data: [DONE]``.

Usage::

    model = HostedChatModel("http://127.0.0.1:8000/v1", "qwen-test")
    model.warm_up()                                   # GET {base_url}/models; fails fast if unreachable
    model.chat([{"role": "user", "content": "Say hi"}], max_tokens=16)
    for piece in model.stream([{"role": "user", "content": "Count to 3"}]):
        ...

Failures are typed: an unreachable server (refused, timed out, unknown host) raises
:class:`~rag.errors.ModelUnavailableError`; an HTTP error status, a malformed body or a stream cut
short raises :class:`~rag.errors.GenerationError`. The API key is sent as a bearer token and never
logged or shown in ``repr``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Self

import httpx

from rag.errors import GenerationError, ModelUnavailableError
from rag.llm_model import _check_messages, _check_sampling
from rag.stages import Message

logger = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 300
_UNREACHABLE_HINT = "is the server running? set RAG_HOSTED_BASE_URL (e.g. http://127.0.0.1:8000/v1)"


class HostedChatModel:
    """A :class:`~rag.llm_model.ChatModel` served by an OpenAI-compatible chat-completions endpoint.

    One ``httpx.Client`` (a connection pool, safe to share between threads) is kept per instance;
    :meth:`close` it, or use the model as a context manager, when done.

    Example::

        with HostedChatModel("http://127.0.0.1:8000/v1", "qwen-test") as model:
            model.warm_up()
            text = model.chat([{"role": "user", "content": "2+2?"}], max_tokens=8)
            pieces = list(model.stream([{"role": "user", "content": "2+2?"}], max_tokens=8))

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (a trailing slash is fine).
        model: the model name sent with every request (also :attr:`name`).
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        timeout: seconds allowed for connecting, and for each read (between two streamed events).

    Raises:
        ValueError: ``base_url`` is not an http(s) URL with a host, ``model`` is empty, or
            ``timeout`` is not positive.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        base = str(base_url).strip().rstrip("/")
        try:
            url = httpx.URL(base)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError(f"base_url is not a valid URL: {base_url!r} ({exc})") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, got {base_url!r}")
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty name, got {model!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.base_url = base
        self.model = model
        self.timeout = float(timeout)
        self._has_key = bool(api_key)
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(self.timeout))

    @property
    def name(self) -> str:
        """The model name (what answers report as their ``model``)."""
        return self.model

    def __repr__(self) -> str:
        key = ", api_key='***'" if self._has_key else ""
        return f"HostedChatModel({self.base_url!r}, model={self.model!r}{key}, timeout={self.timeout:g})"

    def close(self) -> None:
        """Close the connection pool (the model cannot be used afterwards)."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests

    def warm_up(self) -> None:
        """Check the endpoint answers: ``GET {base_url}/models`` (cheap, generates nothing).

        A model name missing from the server's list is only logged: several servers (llama.cpp's
        among them) answer for any name.

        Raises:
            ModelUnavailableError: the server cannot be reached, or answers with an error status
                (wrong URL, a rejected API key).
        """
        url = f"{self.base_url}/models"
        try:
            response = self._client.get(url)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, url) from exc
        if response.status_code >= 400:
            raise ModelUnavailableError(
                f"{url} answered HTTP {response.status_code}: {_error_message(response)}",
                hint=_status_hint(response.status_code, self._has_key),
            )
        try:
            ids = [m.get("id") for m in response.json().get("data", [])]
        except (ValueError, AttributeError, TypeError):
            ids = []
        if ids and self.model not in ids:
            logger.warning("model %r is not listed by %s (listed: %s)", self.model, url, ", ".join(map(str, ids[:10])))

    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
    ) -> str:
        """The assistant's reply.

        Args:
            messages: role/content dicts, oldest first.
            max_tokens: most tokens to generate.
            temperature: 0 is greedy.
            stop: strings that end the reply (not included in it).
            grammar: must be None (GBNF grammars are not part of the OpenAI API).

        Raises:
            ValueError: bad arguments, or a grammar.
            ModelUnavailableError: the server cannot be reached or timed out.
            GenerationError: an HTTP error status or a malformed response.
        """
        url, body = self._request(messages, max_tokens, temperature, stop, grammar, stream=False)
        try:
            response = self._client.post(url, json=body)
        except httpx.TransportError as exc:
            raise self._transport_error(exc, url) from exc
        self._raise_for_status(response, url)
        data = _json_body(response, url)
        return _message_text(data, url)

    def stream(
        self,
        messages: Sequence[Message],
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        grammar: str | None = None,
    ) -> Iterator[str]:
        """Like :meth:`chat`, yielding text pieces as the server sends them (``stream: true``).

        Arguments are checked at the call; the request is sent on the first ``next()``. The HTTP
        response stays open until the iterator is exhausted or closed: close an abandoned stream,
        e.g. with ``contextlib.closing``.

        Raises:
            ValueError: bad arguments, or a grammar (at the call).
            ModelUnavailableError: the server cannot be reached or timed out.
            GenerationError: an HTTP error status, a malformed event, an error event, or a stream
                that ended before the reply finished (no ``finish_reason``).
        """
        url, body = self._request(messages, max_tokens, temperature, stop, grammar, stream=True)
        return self._stream(url, body)

    def _request(
        self, messages: Sequence[Message], max_tokens: int, temperature: float,
        stop: Sequence[str] | None, grammar: str | None, *, stream: bool,
    ) -> tuple[str, dict[str, Any]]:
        if grammar is not None:
            raise ValueError("grammar is not supported by hosted (OpenAI-compatible) models; use a local model")
        checked = _check_messages(messages)
        _check_sampling(max_tokens, temperature)
        if isinstance(stop, str):
            raise ValueError(f"stop must be a list of strings, got the string {stop!r}")  # noqa: TRY004 (as messages)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": checked,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
        }
        stops = [s for s in (stop or ()) if s]
        if stops:
            body["stop"] = stops
        logger.debug("POST %s/chat/completions model=%s stream=%s", self.base_url, self.model, stream)
        return f"{self.base_url}/chat/completions", body

    def _stream(self, url: str, body: dict[str, Any]) -> Iterator[str]:
        try:
            with self._client.stream("POST", url, json=body, headers={"Accept": "text/event-stream"}) as response:
                self._raise_for_status(response, url)
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    # A server that ignores "stream": one JSON completion.
                    response.read()
                    text = _message_text(_json_body(response, url), url)
                    if text:
                        yield text
                    return
                finished = False
                for data in _sse_data(response.iter_lines(), url):
                    if data.strip() == "[DONE]":
                        break
                    chunk = _parse_json(data, url, what="stream event")
                    piece, reason = _delta(chunk, url)
                    if piece:
                        yield piece
                    finished = finished or reason is not None
                if not finished:
                    raise GenerationError(
                        f"{url} ended the stream before the reply finished (no finish_reason)",
                        hint="the server may have been interrupted by another request or crashed",
                    )
        except httpx.TransportError as exc:
            raise self._transport_error(exc, url) from exc

    # -- errors

    def _transport_error(self, exc: httpx.TransportError, url: str) -> ModelUnavailableError | GenerationError:
        if isinstance(exc, httpx.TimeoutException):
            kind = {httpx.ConnectTimeout: "connecting", httpx.ReadTimeout: "waiting for the reply"}.get(
                type(exc), "sending the request")
            return ModelUnavailableError(
                f"hosted model at {url} timed out {kind} (timeout {self.timeout:g} s)",
                hint=f"{_UNREACHABLE_HINT}; a slow server needs a larger timeout",
            )
        if isinstance(exc, httpx.ConnectError):
            return ModelUnavailableError(f"cannot reach the hosted model at {url}: {exc}", hint=_UNREACHABLE_HINT)
        # The connection was made but broke (reset, closed mid-response, bad HTTP).
        return GenerationError(f"connection to {url} failed while answering: {type(exc).__name__}: {exc}")

    def _raise_for_status(self, response: httpx.Response, url: str) -> None:
        if response.status_code < 400:
            return
        response.read()
        raise GenerationError(
            f"{url} answered HTTP {response.status_code}: {_error_message(response)}",
            hint=_status_hint(response.status_code, self._has_key),
        )


def _truncate(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_message(response: httpx.Response) -> str:
    """The server's own error message: OpenAI ``{"error": {"message"}}``, FastAPI ``{"detail"}``, or text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    message: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message")
        elif isinstance(error, str):
            message = error
        if message is None:
            message = data.get("detail", data.get("message"))
    if message is None:
        message = response.text or response.reason_phrase
    if not isinstance(message, str):
        message = json.dumps(message)
    return _truncate(message) or "(empty body)"


def _status_hint(status: int, has_key: bool) -> str | None:
    if status in (401, 403):
        return "check RAG_HOSTED_API_KEY" if has_key else "the server needs an API key: set RAG_HOSTED_API_KEY"
    if status == 404:
        return "check RAG_HOSTED_BASE_URL (it usually ends with /v1) and the model name"
    if status == 400:
        return "the prompt may not fit the server's context window"
    return None


def _parse_json(text: str, url: str, *, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise GenerationError(f"{url} sent a malformed {what} ({exc}): {_truncate(text, 120)!r}") from exc


def _json_body(response: httpx.Response, url: str) -> Any:
    return _parse_json(response.text, url, what="response body")


def _server_error(data: Any, url: str) -> None:
    """Raise for an error object sent with a success status (some servers do, mid-stream)."""
    if isinstance(data, dict) and data.get("error") is not None:
        error = data["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise GenerationError(f"{url} reported an error: {_truncate(str(message))}")


def _message_text(data: Any, url: str) -> str:
    _server_error(data, url)
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise GenerationError(
            f"{url} sent a response without choices[0].message.content: {_truncate(json.dumps(data), 200)}"
        ) from exc
    if not isinstance(content, str):
        raise GenerationError(f"{url} sent no text content (content is {content!r:.60})")
    return content


def _delta(chunk: Any, url: str) -> tuple[str, str | None]:
    """The text piece and finish reason of one streamed chunk (empty, None when it has neither)."""
    _server_error(chunk, url)
    if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
        raise GenerationError(f"{url} sent a stream event without choices: {_truncate(json.dumps(chunk), 200)}")
    if not chunk["choices"]:  # e.g. a final usage-only chunk
        return "", None
    choice = chunk["choices"][0]
    if not isinstance(choice, dict):
        raise GenerationError(f"{url} sent a malformed stream choice: {_truncate(json.dumps(choice), 200)}")
    delta = choice.get("delta") or {}
    piece = delta.get("content") if isinstance(delta, dict) else None
    if piece is not None and not isinstance(piece, str):
        raise GenerationError(f"{url} sent non-text content in a stream event: {piece!r:.60}")
    return piece or "", choice.get("finish_reason")


def _sse_data(lines: Iterator[str], url: str) -> Iterator[str]:
    """The ``data`` of each Server-Sent Event (multi-line data joined by newlines); comments skipped.

    Follows the SSE parsing rules: an event ends at a blank line; ``field: value`` loses one space
    after the colon; lines starting with ``:`` (keep-alive pings) are ignored. An ``event: error``
    raises :class:`GenerationError`.
    """
    data: list[str] = []
    event = ""
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if data:
                payload = "\n".join(data)
                if event == "error":
                    raise GenerationError(f"{url} sent an error event: {_truncate(payload)}")
                yield payload
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:  # the last event lacked its blank line
        payload = "\n".join(data)
        if event == "error":
            raise GenerationError(f"{url} sent an error event: {_truncate(payload)}")
        yield payload
