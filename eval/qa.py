"""Answer quality and abstention on a SQuAD 2.0-style set: EM, F1, refusal rates, cited gold, latency.

The set is two JSONL files: passages (``_id``, ``title``, ``text``; indexed like a BEIR corpus) and questions
(``id``, ``question``, ``gold_passage_id``, ``title``, ``is_impossible``, ``answers``, ``answer_spans``). Each sampled
question goes to an ``answer`` callable (by default ``rag.pipeline.Pipeline.ask``) and its :class:`rag.types.Answer`
is scored. EM and F1 follow the official SQuAD v2 evaluation script exactly, after citation markers are removed.

Usage::

    from eval.qa import evaluate_qa, format_report
    report = evaluate_qa(Path("passages.jsonl"), Path("questions.jsonl"), settings=Settings(), limit=200, seed=0)
    print(format_report(report))
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.data import DataFileError, iter_jsonl
from eval.metrics import exact_match, normalize_answer, percentile, squad_f1
from eval.retrieval import corpus_index_name
from rag.errors import PathNotFoundError
from rag.pipeline import strip_citations
from rag.settings import Settings
from rag.types import Answer, AnswerMode

if TYPE_CHECKING:
    from index.embed import Embedder
    from index.ingest import ProgressFactory

AnswerFn = Callable[[str], Answer]

SUMMARY_KEYS = (
    "em", "f1", "refusal_rate", "false_refusal_rate", "refusal_bacc", "cited_gold_rate",
    "p50_s", "p95_s", "stages", "questions", "answerable", "unanswerable",
)


# --------------------------------------------------------------------------- questions


@dataclass(frozen=True)
class QaQuestion:
    """One question of the set. ``answers`` is empty when ``is_impossible``."""

    id: str
    question: str
    is_impossible: bool
    answers: tuple[str, ...]
    gold_passage_id: str | None = None
    title: str = ""


def load_questions(path: Path) -> list[QaQuestion]:
    """The questions of a SQuAD 2.0-style JSONL file, in file order (blank lines skipped).

    Raises:
        PathNotFoundError: the file does not exist.
        UnreadableDocumentError: a line is not JSON, lacks a field, has a field of the wrong type, or repeats an id
            (the message starts with ``file:line``).
    """
    path = Path(path)
    if not path.is_file():
        raise PathNotFoundError(f"{path}: no such file", hint="pass a questions.jsonl file")
    out: list[QaQuestion] = []
    seen: set[str] = set()
    for where, row in iter_jsonl(path):
        try:
            q = _parse_question(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataFileError(
                f"{where}: not a question line with id/question/is_impossible/answers ({exc})",
                hint="each line: {\"id\", \"question\", \"gold_passage_id\", \"title\", \"is_impossible\", "
                     "\"answers\": [...]}",
            ) from None
        if q.id in seen:
            raise DataFileError(f"{where}: duplicate question id {q.id!r}")
        seen.add(q.id)
        out.append(q)
    return out


def _parse_question(row: Any) -> QaQuestion:
    if not isinstance(row, dict):
        raise TypeError(f"expected an object, got {type(row).__name__}")
    question = row["question"]
    impossible = row["is_impossible"]
    answers = row.get("answers", [])
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' must be a non-empty string")
    if not isinstance(impossible, bool):
        raise TypeError(f"'is_impossible' must be true or false, got {impossible!r}")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise TypeError("'answers' must be a list of strings")
    if not impossible and not answers:
        raise ValueError("an answerable question needs at least one answer")
    gold = row.get("gold_passage_id")
    return QaQuestion(
        id=str(row["id"]),
        question=question,
        is_impossible=impossible,
        answers=tuple(answers),
        gold_passage_id=None if gold is None else str(gold),
        title=str(row.get("title") or ""),
    )


def sample_questions(questions: Sequence[QaQuestion], limit: int | None, seed: int = 0) -> list[QaQuestion]:
    """A deterministic, stratified sample of ``limit`` questions, returned in their original order.

    ``ceil(limit / 2)`` answerable and ``floor(limit / 2)`` impossible questions, each kind drawn with a fresh
    ``random.Random(seed).sample`` over its ids in sorted order (so the sample depends on the ids, not on the file
    order, and one kind's draw does not depend on the other's size). When one kind runs short, all of it is taken
    and the other kind fills the rest. ``limit=None`` (or a limit at least the number of questions) gives every
    question in file order.

    Raises:
        ValueError: ``limit`` is not positive.
    """
    if limit is None or limit >= len(questions):
        if limit is not None and limit <= 0:
            raise ValueError(f"limit must be > 0, got {limit}")
        return list(questions)
    if limit <= 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    answerable = sorted(q.id for q in questions if not q.is_impossible)
    impossible = sorted(q.id for q in questions if q.is_impossible)
    n_imp = min(limit // 2, len(impossible))
    n_ans = min(limit - n_imp, len(answerable))
    n_imp = min(limit - n_ans, len(impossible))  # answerable ran short: impossible fills the rest
    chosen = set(random.Random(seed).sample(answerable, n_ans)) | set(random.Random(seed).sample(impossible, n_imp))
    return [q for q in questions if q.id in chosen]


# --------------------------------------------------------------------------- SQuAD v2 scoring



f1 = squad_f1  # the official SQuAD v2 F1 against any gold answer (eval/metrics.py)


def quote_contains(quote: str, gold: str) -> bool:
    """Whether ``gold`` occurs in ``quote`` as whole tokens, both SQuAD-normalised (case, punctuation, articles)."""
    g = normalize_answer(gold)
    return bool(g) and f" {g} " in f" {normalize_answer(quote)} "


# --------------------------------------------------------------------------- records and summary


@dataclass(frozen=True)
class QaRecord:
    """The scored answer to one question. ``em``, ``f1`` and ``cited_gold`` are None for impossible questions."""

    id: str
    question: str
    is_impossible: bool
    prediction: str
    refused: bool
    em: float | None
    f1: float | None
    seconds: dict[str, float]
    citations: int
    cited_gold: bool | None


def score_answer(question: QaQuestion, answer: Answer, *, total_seconds: float | None = None) -> QaRecord:
    """Score one :class:`Answer`. A refusal of an answerable question scores EM = F1 = 0.

    ``seconds`` is ``answer.seconds`` plus ``"total"``: ``total_seconds`` (the measured wall time of the call) when
    given, else the answer's own ``"total"``, else the sum of its stages.
    """
    prediction = strip_citations(answer.text)
    seconds = {k: float(v) for k, v in answer.seconds.items()}
    if total_seconds is not None:
        seconds["total"] = total_seconds
    elif "total" not in seconds:
        seconds["total"] = sum(seconds.values())
    em = f1_score = cited = None
    if not question.is_impossible:
        em = 0.0 if answer.refused else exact_match(prediction, question.answers)
        f1_score = 0.0 if answer.refused else f1(prediction, question.answers)
        cited = any(quote_contains(c.quote, g) for c in answer.citations for g in question.answers)
    return QaRecord(
        id=question.id,
        question=question.question,
        is_impossible=question.is_impossible,
        prediction=prediction,
        refused=answer.refused,
        em=em,
        f1=f1_score,
        seconds=seconds,
        citations=len(answer.citations),
        cited_gold=cited,
    )


def mean(values: Sequence[float]) -> float | None:
    """The mean, rounded to 4 places; None for no values."""
    return round(sum(values) / len(values), 4) if values else None


def share(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def round_seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarize(records: Sequence[QaRecord]) -> dict[str, Any]:
    """The summary of a run; every metric is None when it has no data (never a division by zero).

    - ``em``, ``f1``: means over answerable questions, a refusal counting 0.
    - ``refusal_rate``: share of impossible questions refused; ``false_refusal_rate``: share of answerable ones refused.
    - ``refusal_bacc``: ``(refusal_rate + 1 - false_refusal_rate) / 2`` (None unless both kinds are present).
    - ``cited_gold_rate``: share of answered (not refused) answerable questions with a gold answer in a cited quote.
    - ``p50_s``, ``p95_s``: percentiles (:func:`eval.metrics.percentile`) of the total seconds per question;
      ``stages``: the same per stage, over the questions whose answer reported that stage.
    - ``questions``, ``answerable``, ``unanswerable``: counts.

    Rates and means are rounded to 4 decimals, seconds to 0.1 ms.
    """
    answerable = [r for r in records if not r.is_impossible]
    impossible = [r for r in records if r.is_impossible]
    refusal_rate = share([r.refused for r in impossible])
    false_refusal_rate = share([r.refused for r in answerable])
    bacc = None
    if impossible and answerable:  # from the unrounded rates
        refused_ok = sum(r.refused for r in impossible) / len(impossible)
        answered_ok = 1 - sum(r.refused for r in answerable) / len(answerable)
        bacc = round((refused_ok + answered_ok) / 2, 4)
    stage_values: dict[str, list[float]] = {}
    for r in records:
        for stage, value in r.seconds.items():
            if stage != "total":
                stage_values.setdefault(stage, []).append(value)
    totals = [r.seconds["total"] for r in records if "total" in r.seconds]
    return {
        "em": mean([r.em or 0.0 for r in answerable]),
        "f1": mean([r.f1 or 0.0 for r in answerable]),
        "refusal_rate": refusal_rate,
        "false_refusal_rate": false_refusal_rate,
        "refusal_bacc": bacc,
        "cited_gold_rate": share([bool(r.cited_gold) for r in answerable if not r.refused]),
        "p50_s": round_seconds(percentile(totals, 50)),
        "p95_s": round_seconds(percentile(totals, 95)),
        "stages": {
            stage: {"p50_s": round_seconds(percentile(v, 50)), "p95_s": round_seconds(percentile(v, 95))}
            for stage, v in stage_values.items()
        },
        "questions": len(records),
        "answerable": len(answerable),
        "unanswerable": len(impossible),
    }


# --------------------------------------------------------------------------- the run


@dataclass
class QaReport:
    """One evaluation run: per-question records, the summary and what was run."""

    records: list[QaRecord]
    summary: dict[str, Any]
    mode: str | None
    limit: int | None
    seed: int
    index_name: str
    model: str | None = None
    embed_model: str | None = None
    documents: int = 0
    chunks: int = 0
    index_seconds: float = 0.0

    def to_json(self, *, records: bool = False) -> str:
        """One line of JSON: the summary keys at top level, then what was run (and the records if asked)."""
        out: dict[str, Any] = dict(self.summary)
        out.update(
            mode=self.mode, model=self.model, limit=self.limit, seed=self.seed, index_name=self.index_name,
            embed_model=self.embed_model, documents=self.documents, chunks=self.chunks,
            index_seconds=self.index_seconds,
        )
        if records:
            out["records"] = [asdict(r) for r in self.records]
        return json.dumps(out, ensure_ascii=False)


def evaluate_qa(
    passages: Path,
    questions: Path,
    *,
    settings: Settings,
    limit: int | None = None,
    seed: int = 0,
    mode: AnswerMode | None = None,
    answer: AnswerFn | None = None,
    progress: ProgressFactory | None = None,
    embedder: Embedder | None = None,
) -> QaReport:
    """Index ``passages`` into its own index, answer a sample of ``questions`` and score the answers.

    Args:
        passages: the passages JSONL (``_id``, ``title``, ``text``); its index is named by
            :func:`eval.retrieval.corpus_index_name` and reused, incrementally, on later runs.
        questions: the questions JSONL.
        settings: the product settings.
        limit: how many questions (stratified, see :func:`sample_questions`); None: all, in file order.
        seed: the sampling seed.
        mode: the answer mode given to the pipeline (None: its default).
        answer: ``question -> Answer``; default ``rag.pipeline.Pipeline(settings, index_name=..., mode=mode).ask``.
        progress: progress factory, called once for the chunks to embed and once for the questions.
        embedder: embedder for indexing (tests pass a loaded one); default from settings.

    Returns:
        The report: records, summary (:func:`summarize`), mode, limit, seed and index name.

    Raises:
        PathNotFoundError, UnreadableDocumentError: a missing or malformed input file.
        ValueError: ``limit`` is not positive.
    """
    from index.ingest import ingest

    passages, questions = Path(passages), Path(questions)
    all_questions = load_questions(questions)  # fail on a bad questions file before indexing anything
    sampled = sample_questions(all_questions, limit, seed)
    index_name = corpus_index_name(passages)
    ingested = ingest([passages], settings, index_name=index_name, embedder=embedder, progress=progress)
    if answer is None:
        from rag.pipeline import Pipeline

        pipe = Pipeline(settings, index_name=index_name, mode=mode)
        warm_up = getattr(pipe, "warm_up", None)
        if callable(warm_up):
            warm_up()  # load the models now, not inside the first question's latency
        answer = pipe.ask
    bar = progress(len(sampled)) if progress is not None else None
    records: list[QaRecord] = []
    first: Answer | None = None
    for q in sampled:
        t = time.perf_counter()
        result = answer(q.question)
        elapsed = time.perf_counter() - t
        if first is None:
            first = result
        records.append(score_answer(q, result, total_seconds=elapsed))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return QaReport(
        records=records,
        summary=summarize(records),
        mode=mode if mode is not None else (first.mode if first else None),
        limit=limit,
        seed=seed,
        index_name=index_name,
        model=first.model if first else None,
        embed_model=settings.embed_model,
        documents=ingested.documents_total,
        chunks=ingested.chunks_total,
        index_seconds=ingested.seconds.get("total", 0.0),
    )


def _fmt(value: Any, *, pct: bool = False, secs: bool = False) -> str:
    if value is None:
        return "n/a"
    if pct:
        return f"{100 * value:.1f}%"
    if secs:
        return f"{value:.3f} s"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_report(report: QaReport) -> str:
    """A human-readable table of the summary and of the latency per stage."""
    s = report.summary
    limit = "all" if report.limit is None else str(report.limit)
    lines = [
        (
            f"mode: {report.mode or 'default'}   model: {report.model or '-'}   questions: {s['questions']} "
            f"({s['answerable']} answerable, {s['unanswerable']} unanswerable)   limit: {limit}   seed: {report.seed}"
        ),
        f"index: {report.index_name} ({report.documents} passages, {report.chunks} chunks)",
        "",
        f"{'metric':<20} {'value':>10}",
        f"{'-' * 20} {'-' * 10}",
    ]
    rows: list[tuple[str, str]] = [
        ("exact match", _fmt(s["em"], pct=True)),
        ("F1", _fmt(s["f1"], pct=True)),
        ("refusal rate", _fmt(s["refusal_rate"], pct=True)),
        ("false refusal rate", _fmt(s["false_refusal_rate"], pct=True)),
        ("refusal bal. acc.", _fmt(s["refusal_bacc"], pct=True)),
        ("cited gold rate", _fmt(s["cited_gold_rate"], pct=True)),
    ]
    lines += [f"{name:<20} {value:>10}" for name, value in rows]
    lines += ["", f"{'stage':<20} {'p50':>10} {'p95':>10}", f"{'-' * 20} {'-' * 10} {'-' * 10}"]
    for stage, q in s["stages"].items():
        lines.append(f"{stage:<20} {_fmt(q['p50_s'], secs=True):>10} {_fmt(q['p95_s'], secs=True):>10}")
    lines.append(f"{'total':<20} {_fmt(s['p50_s'], secs=True):>10} {_fmt(s['p95_s'], secs=True):>10}")
    return "\n".join(lines)
