"""``rag serve``: the server (chat UI and API). Plugged into ``rag`` through the ``rag.commands`` entry point
(``ui = "ui.cli:register"`` in pyproject.toml)."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from rag.commands import AnswerModeOpt, check_answer_mode, current_settings
from rag.settings import Settings


def serve_cmd(
    host: Annotated[
        str | None, typer.Option("--host", help="address to listen on (default RAG_HOST, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="port (default RAG_PORT, 8000)")] = None,
    mode: AnswerModeOpt = None,
) -> None:
    """Start the server: the chat UI at /chat, the API (/ask, /v1/chat/completions, /documents, ...), docs at /docs.

    An empty index is filled from the seeds folder first; /readyz says when the models are loaded.
    """
    import uvicorn

    from ui.api import create_app

    settings = current_settings()
    updates: dict[str, object] = {}
    if mode is not None:
        updates["answer_mode"] = check_answer_mode(mode)
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    if updates:
        settings = Settings.model_validate({**settings.model_dump(), **updates})
    for name in ("rag", "index"):
        logging.getLogger(name).setLevel(os.environ.get("RAG_LOG_LEVEL", "INFO").upper())
    typer.echo(f"serving on http://{settings.host}:{settings.port}/  (chat: /chat, API docs: /docs, "
               f"mode: {settings.answer_mode})", err=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, timeout_graceful_shutdown=30,
                log_level="info", access_log=True)


def register(app: typer.Typer) -> None:
    """Add ``rag serve`` to ``app``."""
    app.command("serve")(serve_cmd)
