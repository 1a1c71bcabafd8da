"""The chat UI (Gradio Blocks), mounted in the FastAPI app at /chat. Gradio lives only here.

It talks to the same :class:`ui.service.Service` as the API: the same models, LLM queue, documents and feedback.

What the page shows: the conversation (tokens stream in local and hosted modes, marked as an unverified draft until
the citations are checked); under each answer a collapsible "Sources" panel; beside the chat the sources of the
latest (or the clicked) answer in full: document, page, section and the passage around the quote, the quoted words
highlighted. Refusals look different from answers (amber, "Not in the documents"). Thumbs up / down store the
question, the answer and its citations in ``<data dir>/feedback.jsonl``. Nothing is fetched from the network:
system fonts, no CDN.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import importlib.util
import logging
from pathlib import Path
from typing import Any, cast

import gradio as gr

from index.load import SUPPORTED_SUFFIXES
from rag.errors import RagError
from rag.settings import AnswerMode
from rag.types import Answer, Citation
from ui.service import Service

logger = logging.getLogger("rag.server")

EXAMPLES = [
    "What name did Israel give to its military operation against Iran?",
    "Which Chinese Foreign Ministry spokesperson commented on Israel's attacks on Iran?",
    "In what year did China and Iran sign their 25-year cooperation agreement?",
    "What is the population of Brazil?",
]

SOURCES_PLACEHOLDER = (
    '<div class="sources-empty"><b>Sources</b><br>Each answer quotes the passages it rests on. They appear here: '
    "the document, the page and the passage, with the quoted words highlighted. Click an answer in the chat to "
    "see its sources again.</div>"
)

CSS = """
.gradio-container { max-width: 1500px !important; }
#title h2 { margin-bottom: 0; }
#title p { margin-top: 2px; color: var(--body-text-color-subdued); }

/* colours work in light and dark mode: translucent backgrounds, the theme's text colours */
#sources { max-height: 640px; overflow-y: auto; }
#sources .src-head { font-size: 0.85em; color: var(--body-text-color-subdued); margin: 0 0 8px; }
#sources .src-head q { color: var(--body-text-color); font-weight: 600; }
#sources .cite { border: 1px solid var(--border-color-primary); border-left: 4px solid #2563eb; border-radius: 6px;
                 padding: 8px 12px; margin: 0 0 10px; background: rgba(37, 99, 235, 0.05); }
#sources .cite-head { display: flex; flex-wrap: wrap; gap: 4px 8px; align-items: baseline; font-size: 0.88em;
                      margin-bottom: 4px; }
#sources .cite-doc { font-weight: 600; color: #1e40af; }
.dark #sources .cite-doc { color: #93c5fd; }
#sources .cite-where, #sources .cite-score { color: var(--body-text-color-subdued); }
#sources .cite-score { margin-left: auto; font-size: 0.9em; }
#sources .cite-body { font-size: 0.9em; line-height: 1.5; color: var(--body-text-color); white-space: pre-wrap; }
#sources mark { background: #fde68a; color: #111827; padding: 1px 2px; border-radius: 2px; }
#sources .refusal, #sources .error { border: 1px solid; border-left-width: 4px; border-radius: 6px; padding: 10px 12px;
                                     color: var(--body-text-color); }
#sources .refusal { border-color: #f59e0b; border-left-color: #d97706; background: rgba(245, 158, 11, 0.12); }
#sources .error { border-color: #f87171; border-left-color: #b91c1c; background: rgba(239, 68, 68, 0.10); }
#sources .pending { color: var(--body-text-color-subdued); font-style: italic; padding: 8px 0; }
#sources .dropped { font-size: 0.85em; color: var(--body-text-color-subdued); margin-top: 6px; }
#sources .sources-empty { color: var(--body-text-color-subdued); font-size: 0.92em; line-height: 1.5;
                          border: 1px dashed var(--border-color-primary); border-radius: 6px; padding: 12px; }
