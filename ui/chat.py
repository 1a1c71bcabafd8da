"""The chat UI (Gradio Blocks), mounted in the FastAPI app at /chat. Gradio lives only here.

It talks to the same :class:`ui.service.Service` as the API: the same models, LLM queue, documents and feedback.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from index.load import SUPPORTED_SUFFIXES
from rag.errors import RagError
from rag.types import Answer, Citation
from ui.service import Service

logger = logging.getLogger("rag.server")

EXAMPLES = [
    "What name did Israel give to its military operation against Iran?",
    "Which Chinese Foreign Ministry spokesperson commented on Israel's attacks on Iran?",
    "In what year did China and Iran sign their 25-year cooperation agreement?",
    "What is the population of Brazil?",
]

CSS = """
#sources .cite { border-left: 4px solid #2563eb; padding: 6px 10px; margin: 8px 0; background: #f8fafc; }
#sources .cite-head { font-weight: 600; font-size: 0.9em; color: #1e3a8a; }
#sources .cite-body { font-size: 0.92em; color: #334155; white-space: pre-wrap; }
#sources mark { background: #fde68a; color: #111827; padding: 0 2px; }
#sources .refusal { border-left: 4px solid #b45309; background: #fffbeb; padding: 8px 12px; color: #78350f; }
#sources .error { border-left: 4px solid #b91c1c; background: #fef2f2; padding: 8px 12px; color: #7f1d1d; }
#sources .dropped { font-size: 0.85em; color: #64748b; margin-top: 6px; }
"""

REFUSAL_PREFIX = "\U0001f6ab **Not in the documents.** "


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
    with gr.Blocks(title="rag-cite: answers with citations") as demo:
        gr.Markdown("## Ask your documents\nAnswers quote the passages they rest on; when the documents do not "
                    "hold the answer, it says so.")
        answers = gr.State({})  # message index -> Answer dict, for feedback and follow-ups
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(elem_id="chat", height=420, label="Chat",
                                     feedback_options=("Like", "Dislike"))
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question about the documents", show_label=False,
                                     elem_id="question", scale=6, max_lines=4, autofocus=True)
                    ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
                gr.Examples(EXAMPLES, inputs=box, label="Examples")
                gr.Markdown("### Sources")
                sources = gr.HTML("<p>Citations appear here.</p>", elem_id="sources")
            with gr.Column(scale=1):
                mode = gr.Radio(["local", "hosted", "extractive"], value=settings.answer_mode, label="Answer mode",
                                info="local: the packaged LLM; hosted: an OpenAI-compatible endpoint; "
                                "extractive: quotes only, fastest", elem_id="mode")
                upload = gr.File(label="Add a document", file_types=sorted(SUPPORTED_SUFFIXES), type="filepath",
                                 elem_id="upload")
                upload_status = gr.Markdown(elem_id="upload-status")
                clear = gr.Button("New conversation", elem_id="clear")
                docs = gr.Markdown(elem_id="documents")

        async def respond(question: str, chat: list[dict[str, Any]], mode_: str, known: dict[str, Any]):  # type: ignore[no-untyped-def]
            question = (question or "").strip()
            if not question:
                yield chat, gr.update(), known, ""
                return
            history = _history(chat, known)
            chat = [*chat, {"role": "user", "content": question}, {"role": "assistant", "content": "\u2026"}]
            yield chat, _panel_message("Searching the documents\u2026", "cite-body"), known, ""
            draft = ""
            try:
                events = await service.open_answer(question, history=history, mode=mode_, route="ui")  # type: ignore[arg-type]
                async for kind, value in events:
                    if kind == "token":
                        draft += value
                        chat[-1] = {"role": "assistant", "content": f"*{_escape_md(draft)}*"}
                        yield chat, gr.update(), known, ""
                    elif kind == "answer":
                        answer: Answer = value
                        chat[-1] = {"role": "assistant", "content": format_answer(answer)}
                        known = {**known, str(len(chat) - 1): answer.model_dump()}
                        panel = await asyncio.to_thread(sources_html, service, answer)
                        yield chat, panel, known, ""
            except RagError as exc:
                chat[-1] = {"role": "assistant", "content": f"\u26a0\ufe0f {exc.message}"}
                yield chat, _panel_message(exc.message + (f" ({exc.hint})" if exc.hint else ""), "error"), known, ""

        def on_like(data: gr.LikeData, chat: list[dict[str, Any]], known: dict[str, Any]) -> str:
            index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
            answer = known.get(str(index))
            if answer is None:
                return "Feedback is for answers only."
            service.record_feedback({
                "source": "ui", "rating": "up" if data.liked else "down", "question": answer["question"],
                "answer": answer["text"], "citations": answer["citations"], "mode": answer["mode"],
            })
            return "Thanks: feedback saved."

        async def on_upload(path: str | None) -> tuple[str, str]:
            if not path:
                return "", await asyncio.to_thread(documents_md, service)
            try:
                data = await asyncio.to_thread(Path(path).read_bytes)
                result = await asyncio.to_thread(service.upload, Path(path).name, data)
                msg = (f"Indexed **{_escape_md(result.filename)}**: {result.report.chunks_added} passages "
                       f"({result.report.added} new, {result.report.updated} updated).")
            except RagError as exc:
                msg = f"\u26a0\ufe0f Not indexed: {_escape_md(exc.message)}" + (f" ({exc.hint})" if exc.hint else "")
            return msg, await asyncio.to_thread(documents_md, service)

        inputs, outputs = [box, chatbot, mode, answers], [chatbot, sources, answers, box]
        box.submit(respond, inputs, outputs)
        ask.click(respond, inputs, outputs)
        chatbot.like(on_like, [chatbot, answers], upload_status)
        upload.upload(on_upload, upload, [upload_status, docs])
        clear.click(lambda: ([], {}, "<p>Citations appear here.</p>"), None, [chatbot, answers, sources])
        demo.load(lambda: documents_md(service), None, docs)
    demo.queue(default_concurrency_limit=16)
    return demo


# --------------------------------------------------------------------------- rendering


def format_answer(answer: Answer) -> str:
    """The chat message: the answer text, or a refusal that looks different."""
    if answer.refused:
        return REFUSAL_PREFIX + _escape_md(answer.text)
    note = "\n\n*(The model's own answer failed verification; these are quotes.)*" if answer.fallback else ""
    return _escape_md(answer.text) + note


def sources_html(service: Service, answer: Answer) -> str:
    """Each citation's document, page and passage, with the quoted span highlighted."""
    if answer.refused:
        why = ("no passage in the documents is relevant enough" if answer.refusal_reason == "no_evidence"
               else "the passages found do not support an answer")
        return (f'<div class="refusal"><b>No answer:</b> {html.escape(why)}. Nothing is cited, so nothing is '
                "made up.</div>")
    if not answer.citations:
        return "<p>No citations.</p>"
    manifest = service.retriever.layout.manifest
    chunks = manifest.chunks([c.chunk_id for c in answer.citations])
    parts = []
    for c in answer.citations:
        parts.append(_citation_html(c, chunks.get(c.chunk_id)))
    if answer.dropped:
        dropped = "; ".join(html.escape(s.text) for s in answer.dropped)
        parts.append(f'<div class="dropped">Removed as unsupported by the passages: {dropped}</div>')
    return "\n".join(parts)


