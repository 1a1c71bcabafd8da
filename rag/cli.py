"""The ``rag`` command line. Entry point: :func:`main` (``rag = rag.cli:main``)."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from rag.errors import RagError
from rag.settings import Settings, get_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(help="Answer questions from your documents, with citations.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
eval_app = typer.Typer(help="Measure retrieval and answer quality.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

ModeOpt = Annotated[str, typer.Option("--mode", "-m", help="dense | bm25 | hybrid")]
AnswerModeOpt = Annotated[
    str | None, typer.Option("--mode", "-m", help="local | hosted | extractive (default: RAG_ANSWER_MODE)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object as the last line")]


def _settings() -> Settings:
    return get_settings()


def _check_mode(mode: str) -> str:
    if mode not in ("dense", "bm25", "hybrid"):
        raise typer.BadParameter(f"mode must be dense, bm25 or hybrid, got {mode!r}", param_hint="--mode")
    return mode


def _check_answer_mode(mode: str | None) -> str | None:
    if mode is not None and mode not in ("local", "hosted", "extractive"):
        raise typer.BadParameter(f"mode must be local, hosted or extractive, got {mode!r}", param_hint="--mode")
    return mode


def _pipeline(mode: str | None):  # type: ignore[no-untyped-def]
    from index.layout import IndexLayout
    from rag.errors import IndexNotReadyError
    from rag.pipeline import Pipeline

    settings = _settings()
    layout = IndexLayout.open(settings)
    if not layout.exists() or not layout.manifest.counts()[1]:
        raise IndexNotReadyError(
            f"the index {settings.index_name!r} is empty", hint=f"run `rag index {settings.seeds_dir}` first"
        )
    return Pipeline(settings, mode=_check_answer_mode(mode))  # type: ignore[arg-type]


def _print_citations(answer) -> None:  # type: ignore[no-untyped-def]
    for c in answer.citations:
        where = _display_path(c.source) + (f" p.{c.page}" if c.page else "")
        typer.echo(f"  [{c.n}] {where} ({c.title}), chars {c.start}-{c.end}: \"{' '.join(c.quote.split())}\"")


def _print_answer(answer) -> None:  # type: ignore[no-untyped-def]
    typer.echo(answer.text)
    if answer.refused:
        typer.echo(f"  (refused: {answer.refusal_reason}; best evidence score {answer.evidence_score})")
    _print_citations(answer)
    if answer.standalone_question != answer.question:
        typer.echo(f"  (understood as: {answer.standalone_question})")
    if answer.dropped:
        typer.echo(f"  ({len(answer.dropped)} unsupported sentence(s) removed"
                   + ("; showing the evidence instead" if answer.fallback else "") + ")")


def _display_path(source: str) -> str:
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source


def _progress(total: int):  # type: ignore[no-untyped-def]
    from index.ingest import Progress, tqdm_progress

    return tqdm_progress(total) if sys.stderr.isatty() or os.environ.get("RAG_PROGRESS") == "1" else Progress()


@app.command("index")
def index_cmd(
    paths: Annotated[list[Path] | None, typer.Argument(help="files or folders (default: the seeds folder)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Index files and folders: new and changed documents are embedded, removed ones dropped."""
    from index.ingest import ingest

    settings = _settings()
    targets = paths or [settings.seeds_dir]
    report = ingest(targets, settings, progress=_progress)
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


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="the question or keywords")],
    k: Annotated[int, typer.Option("-k", help="number of passages", min=1, max=1000)] = 5,
    mode: ModeOpt = "hybrid",
    source: Annotated[list[str] | None, typer.Option("--source", help="only passages from this file")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Ranked passages with source, score and text."""
    from rag.retrieve import Retriever

    retriever = Retriever(_settings())
    hits = retriever.search(query, k=k, mode=_check_mode(mode), sources=source)  # type: ignore[arg-type]
    if not hits:
        typer.echo("no passages found")
    for h in hits:
        c = h.chunk
        where = _display_path(c.source) + (f" p.{c.page}" if c.page else "") + (f" #{c.external_id}" if c.external_id else "")
        typer.echo(f"[{h.rank}] {h.score:.4f}  {where}  ({c.title})  chars {c.start}-{c.end}")
        typer.echo("    " + " ".join(c.text.split())[:400])
    if json_out:
        typer.echo(json.dumps([h.model_dump() for h in hits]))


@app.command("ask")
def ask_cmd(
    question: Annotated[str, typer.Argument(help="the question")],
    mode: AnswerModeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer one question from the index, with numbered citations (or a refusal)."""
    pipe = _pipeline(mode)
    answer = pipe.ask(question)
    _print_answer(answer)
    if json_out:
        typer.echo(answer.model_dump_json())


@app.command("chat")
def chat_cmd(mode: AnswerModeOpt = None) -> None:
    """Interactive chat with history: follow-ups work; tokens stream, citations follow verification."""
    pipe = _pipeline(mode)
    _chat_loop(pipe)


def _chat_loop(pipe) -> None:  # type: ignore[no-untyped-def]
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
            _print_answer(answer)
        except RagError as exc:
            typer.echo(f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), err=True)
            continue
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]


