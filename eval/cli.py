"""The ``rag eval`` commands: retrieval, qa, groundedness, condense, draft, suite. Plugged into ``rag`` through the
``rag.commands`` entry point (``eval = "eval.cli:register"`` in pyproject.toml)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from rag.commands import (
    AnswerModeOpt,
    JsonOpt,
    ModeOpt,
    check_answer_mode,
    check_mode,
    current_settings,
    progress_bar,
)
from rag.errors import RagError
from rag.settings import AnswerMode

eval_app = typer.Typer(help="Measure retrieval and answer quality.", no_args_is_help=True)


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

    result = evaluate_retrieval(corpus, queries, qrels, current_settings(),
                                mode=check_mode(mode), progress=progress_bar)
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

    result = evaluate_qa(passages, questions, settings=current_settings(), limit=limit, seed=seed,
                         mode=check_answer_mode(mode), progress=progress_bar)
    typer.echo(format_report(result))
    summary = {**json.loads(result.to_json()), "data": str(questions)}
    records = [asdict(r) for r in result.records]
    misses = [r for r in records
              if (r["is_impossible"] and not r["refused"]) or (r["f1"] is not None and r["f1"] < 0.5)]

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
    from rag.models import Models, make_chat_model

    try:
        rows = load_pairs(pairs)
    except ValueError as exc:
        raise RagError(str(exc), hint="see ../shared/data/halueval_qa/pairs.jsonl for the format") from None
    rows = rows[:limit] if limit else rows
    scorer: Any
    if judge == "checker":
        scorer, judge_name = Models(current_settings()).checker, "support-checker"
    elif judge in ("hosted", "local"):
        from eval.groundedness import LlmJudge

        llm = make_chat_model(current_settings(), cast("AnswerMode", judge))
        llm.warm_up()
        judge_name = f"{judge} LLM ({getattr(llm, 'name', None) or current_settings().llm_model})"
        scorer = LlmJudge(llm, judge_name)
    else:
        raise typer.BadParameter("judge must be checker, hosted or local", param_hint="--judge")
    bar = progress_bar(len(rows))
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
    skip_first_turns: Annotated[bool, typer.Option(help="leave out rows with an empty history")] = False,
    llm_model: Annotated[str | None, typer.Option(help="local GGUF name or path (default: RAG_LLM_MODEL)")] = None,
    index: Annotated[str | None, typer.Option(help="index for the retrieval comparison (default: RAG_INDEX_NAME)")]
    = None,
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
        rows = sample_rows(load_canard(file), limit or None, seed, skip_first_turns=skip_first_turns)
    except ValueError as exc:
        raise RagError(str(exc), hint="see ../shared/data/canard/dev.jsonl for the format") from None
    settings = current_settings()
    if llm_model:
        settings = settings.model_copy(update={"llm_model": llm_model})
    pipe = Pipeline(settings, mode=check_answer_mode(mode), index_name=index)
    report = evaluate_condense(rows, pipe, retriever=pipe.retriever if retrieval else None, k=k, progress=progress_bar)
    summary = {**report.summary(), "file": str(file), "limit": limit or None, "seed": seed, "mode": pipe.mode,
               "skip_first_turns": skip_first_turns}
    table = report.format_report()
    typer.echo(table)
    _finish_run("condense", summary, report.records,
                lambda path: (path / "report.md").write_text(f"# Condenser on {file}\n\n```\n{table}\n```\n"),
                runs_dir=runs_dir, baseline=baseline, skip_baseline=no_baseline, json_out=json_out)


@eval_app.command("draft")
def eval_draft_cmd(
    corpus: Annotated[list[Path], typer.Option(help="file or folder to draft from (repeatable)")],
    out: Annotated[Path, typer.Option(help="the JSONL file to write")],
    n: Annotated[int, typer.Option("--n", help="rows to draft, about 20% of them unanswerable", min=1)] = 20,
    seed: Annotated[int, typer.Option(help="selection seed")] = 0,
    mode: Annotated[str, typer.Option(help="who writes the questions: extractive = templates (fast), local/hosted "
                                      "= an LLM")] = "extractive",
    llm_model: Annotated[str | None, typer.Option(help="local GGUF name or path (default: RAG_LLM_MODEL)")] = None,
) -> None:
    """Draft a golden set for a new corpus, every row marked for review (eval/golden/README.md)."""
    from eval.draft import run_draft

    if mode not in ("extractive", "local", "hosted"):
        raise typer.BadParameter(f"mode must be extractive, local or hosted, got {mode!r}", param_hint="--mode")
    code = run_draft(corpus, out, n=n, seed=seed, mode=mode, llm_model=llm_model, echo=typer.echo)
    if code:
        raise typer.Exit(code)


def _finish_run(kind: str, summary: dict, records: list, report: Callable[[Path], object], *,
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


def _gate(kind: str, summary: dict, baseline: Path | None, skip: bool = False) -> list:
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
    from rag.models import Models
    from rag.pipeline import Pipeline

    settings = current_settings()
    models = Models(settings)
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
    report = ingest([corpus], settings, index_name=index_name, progress=progress_bar)
    typer.echo(f"{golden.name}: {len(items)} questions on {corpus} ({report.documents_total} documents)", err=True)
    pipe = Pipeline(settings, index_name=index_name, mode=check_answer_mode(mode),
                    models=models)
    pipe.warm_up()
    checker = models.checker
    records = run_suite(items, pipe.ask, checker=checker, retriever=pipe.retriever, k=k,
                        candidates=pipe.settings.rerank_candidates, on_record=lambda r: typer.echo(format_record(r)))
    summary = {**summarize_suite(records), "mode": pipe.mode, "golden": str(golden), "corpus": str(corpus),
               "model": pipe.model_name, "limit": limit or None}
    rows = [r.to_dict() for r in records]
    typer.echo(format_summary(summary))
    _finish_run("suite", summary, rows, lambda path: suite_report(path, summary, rows), runs_dir=runs_dir,
                baseline=baseline, skip_baseline=no_baseline or bool(limit), json_out=json_out)


def register(app: typer.Typer) -> None:
    """Add ``rag eval ...`` to ``app``."""
    app.add_typer(eval_app, name="eval")
