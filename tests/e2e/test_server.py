"""The real server: `python -m rag serve` in a subprocess (uvicorn, seeds indexed at first start), called over
loopback with httpx and with the `openai` package as a client."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from tests.rag_server import RagServer, start_server, stop_server

QUESTION = "What name did Israel give to its military operation against Iran?"
UNANSWERABLE = "What is the population of Brazil?"


def test_seeds_are_indexed_at_first_start(rag_server: RagServer) -> None:
    ready = httpx.get(rag_server.url + "/readyz").json()
    assert ready["ready"] and ready["documents"] == len(list(rag_server.seeds_dir.glob("*.txt")))
    log = rag_server.log_text()
    assert "the index is empty: indexing" in log and "embedding chunks" in log and "ready:" in log


def test_ask_over_http(rag_server: RagServer) -> None:
    r = httpx.post(rag_server.url + "/ask", json={"question": QUESTION}, headers=rag_server.headers, timeout=60)
    assert r.status_code == 200, r.text
    a = r.json()
    assert not a["refused"] and "Rising Lion" in a["text"]
    c = a["citations"][0]
    assert Path(c["source"]).read_text(encoding="utf-8")[c["start"]:c["end"]] == c["quote"]


def test_stream_over_http(rag_server: RagServer) -> None:
    events = []
    with httpx.stream("POST", rag_server.url + "/ask/stream", json={"question": UNANSWERABLE},
                      headers=rag_server.headers, timeout=60) as r:
        assert r.status_code == 200
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    assert [e for e, _ in events] == ["citations", "done"] and events[-1][1]["refused"]


def test_openai_client(rag_server: RagServer) -> None:
    client = OpenAI(base_url=rag_server.url + "/v1", api_key=rag_server.key, max_retries=0, timeout=60)
    assert "rag-extractive" in [m.id for m in client.models.list()]
    out = client.chat.completions.create(model="rag-extractive", messages=[{"role": "user", "content": QUESTION}])
    content = out.choices[0].message.content or ""
    assert "Rising Lion" in content and "\n\n[1] " in content
    assert out.model_extra and out.model_extra["citations"][0]["n"] == 1

    stream = client.chat.completions.create(model="rag", stream=True,
                                            messages=[{"role": "user", "content": QUESTION}])
    pieces, citations = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.model_extra and chunk.model_extra.get("citations"):
            citations = chunk.model_extra["citations"]
    assert "".join(pieces) == content and citations

    bad = OpenAI(base_url=rag_server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError):
        bad.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])


def test_upload_ask_delete_over_http(rag_server: RagServer) -> None:
    doc = b"Quarry Lake Bulletin\n\nThe Quarry Lake dam was finished in 1931 by the Hollis company.\n"
    r = httpx.post(rag_server.url + "/documents", files={"file": ("quarry.md", doc, "text/markdown")},
                   headers=rag_server.headers, timeout=120)
    assert r.status_code == 201, r.text
    doc_id = r.json()["document_ids"][0]
    try:
        a = httpx.post(rag_server.url + "/ask", json={"question": "When was the Quarry Lake dam finished?"},
                       headers=rag_server.headers, timeout=60).json()
        assert "1931" in a["text"] and a["citations"][0]["source"].endswith("quarry.md")
    finally:
        r = httpx.delete(f"{rag_server.url}/documents/{doc_id}", headers=rag_server.headers, timeout=60)
    assert r.status_code == 200


def test_event_loop_is_not_blocked_by_answers(rag_server: RagServer) -> None:
    """While several questions are being answered (CPU-bound, in worker threads), /healthz still answers at once:
    it finishes before the questions do."""
    done: list[tuple[str, float]] = []
    lock = threading.Lock()

    def ask(i: int) -> None:
        r = httpx.post(rag_server.url + "/ask", json={"question": f"{QUESTION} ({i})"},
                       headers=rag_server.headers, timeout=120)
        assert r.status_code == 200
        with lock:
            done.append(("ask", time.monotonic()))

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(ask, i) for i in range(6)]
        time.sleep(0.3)  # let the questions reach the workers
        assert httpx.get(rag_server.url + "/healthz", timeout=60).status_code == 200
        with lock:
            done.append(("health", time.monotonic()))
            answered_before_health = sum(1 for kind, _ in done if kind == "ask")
        for f in futures:
            f.result()
    assert answered_before_health < 6, "healthz waited for every question: the event loop was blocked"


def test_api_key_never_reaches_the_log(rag_server: RagServer) -> None:
    httpx.get(rag_server.url + "/documents", headers={"Authorization": "Bearer not-the-key-42"})
    httpx.get(rag_server.url + "/documents", headers=rag_server.headers)
    log = rag_server.log_text()
    assert rag_server.key not in log and "not-the-key-42" not in log
    assert '"GET /documents HTTP/1.1" 401' in log and '"GET /documents HTTP/1.1" 200' in log


@pytest.mark.slow
def test_graceful_shutdown_finishes_the_request_in_flight(tmp_path: Path) -> None:
    server = start_server(tmp_path / "srv")
    try:
        result: dict = {}

        def ask() -> None:
            result["r"] = httpx.post(server.url + "/ask", json={"question": QUESTION}, timeout=120)

        t = threading.Thread(target=ask)
        t.start()
        time.sleep(0.3)
        code = stop_server(server)
        t.join(60)
        assert result["r"].status_code == 200 and "Rising Lion" in result["r"].json()["text"]
        assert code in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
        assert "Application shutdown complete" in server.log_text()
    finally:
        stop_server(server)


@pytest.mark.slow
def test_local_llm_server_streams_and_queues(tmp_path: Path) -> None:
    """The real 1.5B behind the server: streamed tokens then a verified answer; with a queue of 1 waiting,
    a third concurrent question gets 503 + Retry-After instead of piling up."""
    from rag.errors import ModelUnavailableError
    from rag.llm_model import resolve_model_path
    from tests.llama_server import model_cache_dir

    try:
        gguf = resolve_model_path("qwen2.5-coder-1.5b", model_cache_dir())
    except ModelUnavailableError as exc:
        pytest.fail(f"{exc.message} ({exc.hint})")
    server = start_server(tmp_path / "srv", mode="local",
                          env={"RAG_LLM_MODEL": str(gguf), "RAG_LLM_QUEUE_SIZE": "1"})
    try:
        kinds, done = [], None
        with httpx.stream("POST", server.url + "/ask/stream", json={"question": QUESTION}, timeout=180) as r:
            assert r.status_code == 200
            event = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    kinds.append(event)
                elif line.startswith("data: ") and event == "done":
                    done = json.loads(line[6:])
        assert kinds[0] == "token" and kinds[-2:] == ["citations", "done"]
        assert done and done["mode"] == "local" and "Rising Lion" in done["text"] and done["citations"]

        def ask(i: int) -> httpx.Response:
            return httpx.post(server.url + "/ask", json={"question": f"{QUESTION} #{i}"}, timeout=300)

        with ThreadPoolExecutor(3) as pool:
            futures = []
            for i in range(3):
                futures.append(pool.submit(ask, i))
                time.sleep(0.5)
            statuses = sorted(f.result().status_code for f in futures)
            busy = [f.result() for f in futures if f.result().status_code == 503]
        assert statuses == [200, 200, 503], statuses
        assert int(busy[0].headers["retry-after"]) >= 1 and busy[0].json()["error"] == "server_busy"
        metrics = httpx.get(server.url + "/metrics").text
        assert 'rag_errors_total{error="ServerBusyError"} 1.0' in metrics
    finally:
        stop_server(server)