#sources .sources-empty b { color: var(--body-text-color); }
.cn { display: inline-block; min-width: 1.5em; text-align: center; font-size: 0.8em; font-weight: 700;
      color: #fff; background: #2563eb; border-radius: 9px; padding: 0 5px; }

/* chat messages */
#chat .refusal, #chat .error-msg { display: inline-block; font-size: 0.75em; font-weight: 700; color: #fff;
      letter-spacing: 0.03em; text-transform: uppercase; border-radius: 4px; padding: 1px 7px; margin-right: 4px;
      vertical-align: 2px; }
#chat .refusal { background: #d97706; }
#chat .error-msg { background: #b91c1c; }
#chat .bot:has(.refusal) { background: rgba(245, 158, 11, 0.14) !important; border-color: #f59e0b !important; }
#chat .bot:has(.error-msg) { background: rgba(239, 68, 68, 0.12) !important; border-color: #ef4444 !important; }
#chat .draft-note, #chat .searching { font-size: 0.85em; color: var(--body-text-color-subdued); font-style: italic; }
#chat .draft { opacity: 0.8; }
#chat .thought blockquote { background: rgba(234, 179, 8, 0.16); border-left: 3px solid #eab308; margin: 4px 0 2px;
      padding: 4px 10px; color: var(--body-text-color); font-style: normal; }