@app.command("status")
def status_cmd(json_out: JsonOpt = False) -> None:
    """Documents, chunks, models and where the index is stored."""
    from index.layout import IndexLayout

    settings = _settings()
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


BaselineOpt = Annotated[Path | None, typer.Option(
    "--baseline", help="fail (exit 1) when a metric falls below this baseline file by more than its tolerance "
    "(default eval/baseline.json; --no-baseline to skip)")]


NoBaselineOpt = Annotated[bool, typer.Option("--no-baseline", help="do not compare with a baseline")]
RunsDirOpt = Annotated[Path | None, typer.Option("--runs-dir", help="where run folders go (default eval/runs, "
                                                  "or RAG_EVAL_RUNS_DIR)")]


@eval_app.command("retrieval")
def eval_retrieval_cmd(
    corpus: Annotated[Path, typer.Option(help="BEIR corpus.jsonl (_id, title, text)", exists=True, dir_okay=False)],
    queries: Annotated[Path, typer.Option(help="queries.jsonl (_id, text)", exists=True, dir_okay=False)],
    qrels: Annotated[Path, typer.Option(help="qrels TSV: query-id corpus-id score", exists=True, dir_okay=False)],
    mode: ModeOpt = "hybrid",
    baseline: BaselineOpt = None,
    no_baseline: NoBaselineOpt = False,
    runs_dir: RunsDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 on a BEIR-format set (the corpus gets its own index).
    Writes a run folder (per-query results, summary, report)."""
    from eval.report import markdown_table, write_report
    from eval.retrieval import evaluate_retrieval

    result = evaluate_retrieval(corpus, queries, qrels, _settings(), mode=_check_mode(mode), progress=_progress)  # type: ignore[arg-type]
    m = {**result.metrics, "data": str(corpus)}
    typer.echo(f"{'mode':>12}: {m['mode']}   queries: {m['queries']}   model: {m['embed_model']}")
    for key in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
        typer.echo(f"{key:>12}: {m[key]:.4f}")
    worst = sorted(result.per_query, key=lambda r: r["ndcg@10"])[:20]

    def report(path: Path) -> None:
        write_report(path, f"Retrieval: {corpus}", m, sections=[("Worst queries by nDCG@10", markdown_table(
            worst, [("query_id", "query"), ("ndcg@10", "nDCG@10"), ("recall@10", "R@10"), ("mrr@10", "MRR@10")]))])

    _finish_run("retrieval", m, result.per_query, report, runs_dir=runs_dir, baseline=baseline,
                skip_baseline=no_baseline, json_out=json_out)


@eval_app.command("qa")
def eval_qa_cmd(
    passages: Annotated[Path, typer.Option(help="passages.jsonl (_id, title, text)", exists=True, dir_okay=False)],
    questions: Annotated[Path, typer.Option(help="questions.jsonl (id, question, is_impossible, answers)",
                                            exists=True, dir_okay=False)],
    limit: Annotated[int | None, typer.Option(help="seeded sample of this many questions (about half unanswerable)",
                                                 min=1)] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    mode: AnswerModeOpt = None,
    baseline: BaselineOpt = None,
    no_baseline: NoBaselineOpt = False,
    runs_dir: RunsDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """EM / F1 on answerable questions, refusals on unanswerable ones, latency per stage (SQuAD-style files).
    Writes a run folder (per-question results, summary, report)."""
    from dataclasses import asdict

    from eval.qa import evaluate_qa, format_report
    from eval.report import latency_png, markdown_table, write_report

    report = evaluate_qa(passages, questions, settings=_settings(), limit=limit, seed=seed,
                         mode=_check_answer_mode(mode), progress=_progress)
    typer.echo(format_report(report))
    summary = {**json.loads(report.to_json()), "data": str(questions)}
    records = [asdict(r) for r in report.records]
    misses = [r for r in records if (r["is_impossible"] and not r["refused"]) or (r["f1"] is not None and r["f1"] < 0.5)]

    def report(path: Path) -> None:
        latency_png([r["seconds"].get("total", 0.0) for r in records], path / "latency.png")
        write_report(path, f"QA: {questions}", summary, images=[("Seconds per question", "latency.png")],
                     sections=[("Misses (unanswerable answered, or F1 < 0.5)", markdown_table(misses, [
                         ("id", "id"), ("question", "question"), ("prediction", "answer"), ("f1", "F1"),
                         ("refused", "refused")], max_chars=160))])

    _finish_run("qa", summary, records, report, runs_dir=runs_dir, baseline=baseline, skip_baseline=no_baseline,
                json_out=json_out)


@eval_app.command("groundedness")
def eval_groundedness_cmd(
    pairs: Annotated[Path, typer.Option(help="JSONL rows {context, question, response, label[, length_matched]}",
                                        exists=True, dir_okay=False)],
    limit: Annotated[int | None, typer.Option(help="only the first N rows", min=1)] = None,
    judge: Annotated[str, typer.Option(help="checker (rag.support, the default), or an LLM asked yes/no: "
                                       "hosted (RAG_HOSTED_BASE_URL) or local")] = "checker",
    baseline: BaselineOpt = None,
    no_baseline: NoBaselineOpt = False,
    runs_dir: RunsDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The support checker on labelled pairs: balanced accuracy, AUROC, precision/recall/F1 for "unsupported",
    on all rows and on the length-matched ones. Writes a run folder (results.jsonl, summary.json, report.md)."""
    from eval.groundedness import evaluate_groundedness, format_summary, load_pairs
    from eval.report import groundedness_report
    from rag.pipeline import _shared_checker

    try:
        rows = load_pairs(pairs)
    except ValueError as exc:
        raise RagError(str(exc), hint="see ../shared/data/halueval_qa/pairs.jsonl for the format") from None
    rows = rows[:limit] if limit else rows
    if judge == "checker":
        scorer, judge_name = _shared_checker(), "support-checker"
    elif judge in ("hosted", "local"):
        from eval.groundedness import LlmJudge
        from rag.pipeline import make_chat_model

        llm = make_chat_model(_settings(), judge)  # type: ignore[arg-type]
        llm.warm_up()
        judge_name = f"{judge} LLM ({getattr(llm, 'name', None) or _settings().llm_model})"
        scorer = LlmJudge(llm, judge_name)
    else:
        raise typer.BadParameter("judge must be checker, hosted or local", param_hint="--judge")
    bar = _progress(len(rows))
    try:
        report = evaluate_groundedness(rows, scorer, progress=bar.update, judge=judge_name)
    finally:
        bar.close()
    summary = {**report.summary(), "pairs": str(pairs)}
    typer.echo(format_summary(summary))
    _finish_run("groundedness", summary, report.records,
                lambda path: groundedness_report(path, summary, report.records, title=f"Groundedness: {pairs}"),
                runs_dir=runs_dir, baseline=baseline, json_out=json_out,
                skip_baseline=no_baseline or limit is not None or judge != "checker")


@eval_app.command("condense")
def eval_condense_cmd(
    file: Annotated[Path, typer.Option(help="CANARD-format JSONL (id, history, question, rewrite)", exists=True,
                                       dir_okay=False)],
    limit: Annotated[int, typer.Option(help="seeded sample of this many rows (0: all)", min=0)] = 100,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    mode: AnswerModeOpt = None,
    retrieval: Annotated[bool, typer.Option(help="also count how often the rewrite changes the top-k chunks "
                                            "retrieved from the index")] = True,
    k: Annotated[int, typer.Option("-k", help="top-k for the retrieval comparison", min=1)] = 5,
    baseline: BaselineOpt = None,
    no_baseline: NoBaselineOpt = False,
    runs_dir: RunsDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The follow-up condenser against human rewrites: token F1 and ROUGE-L (and the question as asked, as a
    baseline), rewrite rate, how often retrieval changes, latency."""
    from eval.condense import evaluate_condense, load_canard, sample_rows
    from rag.pipeline import Pipeline

    try:
        rows = sample_rows(load_canard(file), limit or None, seed)
    except ValueError as exc:
        raise RagError(str(exc), hint="see ../shared/data/canard/dev.jsonl for the format") from None
    pipe = Pipeline(_settings(), mode=_check_answer_mode(mode))  # type: ignore[arg-type]
    report = evaluate_condense(rows, pipe, retriever=pipe.retriever if retrieval else None, k=k, progress=_progress)
    summary = {**report.summary(), "file": str(file), "limit": limit or None, "seed": seed, "mode": pipe.mode}
    table = report.format_report()
    typer.echo(table)
    _finish_run("condense", summary, report.records,
                lambda path: (path / "report.md").write_text(f"# Condenser on {file}\n\n```\n{table}\n```\n"),
                runs_dir=runs_dir, baseline=baseline, skip_baseline=no_baseline, json_out=json_out)


@eval_app.command("draft", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def eval_draft_cmd(ctx: typer.Context) -> None:
    """Draft a golden set for a new corpus, every row marked for review: rag eval draft --corpus DIR --out FILE
    [--n 20] [--seed 0] [--mode extractive|local|hosted] (see python -m eval.draft --help)."""
    from eval.draft import main as draft_main

    code = draft_main(list(ctx.args))
    if code:
        raise typer.Exit(code)


def _finish_run(kind: str, summary: dict, records: list, report: Callable[[Path], object], *,  # type: ignore[type-arg]
                runs_dir: Path | None, baseline: Path | None, skip_baseline: bool, json_out: bool) -> None:
    """The tail every `rag eval` command shares: the run folder (results, summary, ``report(path)``), the baseline
    gate, the --json line, and exit 1 on a regression."""
    from eval.runs import RunFolder

    run = RunFolder(kind, runs_dir)
    run.write_results(records)
    run.write_summary(summary)
    report(run.path)
    typer.echo(f"run folder: {run.path}")
    regressions = _gate(kind, summary, baseline, skip_baseline)
    if json_out:
        typer.echo(json.dumps({**summary, "run": str(run.path), "regressions": len(regressions)}))
    if regressions:
        raise typer.Exit(1)


def _gate(kind: str, summary: dict, baseline: Path | None, skip: bool = False) -> list:  # type: ignore[type-arg]
    """Regressions of ``summary`` against the baseline file (default eval/baseline.json), printed on stderr."""
    if skip:
        return []
    from eval.baseline import DEFAULT, compare, format_regressions

    path = baseline or DEFAULT
    try:
        entry = json.loads(Path(path).read_text(encoding="utf-8")).get(kind, {})
        wanted, mode = entry.get("_data"), entry.get("_mode")
    except (OSError, ValueError, AttributeError):
        wanted = mode = None  # compare() reports a broken file
    data = " ".join(str(summary.get(k, "")) for k in ("data", "pairs", "golden", "file"))
    if (wanted and wanted not in data) or (mode and summary.get("mode") != mode):
        typer.echo(f"baseline: not compared (the {kind} baseline is for {wanted or 'other data'}"
                   f"{f', mode {mode}' if mode else ''})", err=True)
        return []
    regressions = compare(kind, summary, path)
    if regressions:
        typer.echo(format_regressions(regressions), err=True)
    return regressions


@eval_app.command("suite")
def eval_suite_cmd(
    golden: Annotated[Path | None, typer.Option(help="golden JSONL (default eval/golden/seeds.jsonl)", exists=True,
                                                dir_okay=False)] = None,
    corpus: Annotated[Path | None, typer.Option(help="the documents the golden set is about (default the seeds "
                                                "folder); indexed into an index of its own", exists=True)] = None,
    mode: AnswerModeOpt = None,
    k: Annotated[int, typer.Option("-k", help="retrieval depth for hit@k and MRR", min=1)] = 6,
    limit: Annotated[int, typer.Option(help="ask only the first N questions (0: all)", min=0)] = 0,
    baseline: BaselineOpt = None,
    no_baseline: NoBaselineOpt = False,
    runs_dir: RunsDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The golden set through the real pipeline: pass/fail per question, correctness, groundedness, citation
    precision and recall, refusals, retrieval hit@k and MRR, latency, and for each miss the pipeline stage that lost
    it (retrieval, evidence, gate, not_found, wrong_span, verification, citation, wrong_answer_passed). Writes a run
    folder with a report."""
    import hashlib

    from eval.golden import SEEDS_GOLDEN, GoldenError, load_golden
    from eval.report import suite_report
    from eval.suite import format_record, format_summary, run_suite, summarize_suite
    from index.ingest import ingest
    from rag.pipeline import Pipeline, _shared_checker

    settings = _settings()
    golden = golden or SEEDS_GOLDEN
    corpus = (corpus or settings.seeds_dir).resolve()
    index_name = None
    if corpus != settings.seeds_dir.resolve():
        index_name = "eval-" + hashlib.sha256(str(corpus).encode()).hexdigest()[:10]
    try:
        items = load_golden(golden)
    except GoldenError as exc:
        raise RagError(str(exc), hint="see eval/golden/README.md for the format") from None
    if limit:
        items = items[:limit]
    report = ingest([corpus], settings, index_name=index_name, progress=_progress)
    typer.echo(f"{golden.name}: {len(items)} questions on {corpus} ({report.documents_total} documents)", err=True)
    pipe = Pipeline(settings, index_name=index_name, mode=_check_answer_mode(mode))  # type: ignore[arg-type]
    pipe.warm_up()
    checker = _shared_checker()
    records = run_suite(items, pipe.ask, checker=checker, retriever=pipe.retriever, k=k,
                        candidates=pipe.settings.rerank_candidates, on_record=lambda r: typer.echo(format_record(r)))
    summary = {**summarize_suite(records), "mode": pipe.mode, "golden": str(golden), "corpus": str(corpus),
               "model": pipe.model_name, "limit": limit or None}
    rows = [r.to_dict() for r in records]
    typer.echo(format_summary(summary))
    _finish_run("suite", summary, rows, lambda path: suite_report(path, summary, rows), runs_dir=runs_dir,
                baseline=baseline, skip_baseline=no_baseline or bool(limit), json_out=json_out)


@app.command("run")
def run_cmd(mode: AnswerModeOpt = None) -> None:
    """Index the seeds folder, then chat with it (an empty line quits)."""
    from index.ingest import ingest
    from rag.pipeline import Pipeline

    settings = _settings()
    report = ingest([settings.seeds_dir], settings, progress=_progress)
    typer.echo(f"indexed {report.documents_total} documents ({report.chunks_total} chunks) from {settings.seeds_dir}")
    pipe = Pipeline(settings, mode=_check_answer_mode(mode))  # type: ignore[arg-type]
    typer.echo("loading models ...")
    pipe.warm_up()
    _chat_loop(pipe)


@app.command("serve")
def serve_cmd(
    host: Annotated[str | None, typer.Option("--host", help="address to listen on (default RAG_HOST, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="port (default RAG_PORT, 8000)")] = None,
    mode: AnswerModeOpt = None,
) -> None:
    """Start the server: the chat UI at /chat, the API (/ask, /v1/chat/completions, /documents, ...), docs at /docs.

    An empty index is filled from the seeds folder first; /readyz says when the models are loaded.
    """
    import uvicorn

    from ui.api import create_app

    settings = _settings()
    updates: dict[str, object] = {}
    if mode is not None:
        updates["answer_mode"] = _check_answer_mode(mode)
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures print ``error:``/``hint:`` on stderr and exit 1."""
    logging.basicConfig(level=os.environ.get("RAG_LOG_LEVEL", "WARNING").upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        rc = app(args=argv, prog_name="rag", standalone_mode=False)
        if isinstance(rc, int) and rc:  # typer.Exit(code) comes back as the return value here
            return rc
    except RagError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        return 1
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(x) for x in err["loc"])
            typer.echo(f"error: invalid setting {field} (env RAG_{field.upper()}): {err['msg']}", err=True)
        return 1
    except typer.Abort:
        return 130
    except Exception as exc:
        # usage errors and exits of the click that typer bundles: shown as click shows them
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if type(exc).__name__ == "Exit":
            return int(getattr(exc, "exit_code", 0))
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
