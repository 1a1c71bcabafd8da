"""The chat UI's rendering, without a browser or a server: escaping, highlighted quotes, refusals, history."""

from __future__ import annotations

import html
import re
from types import SimpleNamespace
from typing import Any

import pytest
from markdown_it import MarkdownIt

from rag.settings import Settings
from rag.types import Answer, Chunk, Citation, SentenceSupport
from ui import chat
from ui.chat import _escape_md, _history, documents_md, feedback_entry, format_answer, sources_html

DOC = ("Opening line of the report.\n\nThe committee met in <b>Geneva</b> on 4 May. <script>alert('x')</script> "
       "The treaty was signed by 12 states in 1998 & ratified later.\nClosing remarks * follow _here_.")
QUOTE = "The treaty was signed by 12 states in 1998 & ratified later."
SOURCE = "/data/uploads/treaty_report.txt"


class StubManifest:
    def __init__(self, chunks: list[Chunk]) -> None:
        self._chunks = {c.id: c for c in chunks}

    def chunks(self, ids: list[str]) -> dict[str, Chunk]:
        return {i: self._chunks[i] for i in ids if i in self._chunks}


def stub_service(chunks: list[Chunk], docs: list[Any] = ()) -> Any:
    layout = SimpleNamespace(manifest=StubManifest(chunks))
    return SimpleNamespace(retriever=SimpleNamespace(layout=layout), documents=lambda: list(docs))


def doc_chunk(start: int = 0, end: int | None = None) -> Chunk:
    end = len(DOC) if end is None else end
    return Chunk(id="c1", doc_id="d1", ordinal=0, text=DOC[start:end], start=start, end=end, source=SOURCE,
                 title="Treaty <report>", page=3)


def citation(quote: str = QUOTE, n: int = 1, chunk_id: str = "c1") -> Citation:
    start = DOC.index(quote)
    return Citation(n=n, chunk_id=chunk_id, source=SOURCE, title="Treaty <report>", page=3, quote=quote, start=start,
                    end=start + len(quote), score=0.93)


def answer(**kw: Any) -> Answer:
    base: dict[str, Any] = {"question": "When was the treaty signed?",
                            "standalone_question": "When was the treaty signed?",
                            "text": f"{QUOTE} [1]", "citations": [citation()], "mode": "extractive",
                            "seconds": {"total": 1.23}}
    base.update(kw)
    return Answer(**base)


REFUSAL = {"text": "I could not find the answer to this in the documents.", "citations": [], "refused": True,
           "refusal_reason": "no_evidence"}


