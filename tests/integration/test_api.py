"""Every route of the HTTP API through TestClient: real index, real cross-encoder, real Chroma.

The LLM of `local` mode is a scripted one (the real 1.5B runs in the slow tests), so the queue, timeout and
streaming paths are deterministic; extractive mode runs the real pipeline end to end.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag.errors import ModelUnavailableError
from rag.settings import Settings
from rag.testing import ScriptedChatModel
from tests.conftest import FIXTURES
from ui.api import create_app
from ui.service import Service, safe_filename

KEY = "sk-test-" + "x" * 24
AUTH = {"Authorization": f"Bearer {KEY}"}
ANSWERABLE = "How many panels does the solar array have?"
UNANSWERABLE = "What is the boiling point of mercury in Kelvin?"


class GatedLLM(ScriptedChatModel):
    """A scripted LLM whose stream waits until ``gate`` is set (to hold the LLM while other requests arrive)."""

    def __init__(self, default: str) -> None:
        super().__init__(default=default)
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()

    def stream(self, messages, **kw):  # type: ignore[no-untyped-def, override]
        pieces = list(super().stream(messages, **kw))
        self.started.set()
        if not self.gate.wait(20):
            raise RuntimeError("gate never opened")
        yield from pieces


def wait_ready(client: TestClient, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 200:
            return
        assert not r.json().get("error"), r.json()
        time.sleep(0.2)
    raise AssertionError("server not ready")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, minilm):
    """One app for the module: API key on, small body and upload limits, local mode = a gated scripted LLM."""
    from rag.retrieve import Retriever

    root = tmp_path_factory.mktemp("api")
    seeds = root / "seeds"
    shutil.copytree(FIXTURES / "corpus", seeds)
    settings = Settings(data_dir=root / "data", seeds_dir=seeds, answer_mode="extractive", api_key=KEY,
                        max_body_kb=16, max_upload_mb=0.05, llm_queue_size=0, request_timeout_s=30)
    llm = GatedLLM(default="4,200 panels [1]")
    service = Service(settings, llm=llm, retriever=Retriever(settings, embedder=minilm))
    app = create_app(settings, service=service)
    with TestClient(app, headers=AUTH) as client:
        wait_ready(client)
        yield client, service, llm


@pytest.fixture
def client(served) -> TestClient:
    return served[0]


def error_of(r) -> dict:  # type: ignore[no-untyped-def]
    body = r.json()
    assert set(body) == {"error", "message", "hint"}, body
    assert "Traceback" not in r.text
    return body


# --------------------------------------------------------------------------- health, docs, metrics


def test_health_ready_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["documents"] >= 3 and ready["default_mode"] == "extractive"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/docs/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower() and "fonts.googleapis" not in client.get("/redoc").text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert client.get(f"/static/docs/{asset}").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/ask", "/ask/stream", "/v1/chat/completions", "/documents", "/documents/{doc_id}", "/feedback",
            "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    r = client.get("/no/such/route")
    assert r.status_code == 404 and error_of(r)["error"] == "not_found"


def test_ui_is_mounted(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/chat/"
    r = client.get("/chat/")
    assert r.status_code == 200 and "gradio" in r.text.lower()


# --------------------------------------------------------------------------- /ask


def test_ask_answers_with_exact_citations(client: TestClient, served) -> None:
    r = client.post("/ask", json={"question": ANSWERABLE})
    assert r.status_code == 200, r.text
    a = r.json()
    assert not a["refused"] and "4,200" in a["text"] and a["mode"] == "extractive"
    c = a["citations"][0]
    text = Path(c["source"]).read_text(encoding="utf-8")
    assert text[c["start"]:c["end"]] == c["quote"] and c["source"].endswith("solar.txt")


def test_ask_refuses_without_evidence(client: TestClient) -> None:
    a = client.post("/ask", json={"question": UNANSWERABLE}).json()
    assert a["refused"] and a["refusal_reason"] == "no_evidence" and a["citations"] == []


def test_ask_sources_filter_and_top_k(client: TestClient) -> None:
    a = client.post("/ask", json={"question": ANSWERABLE, "sources": ["library.md"], "top_k": 2}).json()
    assert all(c["source"].endswith("library.md") for c in a["citations"])
    assert "4,200" not in a["text"]
    r = client.post("/ask", json={"question": ANSWERABLE, "sources": ["nope.txt"]})
    assert r.status_code == 400 and "nope.txt" in error_of(r)["message"]


def test_ask_local_mode_verifies_the_llm_draft(client: TestClient, served) -> None:
    a = client.post("/ask", json={"question": ANSWERABLE, "mode": "local"}).json()
    assert a["mode"] == "local" and a["text"].startswith("4,200 panels [") and a["citations"]


@pytest.mark.parametrize("body, status", [
    ({"question": "   "}, 400),                         # empty after stripping
    ({"question": "why\x00\x01\x02?"}, 400),            # control characters
    ({}, 422),                                          # missing question
    ({"question": "q", "mode": "psychic"}, 422),        # unknown mode
    ({"question": "q", "top_k": 0}, 422),
    ({"question": "q", "unknown": 1}, 422),             # extra fields are rejected
    ({"question": "q", "history": [{"role": "system", "content": "x"}]}, 422),
    ({"question": "q" * 2001}, 400),                    # RAG_MAX_QUESTION_CHARS
])
def test_ask_rejects_bad_requests(client: TestClient, body: dict, status: int) -> None:
    r = client.post("/ask", json=body)
    assert r.status_code == status, r.text
    assert error_of(r)["message"]


def test_ask_needs_json(client: TestClient) -> None:
    r = client.post("/ask", content=b"question=hi", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and error_of(r)["error"] == "unsupported_media_type"
    r = client.post("/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_body_size_limit(client: TestClient) -> None:
    r = client.post("/ask", json={"question": "q", "history": [{"role": "user", "content": "x" * 17_000}]})
    assert r.status_code == 413 and error_of(r)["error"] == "payload_too_large"


def test_api_key_is_required(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong-key-123"}, {"Authorization": KEY}):
        for method, path in (("post", "/ask"), ("get", "/documents"), ("get", "/metrics"), ("post", "/feedback"),
                             ("get", "/v1/models"), ("delete", "/documents/abc")):
            kwargs = {"json": {"question": ANSWERABLE}} if method == "post" else {}
            r = getattr(client, method)(path, headers=headers, **kwargs)
            assert r.status_code == 401, (path, headers, r.text)
            assert error_of(r)["error"] == "unauthorized"
    assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200  # probes stay open
    assert KEY not in caplog.text and "wrong-key-123" not in caplog.text


# --------------------------------------------------------------------------- /ask/stream


def sse_events(text: str) -> list[tuple[str, object]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines.get("event", "message"), json.loads(lines["data"])))
    return events


def test_stream_tokens_then_citations_then_done(client: TestClient) -> None:
    with client.stream("POST", "/ask/stream", json={"question": ANSWERABLE, "mode": "local"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    kinds = [k for k, _ in events]
    assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"token"}
    assert "".join(d["text"] for k, d in events if k == "token").strip() == "4,200 panels [1]"
    done = events[-1][1]
    assert done["citations"] == events[-2][1] and not done["refused"] and "first_token" in done["seconds"]


def test_stream_extractive_and_refusal(client: TestClient) -> None:
    events = sse_events(client.post("/ask/stream", json={"question": UNANSWERABLE}).text)
    assert [k for k, _ in events] == ["citations", "done"] and events[-1][1]["refused"]


def test_stream_rejects_bad_input_with_a_status(client: TestClient) -> None:
    r = client.post("/ask/stream", json={"question": ""})
    assert r.status_code == 400 and error_of(r)["error"] == "bad_query"


# --------------------------------------------------------------------------- the local-LLM queue and timeouts


def test_full_llm_queue_answers_503_with_retry_after(served) -> None:
    client, service, llm = served
    llm.gate.clear()
    llm.started.clear()
    result: dict = {}

    def first() -> None:
        result["r"] = client.post("/ask", json={"question": ANSWERABLE, "mode": "local"})

    t = threading.Thread(target=first)
    t.start()
    try:
        assert llm.started.wait(20)
        r = client.post("/ask", json={"question": ANSWERABLE, "mode": "local"})
        assert r.status_code == 503 and error_of(r)["error"] == "server_busy"
        assert int(r.headers["retry-after"]) >= 1
        # extractive questions do not wait for the LLM
        assert client.post("/ask", json={"question": ANSWERABLE}).status_code == 200
        metrics = client.get("/metrics").text
        assert "rag_llm_queue_in_flight 1.0" in metrics
    finally:
        llm.gate.set()
        t.join(30)
    assert result["r"].status_code == 200
    assert service.llm_queue.in_flight == 0


def test_timeout_is_504_and_stream_reports_error(served) -> None:
    client, service, llm = served
    old = service.settings.request_timeout_s
    llm.gate.clear()
    try:
        service.settings.request_timeout_s = 1.5
        r = client.post("/ask", json={"question": ANSWERABLE, "mode": "local"})
        assert r.status_code == 504 and error_of(r)["error"] == "request_timeout"
        llm.gate.set()
        deadline = time.monotonic() + 20
        while service.llm_queue.in_flight and time.monotonic() < deadline:
            time.sleep(0.1)
        llm.gate.clear()
        events = sse_events(client.post("/ask/stream", json={"question": ANSWERABLE, "mode": "local"}).text)
        assert events[-1][0] == "error" and events[-1][1]["error"] == "request_timeout"
    finally:
        service.settings.request_timeout_s = old
        llm.gate.set()
    deadline = time.monotonic() + 20
    while service.llm_queue.in_flight and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service.llm_queue.in_flight == 0


def test_hosted_mode_without_endpoint_is_400(tmp_path: Path, served) -> None:
    _, service, _ = served
    settings = service.settings.model_copy(update={"api_key": None})
    svc = Service(settings, retriever=service.retriever)
    svc.readiness.ready = True
    with TestClient(create_app(settings, service=svc, with_ui=False, start=False)) as c:
        r = c.post("/ask", json={"question": ANSWERABLE, "mode": "hosted"})
        assert r.status_code == 400 and "RAG_HOSTED_BASE_URL" in error_of(r)["hint"]


# --------------------------------------------------------------------------- not ready, rate limit, 500s, CORS


def test_not_ready_is_503_and_rate_limit_is_429(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", answer_mode="extractive", rate_limit_per_minute=2)
    with TestClient(create_app(settings, with_ui=False, start=False)) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and not ready.json()["ready"]
        r = c.post("/ask", json={"question": ANSWERABLE})
        assert r.status_code == 503 and error_of(r)["error"] == "server_busy" and r.headers["retry-after"]
        assert c.post("/ask", json={"question": ANSWERABLE}).status_code == 503
        r = c.post("/ask", json={"question": ANSWERABLE})
        assert r.status_code == 429 and error_of(r)["error"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1


def test_unexpected_errors_are_500_without_a_stack_trace(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        layout = None

        def search(self, *a, **k):  # type: ignore[no-untyped-def]
            raise RuntimeError("secret internal detail")

    settings = Settings(data_dir=tmp_path / "d", answer_mode="extractive")
    svc = Service(settings, retriever=Broken())
    svc.readiness.ready = True
    with TestClient(create_app(settings, service=svc, with_ui=False, start=False),
                    raise_server_exceptions=False) as c:
        r = c.post("/ask", json={"question": ANSWERABLE})
    assert r.status_code == 500
    assert error_of(r)["error"] == "internal_error" and "secret" not in r.text


def test_cors_is_off_unless_configured(client: TestClient, tmp_path: Path) -> None:
    origin = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/ask", headers=origin).headers
    settings = Settings(data_dir=tmp_path / "d", cors_origins=["http://app.example"])
    with TestClient(create_app(settings, with_ui=False, start=False)) as c:
        r = c.options("/ask", headers={**origin, "Origin": "http://app.example"})
        assert r.headers.get("access-control-allow-origin") == "http://app.example"


# --------------------------------------------------------------------------- OpenAI-compatible


def test_chat_completions(client: TestClient) -> None:
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [
        "rag", "rag-local", "rag-hosted", "rag-extractive"]
    body = {"model": "rag-extractive", "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": ANSWERABLE}], "temperature": 0.2}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    content = out["choices"][0]["message"]["content"]
    assert out["object"] == "chat.completion" and "4,200" in content
    assert out["citations"] and f"[{out['citations'][0]['n']}] " in content.split("\n\n", 1)[1]


def test_chat_completions_stream(client: TestClient) -> None:
    body = {"model": "rag", "stream": True, "messages": [{"role": "user", "content": ANSWERABLE}]}
    text = client.post("/v1/chat/completions", json=body).text
    datas = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "4,200" in content and chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"]


@pytest.mark.parametrize("body, status", [
    ({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404),
    ({"model": "rag", "messages": [{"role": "assistant", "content": "hi"}]}, 400),
    ({"model": "rag", "messages": []}, 422),
])
def test_chat_completions_errors(client: TestClient, body: dict, status: int) -> None:
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == status and error_of(r)


# --------------------------------------------------------------------------- documents


def test_upload_list_ask_delete(client: TestClient, served) -> None:
    _, service, _ = served
    doc = b"Kestrel Bay Notes\n\nThe Kestrel Bay ferry carries 312 passengers on each crossing.\n"
    r = client.post("/documents", files={"file": ("../../etc/kestrel bay.txt", io.BytesIO(doc), "text/plain")})
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["filename"] == "kestrel_bay.txt" and len(up["document_ids"]) == 1 and up["report"]["added"] == 1
    stored = service.uploads_dir / "kestrel_bay.txt"
    assert stored.read_bytes() == doc
    listed = {d["id"]: d for d in client.get("/documents").json()}
    assert listed[up["document_ids"][0]]["uploaded"] and listed[up["document_ids"][0]]["filename"] == "kestrel_bay.txt"

    a = client.post("/ask", json={"question": "How many passengers does the Kestrel Bay ferry carry?"}).json()
    assert "312" in a["text"] and a["citations"][0]["source"] == str(stored.resolve())

    r = client.delete(f"/documents/{up['document_ids'][0]}")
    assert r.status_code == 200 and r.json()["filename"] == "kestrel_bay.txt"
    assert not stored.exists()
    assert up["document_ids"][0] not in {d["id"] for d in client.get("/documents").json()}
    a = client.post("/ask", json={"question": "How many passengers does the Kestrel Bay ferry carry?"}).json()
    assert "312" not in a["text"]
    r = client.delete(f"/documents/{up['document_ids'][0]}")
    assert r.status_code == 404 and error_of(r)["error"] == "document_not_found"


@pytest.mark.parametrize("name, data, status", [
    ("tool.exe", b"MZ\x90\x00", 415),
    ("noext", b"hello", 415),
    ("broken.pdf", b"%PDF-1.4 this is not really a pdf", 422),
    ("empty.txt", b"", 422),
    ("binary.txt", bytes(range(256)) * 4, 422),
    ("big.txt", b"word " * 12_000, 413),  # over RAG_MAX_UPLOAD_MB (0.05 MB here)
])
def test_bad_uploads_change_nothing(client: TestClient, served, name: str, data: bytes, status: int) -> None:
    _, service, _ = served
    before = client.get("/documents").json()
    files_before = sorted(p.name for p in service.uploads_dir.glob("*")) if service.uploads_dir.exists() else []
    r = client.post("/documents", files={"file": (name, io.BytesIO(data), "application/octet-stream")})
    assert r.status_code == status, r.text
    assert error_of(r)["message"]
    assert client.get("/documents").json() == before
    files_after = sorted(p.name for p in service.uploads_dir.glob("*")) if service.uploads_dir.exists() else []
    assert files_after == files_before
    assert not list((service.uploads_dir / ".staging").glob("*"))


def test_upload_request_over_the_body_limit_is_413(client: TestClient) -> None:
    r = client.post("/documents", files={"file": ("huge.txt", io.BytesIO(b"a" * 200_000), "text/plain")})
    assert r.status_code == 413


def test_safe_filename() -> None:
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..\\..\\win.ini") == "win.ini"
    assert safe_filename("a b;c$.txt") == "a_b_c_.txt"
    assert safe_filename("...") == "upload"
    assert safe_filename(".hidden.md") == "hidden.md"
    assert len(safe_filename("x" * 500 + ".pdf")) <= 120 and safe_filename("x" * 500 + ".pdf").endswith(".pdf")


# --------------------------------------------------------------------------- feedback and metrics


def test_feedback_is_stored(client: TestClient, served) -> None:
    _, service, _ = served
    a = client.post("/ask", json={"question": ANSWERABLE}).json()
    r = client.post("/feedback", json={"rating": "down", "question": a["question"], "answer": a["text"],
                                       "citations": a["citations"], "mode": "extractive", "comment": "too long"})
    assert r.status_code == 201
    rows = [json.loads(line) for line in service.feedback_path.read_text().splitlines()]
    row = next(x for x in rows if x["id"] == r.json()["id"])
    assert row["rating"] == "down" and row["question"] == ANSWERABLE and row["citations"] == a["citations"]
    assert client.post("/feedback", json={"rating": "meh", "question": "q", "answer": "a"}).status_code == 422


def test_metrics_count_requests_answers_and_refusals(client: TestClient) -> None:
    client.post("/ask", json={"question": UNANSWERABLE})
    text = client.get("/metrics").text
    for name in ("rag_http_requests_total", "rag_http_request_seconds_bucket", "rag_answer_stage_seconds_bucket",
                 "rag_answers_total", "rag_refusals_total", "rag_documents"):
        assert name in text, name
    assert 'rag_refusals_total{mode="extractive",reason="no_evidence"}' in text
    assert 'route="/ask",status="200"' in text


def test_a_cancelled_question_does_no_work(served) -> None:
    """A question the server gave up on (timeout, client gone) stops at the next stage: no retrieval, no LLM."""
    _, service, llm = served
    cancel = threading.Event()
    cancel.set()
    calls = len(llm.calls)
    for mode in ("extractive", "local"):
        assert list(service.pipeline(mode).stream(ANSWERABLE, cancel=cancel)) == []
    assert len(llm.calls) == calls


def test_llm_wait_is_reported_as_its_own_stage(served) -> None:
    client, service, llm = served
    llm.gate.clear()
    llm.started.clear()
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("a", client.post("/ask", json={
        "question": ANSWERABLE, "mode": "local"}).json()))
    t.start()
    try:
        assert llm.started.wait(20)
        service.llm_queue.capacity = 2  # let one more in: it waits for the model
        t2 = threading.Thread(target=lambda: out.setdefault("b", client.post("/ask", json={
            "question": ANSWERABLE, "mode": "local"}).json()))
        t2.start()
        time.sleep(1.0)
    finally:
        llm.gate.set()
    t.join(30)
    t2.join(30)
    service.llm_queue.capacity = 1
    waits = sorted(a["seconds"].get("llm_queue", 0.0) for a in (out["a"], out["b"]))
    assert waits[1] >= 0.5 and waits[0] < waits[1]


class BrokenLLM(ScriptedChatModel):
    def warm_up(self) -> None:
        raise ModelUnavailableError("cannot open /srv/secret-volume/model.gguf", hint="token=abc123 in RAG_X")


def test_start_up_failure_details_stay_in_the_log(tmp_path: Path, minilm, caplog: pytest.LogCaptureFixture) -> None:
    from rag.retrieve import Retriever

    seeds = tmp_path / "seeds"
    shutil.copytree(FIXTURES / "corpus", seeds)
    settings = Settings(data_dir=tmp_path / "data", seeds_dir=seeds, answer_mode="local")
    service = Service(settings, llm=BrokenLLM(), retriever=Retriever(settings, embedder=minilm))
    with caplog.at_level("ERROR"), TestClient(create_app(settings, service=service)) as client:
        deadline = time.monotonic() + 120
        while service.readiness.stage != "failed" and time.monotonic() < deadline:
            time.sleep(0.2)
        ready = client.get("/readyz")
        asked = client.post("/ask", json={"question": ANSWERABLE})
    assert ready.status_code == 503 and ready.json()["error"] == "the server failed to start"
    assert asked.status_code == 503 and error_of(asked)["message"] == "the server failed to start"
    for r in (ready, asked):
        assert "secret-volume" not in r.text and "abc123" not in r.text
    assert "secret-volume" in caplog.text  # the operator sees it


def test_dependencies_come_from_app_state_and_can_be_overridden(served) -> None:
    from ui.api import authorized, get_service

    client, service, _ = served
    app = client.app
    bare = TestClient(app)  # no API key
    assert bare.get("/documents").status_code == 401
    app.dependency_overrides[authorized] = lambda: None
    try:
        assert bare.get("/documents").status_code == 200
    finally:
        app.dependency_overrides.clear()
    assert bare.get("/documents").status_code == 401
    assert get_service.__doc__ and app.state.service is service