#chat .thought .message-content p { margin: 2px 0; }
.upload-help p { font-size: 0.8em; color: var(--body-text-color-subdued); margin: 0; }
#feedback-status p, #upload-status p { font-size: 0.9em; margin: 0; }
"""



def mount_chat(app: Any, service: Service, *, path: str = "/chat") -> None:
    """Build the chat and mount it on ``app`` at ``path`` (login with the API key when one is set)."""
    blocks = build_chat(service)
    key = service.settings.api_key.get_secret_value() if service.settings.api_key else None
    auth = None
    if key is not None:
        def auth(username: str, password: str) -> bool:
            return hmac.compare_digest(password.encode(), key.encode())
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts: nothing is fetched
    gr.mount_gradio_app(app, blocks, path=path, auth=auth, auth_message="Password: the server's RAG_API_KEY",
                        ssr_mode=False, theme=theme, css=CSS, footer_links=[], show_error=True,
                        max_file_size=int(service.settings.max_upload_mb * 1e6))


def build_chat(service: Service) -> gr.Blocks:
    settings = service.settings
    with gr.Blocks(title="rag-cite: answers with citations", fill_width=True) as demo:
        gr.Markdown("## Ask your documents\nEvery answer quotes the passages it rests on, and every quote is checked "
                    "against the documents. When they do not hold the answer, it says so.", elem_id="title")
        # message index -> the Answer (as a dict) shown there, and the raw text of each question: feedback,
        # follow-ups and the sources panel read it, never the rendered markup
        answers = gr.State({})
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chatbot = gr.Chatbot(
                    elem_id="chat", height=560, label="Chat", show_label=False, layout="bubble",
                    feedback_options=("Like", "Dislike"), buttons=["copy", "copy_all"],  # no "share": it uploads
                    latex_delimiters=[],
                    placeholder="**Ask a question about your documents.**<br>Try an example below, or upload a "
                    "document on the right first.",
                )
                with gr.Row(equal_height=True):
                    box = gr.Textbox(placeholder="Ask a question about the documents (Enter to send)",
                                     show_label=False, elem_id="question", scale=8, max_lines=4, autofocus=True,
                                     container=False, max_length=settings.max_question_chars)
                    ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1, min_width=80)
                    clear = gr.Button("New chat", variant="secondary", elem_id="clear", scale=1, min_width=120)
                feedback_status = gr.Markdown(elem_id="feedback-status")
                examples = gr.Examples(EXAMPLES, inputs=box, label="Example questions (click to ask)",
                                       elem_id="examples")
                mode = gr.Radio(_mode_choices(service), value=settings.answer_mode, label="Answer mode",
                                info=_mode_info(service), elem_id="mode")
            with gr.Column(scale=2, min_width=340):
                sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources", padding=False)
                with gr.Accordion("Documents", open=True, elem_id="documents-box"):
                    upload = gr.File(label="Add a document", file_types=sorted(SUPPORTED_SUFFIXES),
                                     type="filepath", elem_id="upload", height=150)
                    gr.Markdown("Accepted: " + ", ".join(sorted(SUPPORTED_SUFFIXES)) + f" (up to "
                                f"{settings.max_upload_mb:g} MB). The upload is indexed at once.",
                                elem_classes="upload-help")
                    upload_status = gr.Markdown(elem_id="upload-status")
                    docs = gr.Markdown(elem_id="documents")

        async def respond(question: str, chat: list[dict[str, Any]], mode_: str, known: dict[str, Any],
                          request: gr.Request):
            question = (question or "").strip()
            if not question:
                yield chat, gr.update(), known, gr.update(), ""
                return
            history = _history(chat, known)
            chat = [*chat, {"role": "user", "content": _escape_md(question)},
                    {"role": "assistant", "content": '<span class="searching">Searching the documents\u2026</span>'}]
            index = len(chat) - 1
            known = {**known, str(index - 1): {"question": question}}
            yield chat, _panel_message("Searching the documents\u2026", "pending"), known, "", ""
            draft = ""
            events = None
            try:
                client = request.client.host if request is not None and request.client else "?"
                service.rate_limiter.check("ip:" + client)  # the same limit as the API's question routes
                events = await service.open_answer(question, history=history, mode=cast("AnswerMode", mode_),
                                                   route="ui")
                async for kind, value in events:
                    if kind == "token":
                        draft += value
                        chat[index] = {"role": "assistant", "content": _draft_html(draft)}
                        yield chat, gr.update(), known, gr.update(), gr.update()
                    elif kind == "answer":
                        answer: Answer = value
                        chat[index] = {"role": "assistant", "content": format_answer(answer)}
                        if answer.citations and not answer.refused:
                            chat.append({"role": "assistant", "content": message_sources_md(answer),
                                         "metadata": {"title": _sources_title(answer)}})  # no status: open
                        known = {**known, str(index): answer.model_dump(mode="json")}
                        panel = await asyncio.to_thread(sources_html, service, answer)
                        yield chat, panel, known, gr.update(), gr.update()
            except RagError as exc:
                why = exc.message + (f" ({exc.hint})" if exc.hint else "")
                chat[index] = {"role": "assistant", "content": _error_html(why)}
                yield chat, _panel_message(why, "error"), known, gr.update(), gr.update()
            except Exception:
                logger.exception("the chat could not answer")
                why = "Something went wrong while answering; the server log has the details."
                chat[index] = {"role": "assistant", "content": _error_html(why)}
                yield chat, _panel_message(why, "error"), known, gr.update(), gr.update()
            finally:  # the page went away mid-answer: stop the worker now, not when the generator is collected
                if events is not None:
                    await events.aclose()

        def on_like(data: gr.LikeData, known: dict[str, Any]) -> str:
            index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
            answer = _answer_at(known, index)
            if answer is None:
                return "Feedback is for answers only."
            entry = feedback_entry(answer, data.liked)
            if entry is None:  # the same thumb clicked again: the rating was withdrawn
                return "Rating withdrawn (the earlier rating stays on record)."
            service.record_feedback(entry)
            return ("Thanks: saved as a good answer." if entry["rating"] == "up"
                    else "Thanks: saved as a bad answer; it helps us find what to fix.")

        async def on_select(data: gr.SelectData, known: dict[str, Any]) -> Any:
            index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
            answer = _answer_at(known, index)
            if answer is None:
                return gr.update()
            return await asyncio.to_thread(sources_html, service, Answer.model_validate(answer))

        async def on_upload(path: str | None) -> tuple[str, str, Any]:
            if not path:
                return "", await asyncio.to_thread(documents_md, service), gr.update()
            name = Path(path).name
            try:
                data = await asyncio.to_thread(Path(path).read_bytes)
                result = await asyncio.to_thread(service.upload, name, data)
                r = result.report
                what = ("unchanged: already indexed" if not (r.added or r.updated)
                        else f"{r.chunks_added} passage{'s' if r.chunks_added != 1 else ''}")
                msg = f"Indexed **{_escape_md(result.filename)}** ({what}). Ask about it now."
            except RagError as exc:
                msg = (f"Not indexed: {_escape_md(name)}: {_escape_md(exc.message)}"
                       + (f" ({_escape_md(exc.hint)})" if exc.hint else ""))
            except Exception:
                logger.exception("upload from the chat failed")
                msg = f"Not indexed: {_escape_md(name)}: an unexpected error (see the server log)."
            return msg, await asyncio.to_thread(documents_md, service), None

        def new_conversation() -> tuple[list[Any], dict[str, Any], str, str]:
            return [], {}, SOURCES_PLACEHOLDER, ""

        inputs, outputs = [box, chatbot, mode, answers], [chatbot, sources, answers, box, feedback_status]
        box.submit(respond, inputs, outputs)
        ask.click(respond, inputs, outputs)
        examples.load_input_event.then(respond, inputs, outputs)
        chatbot.like(on_like, [answers], feedback_status)
        chatbot.select(on_select, [answers], sources)
        chatbot.clear(lambda: ({}, SOURCES_PLACEHOLDER, ""), None, [answers, sources, feedback_status])
        upload.upload(on_upload, upload, [upload_status, docs, upload])
        clear.click(new_conversation, None, [chatbot, answers, sources, feedback_status])
        demo.load(lambda: documents_md(service), None, docs)
    demo.queue(default_concurrency_limit=16)
    return demo


# --------------------------------------------------------------------------- feedback


def feedback_entry(answer: dict[str, Any], liked: Any) -> dict[str, Any] | None:
    """The feedback.jsonl entry for a thumb on ``answer`` (an Answer as a dict); None when the thumb was withdrawn.

    Gradio sends ``liked`` True (Like), False (Dislike) or "" (the selected thumb clicked again).
    """
    if liked is not True and liked is not False:
        return None
    return {
        "source": "ui", "rating": "up" if liked else "down", "question": answer["question"],
        "answer": answer["text"], "citations": answer["citations"], "mode": answer["mode"],
        "refused": answer["refused"], "model": answer.get("model"),
    }


# --------------------------------------------------------------------------- rendering


def format_answer(answer: Answer) -> str:
    """The chat message: the answer text (Markdown, document text kept literal), or a refusal that looks different:
    a ``<span class="refusal">`` badge, which also turns the whole bubble amber (CSS)."""
    if answer.refused:
        return f'<span class="refusal">Not in the documents</span> {_escape_md(answer.text)}'
    text = _escape_md(answer.text)
    if answer.fallback:
        text += "\n\n*The model's own answer could not be verified against the documents; these are the passages.*"
    return text


def message_sources_md(answer: Answer) -> str:
    """The sources shown under an answer in the chat (Markdown): each citation's document, page, section and
    quote."""
    parts = []
    for c in answer.citations:
        quote = _escape_md(_clip(" ".join(c.quote.split()), 400))
        parts.append(f"**[{c.n}]** {_escape_md(_clip(c.title, 90))} \u2014 {_escape_md(_where(c))}\n> {quote}")
    return "\n\n".join(parts)


def sources_html(service: Service, answer: Answer) -> str:
    """Each citation's document, page, section and passage, with the quoted span highlighted (``<mark>``)."""
    head = (f'<div class="src-head">Sources for <q>{html.escape(_clip(answer.question, 160))}</q>'
            f"{html.escape(_answer_meta(answer))}</div>")
    if answer.refused:
        why = {
            "no_evidence": "no passage in the documents is relevant enough to answer it",
            "not_found": "the most relevant passages do not state the answer",
        }.get(answer.refusal_reason or "", "the passages found do not support the answer that was drafted")
        return (head + f'<div class="refusal"><b>Not in the documents.</b> No answer: {html.escape(why)}. '
                "Nothing is cited, so nothing is made up. Try rephrasing, or upload a document that holds "
                "the answer.</div>")
    if not answer.citations:
        return head + "<p>No citations.</p>"
    try:
        manifest = service.retriever.layout.manifest
        chunks = manifest.chunks([c.chunk_id for c in answer.citations])
    except Exception:
        logger.warning("could not read the cited passages", exc_info=True)
        chunks = {}
    parts = [head]
    for c in answer.citations:
        parts.append(_citation_html(c, chunks.get(c.chunk_id)))
    if answer.dropped:
        dropped = "; ".join(html.escape(s.text) for s in answer.dropped)
        parts.append(f'<div class="dropped">Removed as not supported by the passages: {dropped}</div>')
    return "\n".join(parts)


