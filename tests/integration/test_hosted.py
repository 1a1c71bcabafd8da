"""Tests for rag/hosted.py: the OpenAI-compatible client.

Fast tests talk to real HTTP servers (a closed port, a stdlib ``http.server`` scripted per test) for
the error paths and the wire format; slow tests talk to a real ``python -m llama_cpp.server``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rag.errors import GenerationError, ModelUnavailableError
from rag.hosted import HostedChatModel
from rag.llm_model import ChatModel

if TYPE_CHECKING:
    from tests.llama_server import LlamaServer


USER = [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- a scripted HTTP server


@dataclass
class Reply:
    """What the stub sends: a status, a content type and a body (a list is sent piece by piece, flushed)."""

    status: int = 200
    body: bytes | list[bytes] = b""
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Stub:
    url: str
    replies: dict[str, Reply] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)


def completion(text: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}]}).encode()


def sse_chunk(content: str | None = None, finish: str | None = None, role: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def sse(*events: dict[str, Any] | str, sep: bytes = b"\n") -> list[bytes]:
    out = []
    for e in events:
        data = e if isinstance(e, str) else json.dumps(e)
        out.append(b"data: " + data.encode() + sep + sep)
    return out


@pytest.fixture
def stub() -> Iterator[Stub]:
    """A real HTTP server on 127.0.0.1 answering each path with ``stub.replies[path]`` (404 otherwise)."""
    state = Stub(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            state.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                   "json": json.loads(raw) if raw else None})
            reply = state.replies.get(self.path, Reply(404, b'{"detail":"Not Found"}'))
            if reply.delay:
                time.sleep(reply.delay)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            if isinstance(reply.body, list):
                self.send_header("Connection", "close")
                self.end_headers()
                for piece in reply.body:
                    self.wfile.write(piece)
                    self.wfile.flush()
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

        do_GET = do_POST = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --------------------------------------------------------------------------- construction


def test_is_a_chat_model_with_name_and_safe_repr() -> None:
    model = HostedChatModel("http://127.0.0.1:8000/v1/", "qwen-test", api_key="sk-secret-123")
    assert isinstance(model, ChatModel)
    assert model.name == "qwen-test"
    assert model.base_url == "http://127.0.0.1:8000/v1"
    assert "sk-secret-123" not in repr(model)
    assert repr(model) == "HostedChatModel('http://127.0.0.1:8000/v1', model='qwen-test', api_key='***', timeout=120)"
    model.close()


@pytest.mark.parametrize("kwargs", [{"base_url": "127.0.0.1:8000"}, {"base_url": "ftp://h/v1"},
                                    {"base_url": "http:///v1"}, {"model": ""}, {"timeout": 0}])
def test_bad_construction_is_a_value_error(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"base_url": "http://127.0.0.1:8000/v1", "model": "m", **kwargs}
    with pytest.raises(ValueError):
        HostedChatModel(**args)


# --------------------------------------------------------------------------- unreachable server


def test_closed_port_is_model_unavailable(closed_url: str) -> None:
    model = HostedChatModel(closed_url, "m", timeout=5)
    with pytest.raises(ModelUnavailableError) as info:
        model.chat(USER)
    assert f"{closed_url}/chat/completions" in info.value.message
    assert "RAG_HOSTED_BASE_URL" in (info.value.hint or "")
    with pytest.raises(ModelUnavailableError, match="/models"):
        model.warm_up()
    with pytest.raises(ModelUnavailableError):
        next(model.stream(USER))


def test_unknown_host_is_model_unavailable() -> None:
    model = HostedChatModel("http://no-such-host.invalid/v1", "m", timeout=5)
    with pytest.raises(ModelUnavailableError, match="no-such-host.invalid"):
        model.chat(USER)


def test_timeout_is_model_unavailable(stub: Stub) -> None:
    stub.replies["/v1/chat/completions"] = Reply(body=completion("late"), delay=1.0)
    model = HostedChatModel(stub.url, "m", timeout=0.2)
    with pytest.raises(ModelUnavailableError, match="timed out"):
        model.chat(USER)


# --------------------------------------------------------------------------- HTTP errors and bad bodies


def test_server_error_is_generation_error_with_its_message(stub: Stub) -> None:
    body = json.dumps({"error": {"message": "the GPU caught fire", "type": "server_error"}}).encode()
    stub.replies["/v1/chat/completions"] = Reply(500, body)
    model = HostedChatModel(stub.url, "m")
    with pytest.raises(GenerationError) as info:
        model.chat(USER)
    assert "500" in info.value.message and "the GPU caught fire" in info.value.message
    with pytest.raises(GenerationError, match="the GPU caught fire"):
        list(model.stream(USER))


def test_long_error_messages_are_truncated(stub: Stub) -> None:
    stub.replies["/v1/chat/completions"] = Reply(503, b"overloaded " * 500, content_type="text/plain")
    with pytest.raises(GenerationError) as info:
        HostedChatModel(stub.url, "m").chat(USER)
    assert "503" in info.value.message and "overloaded" in info.value.message
    assert len(info.value.message) < 500


def test_rejected_key_gives_a_hint(stub: Stub) -> None:
    stub.replies["/v1/chat/completions"] = Reply(401, b'{"detail":"Invalid API key"}')
    with pytest.raises(GenerationError, match="401: Invalid API key") as info:
        HostedChatModel(stub.url, "m", api_key="wrong").chat(USER)
    assert "RAG_HOSTED_API_KEY" in (info.value.hint or "")


@pytest.mark.parametrize("body", [b"{not json", b'{"choices": []}', b'{"choices": [{"message": {}}]}', b"[1, 2]",
                                  b'{"error": {"message": "oops"}}'])
def test_malformed_body_is_generation_error(stub: Stub, body: bytes) -> None:
    stub.replies["/v1/chat/completions"] = Reply(200, body)
    with pytest.raises(GenerationError):
        HostedChatModel(stub.url, "m").chat(USER)


def test_warm_up_checks_models_endpoint(stub: Stub) -> None:
    model = HostedChatModel(stub.url, "m")
    with pytest.raises(ModelUnavailableError, match="404") as info:  # e.g. base_url without /v1
        model.warm_up()
    assert "/v1" in (info.value.hint or "")
    stub.replies["/v1/models"] = Reply(body=b'{"object": "list", "data": [{"id": "m", "object": "model"}]}')
    model.warm_up()
    assert stub.requests[-1]["method"] == "GET" and stub.requests[-1]["path"] == "/v1/models"


# --------------------------------------------------------------------------- bad arguments


def test_bad_messages_and_grammar_are_value_errors() -> None:
    model = HostedChatModel("http://127.0.0.1:9/v1", "m")  # never contacted: checks come first
    for bad in ([], "hi", [{"role": "robot", "content": "x"}], [{"role": "user", "content": 3}]):
        with pytest.raises(ValueError):
            model.chat(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            model.stream(bad)  # type: ignore[arg-type]  # raised at the call, not at next()
    with pytest.raises(ValueError, match="grammar"):
        model.chat(USER, grammar='root ::= "yes"')
    with pytest.raises(ValueError, match="grammar"):
        model.stream(USER, grammar='root ::= "yes"')
    with pytest.raises(ValueError, match="max_tokens"):
        model.chat(USER, max_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        model.chat(USER, temperature=-1)
    with pytest.raises(ValueError, match="stop"):
        model.chat(USER, stop="\n")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the wire format


def test_request_body_and_headers(stub: Stub) -> None:
    stub.replies["/v1/chat/completions"] = Reply(body=completion("Paris"))
    model = HostedChatModel(stub.url + "/", "my-model", api_key="sk-test")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]
    assert model.chat(messages, max_tokens=7, temperature=0.5, stop=["\n", ""]) == "Paris"
    req = stub.requests[-1]
    assert req["method"] == "POST" and req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    assert req["json"] == {"model": "my-model", "messages": messages, "max_tokens": 7, "temperature": 0.5,
                           "stream": False, "stop": ["\n"]}
    HostedChatModel(stub.url, "my-model").chat(USER)
    assert "Authorization" not in stub.requests[-1]["headers"]
    assert "stop" not in stub.requests[-1]["json"]


def test_stream_parses_server_sent_events(stub: Stub) -> None:
    body = [b": ping - 2024-01-01\r\n\r\n"]
    body += sse(sse_chunk(role="assistant"), sse_chunk("Hel"), sep=b"\r\n")
    body += [b"event: message\ndata: " + json.dumps(sse_chunk("lo,")).encode() + b"\n\n"]
    body += [b"data:" + json.dumps(sse_chunk(" wor")).encode() + b"\n\n"]  # no space after the colon
    body += sse(sse_chunk("ld"), sse_chunk(finish="stop"), {"object": "chat.completion.chunk", "choices": []},
                "[DONE]")
    stub.replies["/v1/chat/completions"] = Reply(body=body, content_type="text/event-stream")
    model = HostedChatModel(stub.url, "m")
    assert list(model.stream(USER, max_tokens=9)) == ["Hel", "lo,", " wor", "ld"]
    req = stub.requests[-1]
    assert req["json"]["stream"] is True and req["headers"]["Accept"] == "text/event-stream"


def test_stream_cut_short_is_generation_error(stub: Stub) -> None:
    # llama_cpp.server with interrupt_requests=true ends a stream like this when another request comes in
    body = sse(sse_chunk(role="assistant"), sse_chunk("Hel"), "[DONE]")
    stub.replies["/v1/chat/completions"] = Reply(body=body, content_type="text/event-stream")
    pieces: list[str] = []
    with pytest.raises(GenerationError, match="before the reply finished"):
        for piece in HostedChatModel(stub.url, "m").stream(USER):
            pieces.append(piece)  # noqa: PERF402 (keep what came before the error)
    assert pieces == ["Hel"]


@pytest.mark.parametrize("body", [
    sse(sse_chunk("a"), "{broken"),
    sse(sse_chunk("a"), {"error": {"message": "context overflow"}}),
    [b"event: error\ndata: context overflow\n\n"],
    sse({"no": "choices"}),
])
def test_bad_stream_events_are_generation_errors(stub: Stub, body: list[bytes]) -> None:
    stub.replies["/v1/chat/completions"] = Reply(body=body, content_type="text/event-stream")
    with pytest.raises(GenerationError):
        list(HostedChatModel(stub.url, "m").stream(USER))


def test_stream_accepts_a_plain_json_reply(stub: Stub) -> None:
    stub.replies["/v1/chat/completions"] = Reply(body=completion("all at once"))
    assert list(HostedChatModel(stub.url, "m").stream(USER)) == ["all at once"]


def test_abandoned_stream_can_be_closed(stub: Stub) -> None:
    body = sse(*(sse_chunk(f"w{i} ") for i in range(50)), sse_chunk(finish="stop"), "[DONE]")
    stub.replies["/v1/chat/completions"] = Reply(body=body, content_type="text/event-stream")
    model = HostedChatModel(stub.url, "m")
    with contextlib.closing(model.stream(USER)) as pieces:
        assert next(pieces) == "w0 "
    stub.replies["/v1/chat/completions"] = Reply(body=completion("still works"))
    assert model.chat(USER) == "still works"


# --------------------------------------------------------------------------- a real llama.cpp server (slow)

ARITHMETIC = [{"role": "system", "content": "You are a calculator."},
              {"role": "user", "content": "What is 2+2? Answer with a number only."}]
COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas. Output only the numbers."}]


@pytest.fixture(scope="module")
def hosted(llama_server: LlamaServer) -> Iterator[HostedChatModel]:
    with HostedChatModel(llama_server.base_url, llama_server.model) as model:
        yield model


@pytest.mark.slow
def test_real_server_warm_up_and_name(hosted: HostedChatModel, llama_server: LlamaServer) -> None:
    hosted.warm_up()
    assert hosted.name == "qwen-test"
    assert isinstance(hosted, ChatModel)


@pytest.mark.slow
def test_real_server_chat_answers(hosted: HostedChatModel) -> None:
    text = hosted.chat(ARITHMETIC, max_tokens=8)
    assert text.strip() and "4" in text


@pytest.mark.slow
def test_real_server_stream_matches_chat(hosted: HostedChatModel) -> None:
    whole = hosted.chat(COUNT, max_tokens=40)
    pieces = list(hosted.stream(COUNT, max_tokens=40))
    assert len(pieces) > 1
    assert "".join(pieces) == whole
    assert "1" in whole and "3" in whole


@pytest.mark.slow
def test_real_server_honours_stop_and_max_tokens(hosted: HostedChatModel) -> None:
    full = hosted.chat(COUNT, max_tokens=40)
    assert "4" in full and "5" in full
    cut = hosted.chat(COUNT, max_tokens=40, stop=["5"])
    assert "5" not in cut and "4" in cut
    assert full.startswith(cut)
    streamed = "".join(hosted.stream(COUNT, max_tokens=40, stop=["5"]))
    assert streamed == cut
    short = hosted.chat(COUNT, max_tokens=2)
    assert len(short) < len(full)


@pytest.mark.slow
def test_real_server_concurrent_requests(hosted: HostedChatModel) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append("".join(hosted.stream(ARITHMETIC, max_tokens=8)))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 2
    assert all("4" in r for r in results)


@pytest.fixture(scope="module")
def keyed_server(llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A second real server that checks an API key (same cached GGUF file)."""
    from rag.llm_model import resolve_model_path
    from tests.llama_server import model_cache_dir, start_llama_server, stop_llama_server

    path = resolve_model_path("qwen2.5-coder-0.5b", model_cache_dir())
    server = start_llama_server(path, Path(tmp_path_factory.mktemp("keyed")), extra_args=["--api_key", "sk-right"])
    try:
        yield server
    finally:
        stop_llama_server(server.process)


@pytest.mark.slow
def test_real_server_api_key(keyed_server: LlamaServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    right = HostedChatModel(keyed_server.base_url, keyed_server.model, api_key="sk-right")
    right.warm_up()
    assert "4" in right.chat(ARITHMETIC, max_tokens=8)
    wrong = HostedChatModel(keyed_server.base_url, keyed_server.model, api_key="sk-wrong")
    with pytest.raises(GenerationError, match="401") as info:
        wrong.chat(ARITHMETIC, max_tokens=8)
    assert "RAG_HOSTED_API_KEY" in (info.value.hint or "")
    with pytest.raises(ModelUnavailableError, match="401"):
        HostedChatModel(keyed_server.base_url, keyed_server.model).warm_up()
    assert "sk-right" not in caplog.text and "sk-wrong" not in caplog.text
