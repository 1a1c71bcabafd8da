"""The chat UI in a real browser: Debian's chromium driven by Playwright, against the real server (``rag_server``).

Login with the API key, an answer with its highlighted citation, a refusal that looks different, thumbs up stored
in feedback.jsonl, an uploaded document answered from, and nothing fetched from the network. Screenshots go to
``$RAG_TEST_ARTIFACTS`` (else ``test-artifacts/``). A missing chromium is a failure, never a skip:
``make test`` installs it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.rag_server import REPO, RagServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# read at import: the autouse fixture in conftest.py removes every RAG_* variable before each test
ARTIFACTS = Path(os.environ.get("RAG_TEST_ARTIFACTS") or REPO / "test-artifacts")
SEED_TEXT = (REPO / "seeds" / "china_iran_ties.txt").read_text(encoding="utf-8")

ANSWERABLE = "What name did Israel give to its military operation against Iran?"
UNANSWERABLE = "What is the population of Brazil?"
TIMEOUT_MS = 45_000  # one answer; the machine may be busy with other tests


@pytest.fixture(scope="module")
def page(rag_server: RagServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A logged-in chat page in a fresh chromium profile; ``page.foreign_requests`` lists off-host requests."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the browser test needs Debian's chromium. Install it with "
                    "`apt-get install -y chromium` (`make test` does it first).", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - a broken install
        pytest.fail(f"playwright is not installed in this environment ({exc}): pip install -e '.[dev]'",
                    pytrace=False)
    profile = tmp_path_factory.mktemp("chromium-profile")
    host = urlparse(rag_server.url).hostname
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            pg = context.pages[0] if context.pages else context.new_page()
            pg.set_default_timeout(TIMEOUT_MS)
            pg.foreign_requests = []
            pg.on("request", lambda r: _note_request(pg, r.url, host))
            pg.goto(rag_server.url + "/")
            assert urlparse(pg.url).path == "/chat/", pg.url
            # a wrong password is refused, the key lets us in
            pg.get_by_label("username").fill("tester")
            pg.get_by_label("password").fill("not-the-key")
            pg.get_by_role("button", name="Login").click()
            pg.get_by_text(re.compile("incorrect", re.IGNORECASE)).first.wait_for()
            pg.get_by_label("username").fill("tester")  # the form is cleared after a failed login
            pg.get_by_label("password").fill(rag_server.key)
            pg.get_by_role("button", name="Login").click()
            pg.locator("#question textarea").wait_for()
            pg.locator("#documents li", has_text="china_iran_ties.txt").wait_for()
            yield pg
        finally:
            context.close()


def _note_request(pg: Any, url: str, host: str | None) -> None:
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname != host:
        pg.foreign_requests.append(url)


def _ask(pg: Any, question: str) -> None:
    """Type the question, press Enter, wait until the sources panel shows this question's result."""
    box = pg.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    pg.locator("#sources .src-head", has_text=question).wait_for()


def _new_chat(pg: Any) -> None:
    pg.locator("#clear").click()
    pg.locator("#sources .sources-empty").wait_for()