def _citation_html(c: Citation, chunk: Any) -> str:
    """One source card: the passage around the quote (from the stored chunk), the quote itself highlighted."""
    if chunk is not None and chunk.start <= c.start and c.end <= chunk.end:
        a, b = c.start - chunk.start, c.end - chunk.start
        body = (html.escape(_tail(chunk.text[:a])) + "<mark>" + html.escape(chunk.text[a:b]) + "</mark>"
                + html.escape(_head(chunk.text[b:])))
    else:
        body = "<mark>" + html.escape(c.quote) + "</mark>"
    return (f'<div class="cite" data-n="{c.n}"><div class="cite-head"><span class="cn">{c.n}</span>'
            f'<span class="cite-doc">{html.escape(_clip(c.title, 120))}</span>'
            f'<span class="cite-where">{html.escape(_where(c))}</span>'
            f'<span class="cite-score" title="how strongly this passage supports the answer">support '
            f"{c.score:.2f}</span></div>"
            f'<div class="cite-body">{body}</div></div>')


def _where(c: Citation) -> str:
    """Where a citation is: the file name, the page and the section (heading path), as plain text."""
    where = Path(c.source).name
    if c.page:
        where += f", page {c.page}"
    if c.section:
        where += f", section {_section_label(c.section)}"
    return where