def _citation_html(c: Citation, chunk: Any) -> str:
    where = html.escape(c.title) + " \u2014 " + html.escape(Path(c.source).name)
    if c.page:
        where += f", page {c.page}"
    if chunk is not None and chunk.start <= c.start and c.end <= chunk.end:
        a, b = c.start - chunk.start, c.end - chunk.start
        body = (html.escape(_tail(chunk.text[:a])) + "<mark>" + html.escape(chunk.text[a:b]) + "</mark>"
                + html.escape(_head(chunk.text[b:])))
    else:
        body = "<mark>" + html.escape(c.quote) + "</mark>"
    return (f'<div class="cite" data-n="{c.n}"><div class="cite-head">[{c.n}] {where}</div>'
            f'<div class="cite-body">{body}</div></div>')


def _tail(text: str, n: int = 300) -> str:
    return text if len(text) <= n else "\u2026" + text[-n:]


def _head(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[:n] + "\u2026"


def _panel_message(text: str, cls: str) -> str:
    return f'<div class="{cls}">{html.escape(text)}</div>'


def documents_md(service: Service) -> str:
    try:
        rows = service.documents()
    except RagError as exc:
        return f"Documents: unavailable ({exc.message})"
    if not rows:
        return "**Documents:** none yet. Upload one."
    lines = [f"**Documents ({len(rows)}):**"]
    for r in rows[:20]:
        lines.append(f"- {_escape_md(r.title)} (`{Path(r.source).name}`, {r.n_chunks} passages)")
    if len(rows) > 20:
        lines.append(f"- \u2026 and {len(rows) - 20} more")
    return "\n".join(lines)


def _escape_md(text: str) -> str:
    """Keep user and document text literal in Markdown (no HTML, no emphasis from stray stars)."""
    out = html.escape(text, quote=False)
    for ch in ("*", "_", "`", "#"):
        out = out.replace(ch, "\\" + ch)
    return out


def _history(chat: list[dict[str, Any]], known: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation for follow-ups: the user's questions and the plain answer texts (not the markup)."""
    out: list[dict[str, str]] = []
    for i, m in enumerate(chat):
        role = m.get("role")
        if role == "user":
            out.append({"role": "user", "content": str(m.get("content") or "")[:20_000]})
        elif role == "assistant" and str(i) in known:
            out.append({"role": "assistant", "content": known[str(i)]["text"]})
    return out[-20:]