def marks(markup: str) -> list[str]:
    """The text inside each <mark>, unescaped (what the browser shows)."""
    return [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", markup, flags=re.DOTALL)]


def rendered_text(markdown: str) -> str:
    """What a Markdown renderer shows for ``markdown``: HTML tags removed (there must be none), entities decoded."""
    out = MarkdownIt("commonmark").enable("strikethrough").render(markdown)
    assert "<script" not in out and "<img" not in out and "<a " not in out, out
    return html.unescape(re.sub(r"</?(p|em|strong|br ?/?)>", "", out)).strip()


# --------------------------------------------------------------------------- the sources panel


def test_sources_highlight_exactly_the_quote_with_its_context() -> None:
    panel = sources_html(stub_service([doc_chunk()]), answer())
    assert marks(panel) == [QUOTE]
    body = re.search(r'<div class="cite-body">(.*?)</div>', panel, flags=re.DOTALL).group(1)
    assert html.unescape(re.sub(r"</?mark>", "", body)) == DOC  # the whole (short) passage, in order
    assert 'class="cite"' in panel and 'data-n="1"' in panel
    assert "treaty_report.txt, page 3" in panel  # document file and page
    assert "/data/uploads" not in panel  # no server paths
    assert "Treaty &lt;report&gt;" in panel
    assert "support 0.93" in panel
    assert 'class="refusal"' not in panel


def test_document_text_is_escaped_in_the_sources_panel() -> None:
    panel = sources_html(stub_service([doc_chunk()]), answer())
    assert "<script>" not in panel and "<b>" not in panel
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in panel
    assert "&lt;b&gt;Geneva&lt;/b&gt;" in panel
    assert "1998 &amp; ratified" in panel


def test_a_quote_with_markup_is_highlighted_as_text() -> None:
    quote = "<script>alert('x')</script>"
    panel = sources_html(stub_service([doc_chunk()]), answer(citations=[citation(quote)]))
    assert marks(panel) == [quote]
    assert "<script>" not in panel


def test_long_passages_are_trimmed_around_the_quote() -> None:
    long_doc_before = "word " * 200
    text = long_doc_before + QUOTE + " tail" * 200
    chunk = Chunk(id="c1", doc_id="d1", ordinal=0, text=text, start=1000, end=1000 + len(text), source=SOURCE,
                  title="T")
    cite = Citation(n=1, chunk_id="c1", source=SOURCE, title="T", quote=QUOTE, start=1000 + len(long_doc_before),
                    end=1000 + len(long_doc_before) + len(QUOTE), score=1.0)
    panel = sources_html(stub_service([chunk]), answer(citations=[cite]))
    assert marks(panel) == [QUOTE]
    assert panel.count("\u2026") == 2 and len(panel) < len(text)
    assert "page" not in re.search(r'class="cite-where">(.*?)<', panel).group(1)  # no page: none shown


def test_the_section_is_shown_next_to_document_and_page_escaped() -> None:
    section = "4 Symmetric <cryptography> > 4.3 Modes & *padding*"
    cite = citation().model_copy(update={"section": section})
    panel = sources_html(stub_service([doc_chunk()]), answer(citations=[cite]))
    where = re.search(r'class="cite-where">(.*?)<', panel).group(1)
    assert html.unescape(where) == f"treaty_report.txt, page 3, section {section}"
    assert "<cryptography>" not in panel and "4 Symmetric &lt;cryptography&gt; &gt; 4.3 Modes &amp; *padding*" in where
    shown = rendered_text(chat.message_sources_md(answer(citations=[cite])))
    assert f"[1] Treaty <report> \u2014 treaty_report.txt, page 3, section {section}" in shown
    # no section: nothing about sections is shown
    assert "section" not in re.search(r'class="cite-where">(.*?)<', sources_html(
        stub_service([doc_chunk()]), answer())).group(1)


def test_a_long_section_keeps_its_last_headings() -> None:
    section = " > ".join(f"{i} Chapter heading number {i}" for i in range(1, 9))
    cite = citation().model_copy(update={"section": section})
    where = html.unescape(re.search(r'class="cite-where">(.*?)<', sources_html(
        stub_service([doc_chunk()]), answer(citations=[cite]))).group(1))
    assert where.endswith("8 Chapter heading number 8") and "\u2026 > " in where and len(where) < 170


def test_a_missing_chunk_still_shows_the_quote() -> None:
    panel = sources_html(stub_service([]), answer())
    assert marks(panel) == [QUOTE]


def test_a_quote_outside_its_chunk_falls_back_to_the_quote() -> None:
    panel = sources_html(stub_service([doc_chunk(0, 20)]), answer())
    assert marks(panel) == [QUOTE]


def test_every_citation_gets_a_card() -> None:
    second = citation("The committee met in <b>Geneva</b> on 4 May.", n=2)
    panel = sources_html(stub_service([doc_chunk()]), answer(citations=[citation(), second]))
    assert marks(panel) == [QUOTE, second.quote]
    assert panel.count('class="cite"') == 2


def test_dropped_sentences_are_listed_escaped() -> None:
    dropped = [SentenceSupport(text="It was <i>unanimous</i>.", score=0.1, supported=False)]
    panel = sources_html(stub_service([doc_chunk()]), answer(dropped=dropped))
    assert "It was &lt;i&gt;unanimous&lt;/i&gt;." in panel


def test_refusal_panel_is_a_refusal_with_no_citations() -> None:
    panel = sources_html(stub_service([doc_chunk()]), answer(**REFUSAL))
    assert 'class="refusal"' in panel
    assert "Not in the documents" in panel
    assert 'class="cite"' not in panel and "<mark>" not in panel
    not_supported = sources_html(stub_service([]), answer(**{**REFUSAL, "refusal_reason": "not_supported"}))
    assert 'class="refusal"' in not_supported and "do not support" in not_supported


def test_the_panel_names_the_question_escaped() -> None:
    panel = sources_html(stub_service([doc_chunk()]), answer(question="Is <b>this</b> bold?"))
    assert "Is &lt;b&gt;this&lt;/b&gt; bold?" in panel


def test_the_model_file_name_not_its_path() -> None:
    panel = sources_html(stub_service([doc_chunk()]), answer(mode="local", model="/models/qwen2.5-0.5b.gguf"))
    assert "local (qwen2.5-0.5b.gguf)" in panel and "/models/" not in panel


# --------------------------------------------------------------------------- chat messages


def test_answer_message_is_literal_markdown_and_not_a_refusal() -> None:
    text = "Signed in <script>alert(1)</script> *1998* by **12** states_of_the_union [1]. ![x](http://evil/x.png)"
    message = format_answer(answer(text=text))
    assert "refusal" not in message
    assert "<script>" not in message
    assert rendered_text(message) == text  # shown exactly as written: no HTML, emphasis, link or image


def test_refusal_message_looks_different() -> None:
    message = format_answer(answer(**REFUSAL))
    assert message.startswith('<span class="refusal">Not in the documents</span>')
    assert REFUSAL["text"] in message
    assert "refusal" not in format_answer(answer())


def test_fallback_answers_say_so() -> None:
    assert "could not be verified" in format_answer(answer(fallback=True))
    assert "could not be verified" not in format_answer(answer())


def test_sources_under_each_answer_in_the_chat() -> None:
    md = chat.message_sources_md(answer(citations=[citation(), citation("The committee met in <b>Geneva</b> on 4 May.",
                                                                         n=2)]))
    shown = rendered_text(md)
    assert "[1] Treaty <report> \u2014 treaty_report.txt, page 3" in shown
    assert QUOTE in shown and "The committee met in <b>Geneva</b> on 4 May." in shown
    assert "<b>Geneva" not in md


def test_sources_title_counts_passages_and_files() -> None:
    assert chat._sources_title(answer()) == "Sources: 1 passage from treaty_report.txt"
    two = answer(citations=[citation(), citation("The committee met in <b>Geneva</b> on 4 May.", n=2)])
    assert chat._sources_title(two) == "Sources: 2 passages from treaty_report.txt"


def test_draft_is_escaped_and_marked_unverified() -> None:
    out = chat._draft_html("It was <b>1998</b>\nand more")
    assert "&lt;b&gt;1998&lt;/b&gt;<br>and more" in out
    assert "Draft" in out


@pytest.mark.parametrize("text", [
    "plain text", "a*b*c and _d_ and __e__", "`code` and ``more``", "# not a heading", "[1] and [2][3]",
    "[link](http://example.com) and ![img](http://example.com/i.png)", "<script>alert(1)</script>",
    "a & b &amp; c &lt;", "back\\slash \\*star", "~~strike~~", "1998 & \u201cquoted\u201d \u2014 done",
])
def test_escape_md_renders_literally(text: str) -> None:
    assert rendered_text(_escape_md(text)) == text


def test_escape_md_keeps_citation_markers_readable() -> None:
    assert _escape_md("signed in 1998 [1] [2]") == "signed in 1998 [1] [2]"
    assert "<" not in _escape_md("<img src=x onerror=alert(1)>")


# --------------------------------------------------------------------------- history and feedback


def gradio_message(role: str, text: str, **extra: Any) -> dict[str, Any]:
    """A message as Gradio 6 hands it to an event handler: content is a list of parts."""
    return {"role": role, "content": [{"type": "text", "text": text}], **extra}


def test_history_uses_typed_questions_and_plain_answers() -> None:
    a = answer(text="Signed in 1998 [1].").model_dump(mode="json")
    chat_ = [
        gradio_message("user", "When was \\*it\\* signed?"),
        gradio_message("assistant", "Signed in 1998 \\[1\\]."),
        gradio_message("assistant", "**[1]** ...", metadata={"title": "Sources: 1 passage"}),
        gradio_message("user", "Who signed?"),
        gradio_message("assistant", '<span class="error-msg">Error</span> timed out'),
    ]
    known = {"0": {"question": "When was *it* signed?"}, "1": a}
    assert _history(chat_, known) == [
        {"role": "user", "content": "When was *it* signed?"},
        {"role": "assistant", "content": "Signed in 1998 [1]."},
        {"role": "user", "content": "Who signed?"},  # no entry in known: the message text
    ]


def test_history_accepts_string_content_and_keeps_the_last_20() -> None:
    chat_ = [{"role": "user", "content": f"q{i}"} for i in range(30)]
    out = _history(chat_, {})
    assert len(out) == 20 and out[-1] == {"role": "user", "content": "q29"}
    assert _history([{"role": "user", "content": "x" * 30_000}], {})[0]["content"] == "x" * 20_000


def test_feedback_entry_holds_question_answer_and_citations() -> None:
    a = answer().model_dump(mode="json")
    up = feedback_entry(a, True)
    assert up is not None
    assert up["rating"] == "up" and up["source"] == "ui"
    assert up["question"] == a["question"] and up["answer"] == a["text"] and up["citations"] == a["citations"]
    assert up["citations"][0]["quote"] == QUOTE
    assert feedback_entry(a, False)["rating"] == "down"  # type: ignore[index]
    assert feedback_entry(a, "") is None  # the thumb clicked again: withdrawn, not a dislike


def test_feedback_targets_the_answer_or_its_sources_message() -> None:
    a = answer().model_dump(mode="json")
    known = {"0": {"question": "q"}, "1": a}
    assert chat._answer_at(known, 1) is a
    assert chat._answer_at(known, 2) is a  # the sources panel just below it
    assert chat._answer_at(known, 0) is None  # a question
    assert chat._answer_at(known, 5) is None


# --------------------------------------------------------------------------- documents and the page


def test_documents_list_escapes_titles() -> None:
    rows = [SimpleNamespace(title="A *bold* <claim>", source="/x/claims.md", n_chunks=1),
            SimpleNamespace(title="Report", source="/x/report.pdf", n_chunks=7)]
    md = documents_md(stub_service([], rows))
    assert md.startswith("**2 documents indexed:**")
    assert "A \\*bold\\* &lt;claim&gt; (`claims.md`, 1 passage)" in md
    assert "(`report.pdf`, 7 passages)" in md
    assert "No documents yet" in documents_md(stub_service([], []))


def test_build_chat_makes_the_page(tmp_path: Any) -> None:
    service = SimpleNamespace(settings=Settings(data_dir=tmp_path / "data", answer_mode="extractive"))
    demo = chat.build_chat(service)  # type: ignore[arg-type]
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"chat", "question", "ask", "clear", "mode", "sources", "upload", "documents"} <= ids
    mode = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "mode")
    assert [value for _, value in mode.choices] == ["local", "hosted", "extractive"]
    assert mode.value == "extractive"
    assert "(not configured)" in {v: k for k, v in mode.choices}["hosted"]