def _section_label(section: str, n: int = 120) -> str:
    """A heading path cut to about ``n`` characters from the left: its last headings are the most specific."""
    if len(section) <= n:
        return section
    parts = section.split(" > ")
    kept: list[str] = []
    while parts and len(" > ".join([parts[-1], *kept])) <= n - 4:
        kept.insert(0, parts.pop())
    return "\u2026 > " + " > ".join(kept) if kept else _clip(parts[-1], n)


def _answer_meta(answer: Answer) -> str:
    model = Path(answer.model).name if answer.model else None  # a .gguf path: its file name is enough
    bits = [answer.mode + (f" ({model})" if model else "")]
    total = answer.seconds.get("total")
    if total is not None:
        bits.append(f"{total:.1f} s")
    return " \u00b7 " + " \u00b7 ".join(bits)


def _sources_title(answer: Answer) -> str:
    files = sorted({Path(c.source).name for c in answer.citations})
    n = len(answer.citations)
    return f"Sources: {n} passage{'s' if n != 1 else ''} from " + ", ".join(files)


def _tail(text: str, n: int = 300) -> str:
    """The end of ``text`` (the context before a quote), cut at a word boundary."""
    if len(text) <= n:
        return text
    cut = text[-n:]
    space = cut.find(" ")
    return "\u2026" + (cut[space + 1:] if 0 <= space < 40 else cut)