def _screenshot(pg: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    pg.screenshot(path=str(path), full_page=True)
    return path


def _bubble_background(locator: Any) -> str:
    return str(locator.evaluate("e => getComputedStyle(e.closest('.bot')).backgroundColor"))


def _feedback_lines(server: RagServer) -> list[dict[str, Any]]:
    path = server.data_dir / "feedback.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_answer_cites_the_seed_and_refusal_looks_different(page: Any, rag_server: RagServer) -> None:
    _new_chat(page)
    _ask(page, ANSWERABLE)
    answer = page.locator('#chat [data-testid="bot"]', has_text="Rising Lion").first
    answer.wait_for()
    assert "[1]" in answer.inner_text()
    # the sources panel: the document, the passage, the quoted span highlighted and found in the seed verbatim
    cite = page.locator("#sources .cite").first
    cite.wait_for()
    assert "china_iran_ties.txt" in cite.locator(".cite-where").inner_text()
    mark = cite.locator("mark").first
    quoted = mark.text_content() or ""
    assert "Operation Rising Lion" in quoted
    assert quoted in SEED_TEXT
    assert len(cite.locator(".cite-body").text_content() or "") > len(quoted)  # context around the quote
    # the sources under the answer in the chat
    assert "china_iran_ties.txt" in page.locator("#chat .thought").first.inner_text()
    assert page.locator("#sources .refusal").count() == 0

    _ask(page, UNANSWERABLE)
    refusal = page.locator("#sources .refusal")
    refusal.wait_for()
    assert "Not in the documents" in refusal.inner_text()
    assert page.locator("#sources .cite").count() == 0
    badge = page.locator("#chat .refusal").last
    badge.wait_for()
    assert "population of Brazil" not in badge.inner_text()
    assert _bubble_background(badge) != _bubble_background(answer), "a refusal must not look like an answer"
    path = _screenshot(page, "chat-answer-and-refusal.png")
    assert path.stat().st_size > 10_000
    assert not page.foreign_requests, f"the page fetched from the network: {page.foreign_requests}"


def test_thumbs_up_stores_question_answer_and_citations(page: Any, rag_server: RagServer) -> None:
    _new_chat(page)
    _ask(page, ANSWERABLE)
    page.locator("#sources .cite").first.wait_for()
    before = len(_feedback_lines(rag_server))
    page.locator("#chat").get_by_role("button", name="Like", exact=True).first.click()
    page.locator("#feedback-status", has_text="Thanks").wait_for()
    deadline = time.monotonic() + 10
    while len(_feedback_lines(rag_server)) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = _feedback_lines(rag_server)
    assert len(lines) == before + 1, lines
    entry = lines[-1]
    assert entry["rating"] == "up"
    assert entry["source"] == "ui"
    assert entry["question"] == ANSWERABLE
    assert "Rising Lion" in entry["answer"]
    assert entry["citations"], entry
    first = entry["citations"][0]
    assert first["source"].endswith("china_iran_ties.txt")
    assert SEED_TEXT[first["start"]:first["end"]] == first["quote"]


def test_upload_then_ask_about_it(page: Any, rag_server: RagServer, tmp_path: Path) -> None:
    doc = tmp_path / "zorblat_festival.txt"
    # markup in a document is text: it must come back escaped, never as HTML
    doc.write_text("The Zorblat festival is held every year in the town of Quimby. It was founded in 1987 by the "
                   "baker Alma <b>Fennick</b>.\n", encoding="utf-8")
    _new_chat(page)
    try:
        page.locator("#upload input[type=file]").set_input_files(str(doc))
        page.locator("#upload-status", has_text="Indexed").wait_for()
        assert "zorblat_festival.txt" in page.locator("#upload-status").inner_text()
        page.locator("#documents li", has_text="zorblat_festival.txt").wait_for()
        _ask(page, "Who founded the Zorblat festival?")
        cite = page.locator("#sources .cite", has_text="zorblat_festival.txt").first
        cite.wait_for()
        quoted = cite.locator("mark").first.text_content() or ""
        assert "Alma <b>Fennick</b>" in quoted  # the tags as text
        assert page.locator("#sources mark b").count() == 0
        assert page.locator('#chat [data-testid="bot"] b', has_text="Fennick").count() == 0
        assert "Alma <b>Fennick</b>" in page.locator('#chat [data-testid="bot"]', has_text="Zorblat").first.inner_text()
        _screenshot(page, "chat-uploaded-document.png")
        assert not page.foreign_requests, f"the page fetched from the network: {page.foreign_requests}"
    finally:  # the server is shared by the whole session: leave its documents as they were
        rows = httpx.get(rag_server.url + "/documents", headers=rag_server.headers, timeout=30).json()
        for row in rows:
            if row["filename"] == "zorblat_festival.txt":
                httpx.delete(f"{rag_server.url}/documents/{row['id']}", headers=rag_server.headers, timeout=60)


def test_api_docs_render_offline(page: Any, rag_server: RagServer) -> None:
    """/docs (Swagger UI) renders every route from assets the server ships: no CDN."""
    host = urlparse(rag_server.url).hostname
    docs = page.context.new_page()
    foreign: list[str] = []
    docs.on("request", lambda r: foreign.append(r.url) if urlparse(r.url).hostname not in (host, None) else None)
    try:
        docs.goto(rag_server.url + "/docs")
        docs.locator(".opblock-summary-path", has_text="/ask/stream").first.wait_for(timeout=TIMEOUT_MS)
        paths = set(docs.locator(".opblock-summary-path").all_inner_texts())
        assert {"/ask", "/v1/chat/completions", "/documents", "/documents/{doc_id}", "/readyz"} <= {
            p.strip().replace("\u200b", "") for p in paths}
        _screenshot(docs, "api-docs.png")
    finally:
        docs.close()
    assert not foreign, foreign
