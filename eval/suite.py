"""The groundedness suite: a golden set through the real pipeline, every answer scored from the outside.

Per question (``SuiteRecord``):

- **correct** (answerable): not refused and the answer contains a gold answer (``eval.golden`` normalisation); **f1**:
  SQuAD token F1 of the answer against the gold answers. Unanswerable: correct = refused.
- **cited**: some citation's quote holds the evidence or a gold answer.
- **grounded**: the share of shown sentences that their own citations support. A sentence is supported when it is
  quoted verbatim from a cited passage, or when the support checker (``rag.support``) accepts it against the cited
  passages. **citation precision**: the share of (sentence, citation) pairs where that one passage supports the
  sentence. **citation recall**: of the sentences some passage of the answer supports, the share that carry a citation.
- **retrieval**: the standalone question is searched again (top ``k``); a hit is a chunk from one of
  ``expected_sources`` or, without them, a chunk that holds the ``evidence`` string; **hit@k** and the reciprocal rank.
- **passed**: answerable -> correct, cited and every shown sentence supported; unanswerable -> refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eval.golden import GoldenItem, normalize, percentile_inclusive, score_answer
from eval.qa import f1 as token_f1
from rag.pipeline import strip_citations
from rag.types import Answer


@dataclass
class SuiteRecord:
    id: str
    question: str
    standalone_question: str
    answerable: bool
    follow_up: bool
    answer: str
    refused: bool
    refusal_reason: str | None
    citations: list[dict[str, Any]]
    correct: bool
    f1: float | None
    cited: bool | None
    grounded: float | None
    sentence_scores: list[float]
    citation_precision: float | None
    citation_recall: float | None
    retrieval_hit: bool | None
    reciprocal_rank: float | None
    seconds: float
    passed: bool
    why: str
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _verbatim(sentence: str, passage: str) -> bool:
    s = normalize(sentence)
    return bool(s) and s in normalize(passage)


class Judge:
    """Checks sentences against passages: verbatim first, then the support checker (results cached)."""

    def __init__(self, checker: Any) -> None:
        self.checker = checker
        self._cache: dict[tuple[str, str, str | None], tuple[bool, float]] = {}

    def supports(self, passage: str, sentence: str, question: str | None) -> tuple[bool, float]:
        key = (passage, sentence, question)
        if key not in self._cache:
            if _verbatim(sentence, passage):
                self._cache[key] = (True, 1.0)
            else:
                res = self.checker.check(passage, sentence, question=question)
                self._cache[key] = (bool(res.supported), float(res.score))
        return self._cache[key]


def _sentence_checks(answer: Answer, judge: Judge) -> tuple[float | None, list[float], float | None, float | None]:
    """grounded share, sentence scores, citation precision, citation recall of one (non-refused) answer."""
    quotes = {c.n: c.quote for c in answer.citations}
    all_quotes = "\n".join(quotes.values())
    question = answer.standalone_question
    grounded, scores, pair_ok, pairs, supported_any, supported_cited = 0, [], 0, 0, 0, 0
    sentences = [(strip_citations(s.text).strip(), [n for n in s.citations if n in quotes]) for s in answer.sentences]
    sentences = [(text, cites) for text, cites in sentences if text]
    if not sentences:
        return None, [], None, None
    for text, cites in sentences:
        own = "\n".join(quotes[n] for n in cites)
        ok, score = judge.supports(own, text, question) if own else (False, 0.0)
        grounded += ok
        scores.append(round(score, 4))
        for n in cites:
            pairs += 1
            pair_ok += judge.supports(quotes[n], text, question)[0]
        any_ok = ok or (bool(all_quotes) and judge.supports(all_quotes, text, question)[0])
        supported_any += any_ok
        supported_cited += any_ok and bool(cites)
    return (grounded / len(sentences), scores, (pair_ok / pairs) if pairs else None,
            (supported_cited / supported_any) if supported_any else None)


def _retrieval(item: GoldenItem, query: str, retriever: Any, k: int) -> tuple[bool | None, float | None]:
    if not item.expected_sources and not item.evidence:
        return None, None
    hits = retriever.search(query, k=k)
    wanted = {s for s in item.expected_sources} | {Path(s).name for s in item.expected_sources}
    evidence = normalize(item.evidence) if item.evidence else None
    for rank, hit in enumerate(hits, start=1):
        src = hit.chunk.source
        if (wanted and (src in wanted or Path(src).name in wanted)) or (
            not wanted and evidence and evidence in normalize(hit.chunk.text)
        ):
            return True, 1.0 / rank
    return False, 0.0


def score_item(item: GoldenItem, answer: Answer, *, judge: Judge, retriever: Any | None, k: int,
               wall_seconds: float | None = None) -> SuiteRecord:
    base = score_answer(item, answer, wall_seconds=wall_seconds)
    grounded, scores, precision, recall = (None, [], None, None)
    f1 = None
    if not answer.refused:
        grounded, scores, precision, recall = _sentence_checks(answer, judge)
    if item.answerable:
        f1 = 0.0 if answer.refused else round(token_f1(strip_citations(answer.text), list(item.answers)), 4)
    hit, rr = _retrieval(item, answer.standalone_question, retriever, k) if retriever is not None else (None, None)
    if item.answerable:
        reasons = []
        if answer.refused:
            reasons.append(f"refused ({answer.refusal_reason})")
        else:
            if not base.correct:
                reasons.append("no gold answer in the text")
            if not base.cited:
                reasons.append("no citation holds the evidence")
            if grounded is None or grounded < 1.0:
                reasons.append("an unsupported sentence" if grounded is not None else "no sentences")
        passed = not reasons
    else:
        passed = answer.refused
        reasons = [] if passed else ["answered an unanswerable question"]
    return SuiteRecord(
        id=item.id, question=item.question, standalone_question=answer.standalone_question,
        answerable=item.answerable, follow_up=item.follow_up, answer=answer.text, refused=answer.refused,
        refusal_reason=answer.refusal_reason,
        citations=[{"n": c.n, "source": c.source, "page": c.page, "quote": c.quote, "start": c.start, "end": c.end}
                   for c in answer.citations],
        correct=base.correct, f1=f1, cited=base.cited, grounded=None if grounded is None else round(grounded, 4),
        sentence_scores=scores, citation_precision=None if precision is None else round(precision, 4),
        citation_recall=None if recall is None else round(recall, 4), retrieval_hit=hit,
        reciprocal_rank=None if rr is None else round(rr, 4), seconds=round(base.seconds, 3), passed=passed,
        why="; ".join(reasons) or "ok", stages=dict(answer.seconds),
    )


AskFn = Callable[[str, list[dict[str, str]]], Answer]


def run_suite(items: Sequence[GoldenItem], ask: AskFn, *, checker: Any, retriever: Any | None = None, k: int = 6,
              on_record: Callable[[SuiteRecord], None] | None = None) -> list[SuiteRecord]:
    """Ask every item in file order (follow-ups get their conversation's earlier turns, with the pipeline's own
    answers, or the item's explicit ``history``) and score it."""
    judge = Judge(checker)
    histories: dict[str, list[dict[str, str]]] = {}
    records: list[SuiteRecord] = []
    for item in items:
        if item.history is not None:
            history = [{"role": r, "content": c} for r, c in item.history]
        elif item.conversation is None:
            history = []
        else:
            if item.turn == 0:
                histories[item.conversation] = []
            history = list(histories.setdefault(item.conversation, []))
        t = time.perf_counter()
        answer = ask(item.question, history)
        wall = time.perf_counter() - t
        record = score_item(item, answer, judge=judge, retriever=retriever, k=k, wall_seconds=wall)
        records.append(record)
        if item.conversation is not None:
            histories[item.conversation] += [{"role": "user", "content": item.question},
                                             {"role": "assistant", "content": answer.text}]
        if on_record is not None:
            on_record(record)
    return records


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def _pct(values: Sequence[float], q: int) -> float | None:
    value = percentile_inclusive(values, q)  # the golden report's percentile, so both reports agree
    return None if math.isnan(value) else round(value, 3)


def summarize_suite(records: Sequence[SuiteRecord]) -> dict[str, Any]:
    answerable = [r for r in records if r.answerable]
    unanswerable = [r for r in records if not r.answerable]
    answered = [r for r in records if not r.refused]
    hits = [r.retrieval_hit for r in records if r.retrieval_hit is not None]
    return {
        "questions": len(records),
        "passed": sum(r.passed for r in records),
        "pass_rate": round(sum(r.passed for r in records) / len(records), 4) if records else None,
        "failed_ids": [r.id for r in records if not r.passed],
        "answerable": len(answerable),
        "correct": sum(r.correct for r in answerable),
        "accuracy": round(sum(r.correct for r in answerable) / len(answerable), 4) if answerable else None,
        "f1": _mean([r.f1 for r in answerable]),
        "cited_rate": round(sum(bool(r.cited) for r in answerable) / len(answerable), 4) if answerable else None,
        "unanswerable": len(unanswerable),
        "refusal_accuracy": (round(sum(r.refused for r in unanswerable) / len(unanswerable), 4)
                             if unanswerable else None),
        "false_refusals": sum(r.refused for r in answerable),
        "groundedness": _mean([r.grounded for r in answered]),
        "citation_precision": _mean([r.citation_precision for r in answered]),
        "citation_recall": _mean([r.citation_recall for r in answered]),
        "hit_at_k": round(sum(hits) / len(hits), 4) if hits else None,
        "mrr": _mean([r.reciprocal_rank for r in records]),
        "p50_seconds": _pct([r.seconds for r in records], 50),
        "p95_seconds": _pct([r.seconds for r in records], 95),
        "total_seconds": round(sum(r.seconds for r in records), 1),
    }


def format_record(r: SuiteRecord) -> str:
    verdict = "pass" if r.passed else "FAIL"
    answer = " ".join(r.answer.split())
    answer = answer if len(answer) <= 70 else answer[:69] + "\u2026"
    return f"{verdict} {r.id:<8} {r.seconds:6.2f}s  {r.why:<40} {answer}"


def format_summary(s: dict[str, Any]) -> str:
    def v(key: str, pct: bool = False) -> str:
        x = s.get(key)
        if x is None:
            return "n/a"
        return f"{100 * x:.1f}%" if pct else f"{x}"

    return "\n".join([
        f"passed {s['passed']}/{s['questions']} ({v('pass_rate', True)})",
        (f"answerable: correct {s['correct']}/{s['answerable']} ({v('accuracy', True)}), F1 {v('f1')}, "
         f"cited {v('cited_rate', True)}, false refusals {s['false_refusals']}"),
        f"unanswerable refused: {v('refusal_accuracy', True)} of {s['unanswerable']}",
        (f"groundedness {v('groundedness', True)}, citation precision {v('citation_precision', True)}, "
         f"citation recall {v('citation_recall', True)}"),
        f"retrieval hit@k {v('hit_at_k', True)}, MRR {v('mrr')}",
        f"seconds per question p50 {v('p50_seconds')}, p95 {v('p95_seconds')}, total {v('total_seconds')}",
    ] + ([f"failed: {', '.join(s['failed_ids'])}"] if s["failed_ids"] else []))