def _head(text: str, n: int = 300) -> str:
    """The start of ``text`` (the context after a quote), cut at a word boundary."""
    if len(text) <= n:
        return text
    cut = text[:n]
    space = cut.rfind(" ")
    return (cut[:space] if space > n - 40 else cut) + "\u2026"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else _head(text, n)


def _panel_message(text: str, cls: str) -> str:
    return f'<div class="{cls}">{html.escape(text)}</div>'


def _draft_html(draft: str) -> str:
    """A streaming draft: shown as it comes, marked unverified (sentences the documents do not support go)."""
    body = html.escape(draft).replace("\n", "<br>")
    return (f'<span class="draft">{body}</span><br><span class="draft-note">Draft: checking each sentence '
            "against the documents\u2026</span>")


def _error_html(text: str) -> str:
    return f'<span class="error-msg">Error</span> {_escape_md(text)}'


def _mode_choices(service: Service) -> list[tuple[str, str]]:
    settings = service.settings
    local = "local" if importlib.util.find_spec("llama_cpp") is not None else "local (not installed)"
    hosted = "hosted" if settings.hosted_base_url else "hosted (not configured)"
    return [(local, "local"), (hosted, "hosted"), ("extractive", "extractive")]


def _mode_info(service: Service) -> str:
    return ("local: the packaged LLM writes a short answer (slower) \u00b7 hosted: an OpenAI-compatible endpoint "
            "\u00b7 extractive: verbatim quotes, fastest")


def documents_md(service: Service) -> str:
    try:
        rows = service.documents()
    except RagError as exc:
        return f"Documents: unavailable ({_escape_md(exc.message)})"
    if not rows:
        return "**No documents yet.** Upload one above: every question is refused until there is one."
    lines = [f"**{len(rows)} document{'s' if len(rows) != 1 else ''} indexed:**"]
    for r in rows[:20]:
        lines.append(f"- {_escape_md(_clip(r.title, 90))} (`{Path(r.source).name}`, {r.n_chunks} "
                     f"passage{'s' if r.n_chunks != 1 else ''})")
    if len(rows) > 20:
        lines.append(f"- \u2026 and {len(rows) - 20} more")
    return "\n".join(lines)


def _escape_md(text: str) -> str:
    """Keep user and document text literal in Markdown: no HTML, no emphasis from stray stars, no links or
    images (an image would be fetched from the network)."""
    out = html.escape(text, quote=False).replace("\\", "\\\\")
    for ch in ("*", "_", "`", "#", "~"):
        out = out.replace(ch, "\\" + ch)
    return out.replace("](", "]\\(")  # no links or images: "[1]" markers stay as they are


def _text(content: Any) -> str:
    """The text of a chat message's content: a string, or Gradio's list of ``{"type": "text", "text": ...}``."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, (list, tuple)):
        return "\n".join(_text(part) for part in content if part)
    return ""


def _answer_at(known: dict[str, Any], index: Any) -> dict[str, Any] | None:
    """The answer shown at chat message ``index``, or just above it (its sources panel)."""
    if not isinstance(index, int):
        return None
    for i in (index, index - 1):
        entry = known.get(str(i))
        if entry is not None and "text" in entry:
            return entry
    return None


def _history(chat: list[dict[str, Any]], known: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation for follow-ups: the user's questions and the plain answer texts (not the markup).

    Sources panels, errors and unfinished answers are left out; questions come from ``known`` (what was typed),
    falling back to the message text.
    """
    out: list[dict[str, str]] = []
    for i, m in enumerate(chat):
        role = m.get("role")
        entry = known.get(str(i))
        if role == "user":
            raw = entry["question"] if entry and "question" in entry and "text" not in entry else _text(
                m.get("content"))
            out.append({"role": "user", "content": raw[:20_000]})
        elif role == "assistant" and entry is not None and "text" in entry:
            out.append({"role": "assistant", "content": entry["text"]})
    return out[-20:]
