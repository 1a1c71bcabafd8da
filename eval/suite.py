"""The groundedness suite: a golden set through the real pipeline, every answer scored from the outside.

Per question (``SuiteRecord``):

- **correct** (answerable): not refused and the answer contains a gold answer (``eval.golden`` normalisation); **f1**:
  SQuAD token F1 of the answer against the gold answers. Unanswerable: correct = refused.
- **cited**: some citation's quote holds the evidence or a gold answer.
- **grounded**: the share of shown sentences that their own citations support. A sentence is supported when it is
  quoted verbatim from a cited passage, or when the support checker (``rag.support``) accepts it against the cited
  passages. **citation precision**: the share of (sentence, citation) pairs where that one passage supports the
  sentence. **citation recall**: of the sentences some passage of the answer supports, the share that carry a citation.
- **retrieval**: the standalone question is searched again, once, as deep as the pipeline searches
  (``rerank_candidates``) or ``k`` if deeper. Answerable rows only: a hit is a chunk from one of ``expected_sources``
  or, without them, a chunk that holds the ``evidence``; **hit@k** and the reciprocal rank over the first ``k``.
- **passed**: answerable -> correct, cited and every shown sentence supported; unanswerable -> refused.
- **stage** (misses only): the pipeline stage that lost the answer, see :func:`miss_stage`; **wrong_supported**: a
  wrong answer shown as supported (see :func:`shown_supported`), on every row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eval.golden import (
    GoldenItem,
    contains,
    evidence_in,
    from_expected_source,
    normalize,
    score_answer,
    source_name,
)
from eval.metrics import percentile, squad_f1
from rag.pipeline import strip_citations
from rag.types import Answer, Hit

# The stages a miss is put down to, in pipeline order (miss_stage checks them in this order).
STAGES = ("retrieval", "evidence", "gate", "not_found", "wrong_span", "verification", "citation",
          "wrong_answer_passed")
STAGE_MEANING = {
    "retrieval": "no gold answer or evidence in the chunks retrieval returned",
    "evidence": "retrieved, but not in the evidence passages shown to the answerer",
    "gate": "refused before the LLM (no_evidence) although the evidence held a gold answer",
    "not_found": "the LLM said NOT FOUND although the evidence held a gold answer",
    "wrong_span": "answered from evidence that held a gold answer, with none of them",
    "verification": "the LLM's answer was dropped by verification (not_supported, fallback, or a dropped sentence "
                    "held the gold answer) and the shown answer is wrong",
    "citation": "correct answer, but no citation holds the evidence or a sentence is unsupported",
    "wrong_answer_passed": "a wrong answer shown as supported (unanswerable question answered)",
}


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
    stage: str | None = None
    wrong_supported: bool = False
    signals: dict[str, float] = field(default_factory=dict)
    expected_sources: list[str] = field(default_factory=list)

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


def _retrieval(item: GoldenItem, hits: Sequence[Hit], k: int) -> tuple[bool | None, float | None]:
    """hit@k and the reciprocal rank over the first ``k`` of ``hits`` (answerable rows with sources or evidence)."""
    if not item.answerable or (not item.expected_sources and not item.evidence):
        return None, None
    for rank, hit in enumerate(hits[:k], start=1):
        if (item.expected_sources and from_expected_source(hit.chunk.source, item.expected_sources)) or (
            not item.expected_sources and item.evidence and evidence_in(hit.chunk.text, item.evidence)
        ):
            return True, 1.0 / rank
    return False, 0.0


def _holds_gold(item: GoldenItem, text: str, source: str) -> bool:
    """Whether a chunk or passage holds the evidence, or a gold answer in one of the expected sources (a bare
    number such as ``128 bits`` in another document is not the answer)."""
    if item.evidence and evidence_in(text, item.evidence):
        return True
    if item.expected_sources and not from_expected_source(source, item.expected_sources):
        return False
    return any(contains(text, a) for a in item.answers)


def shown_supported(answer: Answer) -> bool:
    """Whether the answer is shown as supported: not refused, and it has sentences, every one marked supported."""
    return not answer.refused and bool(answer.sentences) and all(s.supported for s in answer.sentences)


def is_wrong_supported(item: GoldenItem, answer: Answer) -> bool:
    """A wrong answer shown as supported: an unanswerable question answered, or an answerable one answered without
    any gold answer, and :func:`shown_supported`."""
    if not shown_supported(answer):
        return False
    return not item.answerable or not any(contains(strip_citations(answer.text), a) for a in item.answers)


def miss_stage(item: GoldenItem, answer: Answer, retrieved: Sequence[Hit] | None, *, passed: bool) -> str | None:
    """The pipeline stage that lost a missed question, or None when it passed.

    "Gold" is the evidence passage or a gold answer (a gold answer counts only in a chunk or passage from one of the
    row's ``expected_sources``, when it has them). The first rule that matches wins, earliest stage first:

    Answerable rows:

    1. ``retrieval``: no retrieved chunk (``retrieved``: the pipeline-deep search for the standalone question) holds
       gold. Skipped when ``retrieved`` is None (no retriever).
    2. ``evidence``: no passage in ``answer.evidence`` (what the answerer was shown) holds gold.
    3. ``gate``: refused with ``no_evidence`` (the answerability decision, before any LLM call).
    4. ``not_found``: refused with ``not_found`` (the LLM said NOT FOUND).
    5. ``wrong_span``: answered (not refused, not ``fallback``) without any gold answer in the shown text, and no
       dropped sentence held one either (the model never wrote it).
    6. ``verification``: refused with ``not_supported``, or ``fallback``, or a dropped sentence held a gold answer,
       and the shown text has no gold answer.
    7. ``citation``: the rest: a correct text, but no citation holds gold or a shown sentence is unsupported.

    Unanswerable rows (a miss is an answer where a refusal was due): ``verification`` when ``fallback`` (the LLM's
    answer was dropped and the extractive fallback answered), else ``wrong_answer_passed``.

    Because the evidence check comes first, an answerable row answered wrongly is ``wrong_span`` (or
    ``verification``), never ``wrong_answer_passed``; :func:`is_wrong_supported` counts those on every row.
    """
    if passed:
        return None
    if not item.answerable:
        return "verification" if answer.fallback else "wrong_answer_passed"
    if retrieved is not None and not any(_holds_gold(item, h.chunk.text, h.chunk.source) for h in retrieved):
        return "retrieval"
    if not any(_holds_gold(item, p.text, p.source) for p in answer.evidence):
        return "evidence"
    if answer.refused:
        if answer.refusal_reason == "not_found":
            return "not_found"
        if answer.refusal_reason == "not_supported":
            return "verification"
        return "gate"
    correct = any(contains(strip_citations(answer.text), a) for a in item.answers)
    dropped_gold = any(contains(strip_citations(s.text), a) for s in answer.dropped for a in item.answers)
    if not correct:
        return "verification" if answer.fallback or dropped_gold else "wrong_span"
    return "citation"


def score_item(item: GoldenItem, answer: Answer, *, judge: Judge, hits: Sequence[Hit] | None, k: int,
               candidates: int | None = None, wall_seconds: float | None = None) -> SuiteRecord:
    """Score one answer. ``hits``: the suite's own search for the standalone question (None without a retriever),
    at least ``max(k, candidates)`` deep; hit@k reads the first ``k``, :func:`miss_stage` the first ``candidates``
    (default ``k``)."""
    base = score_answer(item, answer, wall_seconds=wall_seconds)
    scores: list[float] = []
    grounded, precision, recall = None, None, None
    f1 = None
    if not answer.refused:
        grounded, scores, precision, recall = _sentence_checks(answer, judge)
    if item.answerable:
        f1 = 0.0 if answer.refused else round(squad_f1(strip_citations(answer.text), list(item.answers)), 4)
    hit, rr = _retrieval(item, hits, k) if hits is not None else (None, None)
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
    retrieved = None if hits is None else list(hits[: candidates or k])
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
        why="; ".join(reasons) or "ok", stages=dict(answer.seconds), signals=dict(answer.signals),
        stage=miss_stage(item, answer, retrieved, passed=passed), wrong_supported=is_wrong_supported(item, answer),
        expected_sources=[source_name(s) for s in item.expected_sources],
    )


AskFn = Callable[[str, list[dict[str, str]]], Answer]


def run_suite(items: Sequence[GoldenItem], ask: AskFn, *, checker: Any, retriever: Any | None = None, k: int = 6,
              candidates: int | None = None,
              on_record: Callable[[SuiteRecord], None] | None = None) -> list[SuiteRecord]:
    """Ask every item in file order (follow-ups get their conversation's earlier turns, with the pipeline's own
    answers, or the item's explicit ``history``) and score it.

    ``retriever`` (optional) searches the standalone question of each answerable item once, ``max(k, candidates)``
    deep, for hit@k and for the miss stage. ``candidates``: how deep the pipeline searches
    (``settings.rerank_candidates``); default the retriever's ``settings.rerank_candidates``, else ``k``.
    """
    judge = Judge(checker)
    if candidates is None:
        candidates = getattr(getattr(retriever, "settings", None), "rerank_candidates", None) or k
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
        hits = None  # searched for answerable rows only: hit@k and the miss stage need nothing for the others
        if retriever is not None and item.answerable:
            hits = retriever.search(answer.standalone_question, k=max(k, candidates))
        record = score_item(item, answer, judge=judge, hits=hits, k=k, candidates=candidates, wall_seconds=wall)
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
    value = percentile(values, q)  # the one percentile of eval.metrics, as in every report
    return None if value is None else round(value, 3)


def _by_source(records: Sequence[SuiteRecord]) -> dict[str, dict[str, int]]:
    """passed / total per expected source file (a row with several sources counts under each)."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        for name in dict.fromkeys(r.expected_sources):
            entry = out.setdefault(name, {"passed": 0, "total": 0})
            entry["total"] += 1
            entry["passed"] += r.passed
    return dict(sorted(out.items()))


def summarize_suite(records: Sequence[SuiteRecord]) -> dict[str, Any]:
    answerable = [r for r in records if r.answerable]
    unanswerable = [r for r in records if not r.answerable]
    answered = [r for r in records if not r.refused]
    hits = [r.retrieval_hit for r in records if r.retrieval_hit is not None]
    misses = [r for r in records if not r.passed]
    return {
        "questions": len(records),
        "passed": sum(r.passed for r in records),
        "pass_rate": round(sum(r.passed for r in records) / len(records), 4) if records else None,
        "failed_ids": [r.id for r in misses],
        "miss_stages": {stage: sum(r.stage == stage for r in misses) for stage in STAGES},
        "wrong_supported": sum(r.wrong_supported for r in records),
        "wrong_supported_ids": [r.id for r in records if r.wrong_supported],
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
        "by_source": _by_source(records),
    }


def format_record(r: SuiteRecord) -> str:
    verdict = "pass" if r.passed else "FAIL"
    answer = " ".join(r.answer.split())
    answer = answer if len(answer) <= 70 else answer[:69] + "\u2026"
    stage = f"[{r.stage}]" if r.stage else ""
    return f"{verdict} {r.id:<8} {r.seconds:6.2f}s  {stage:<21} {r.why:<40} {answer}"


def format_summary(s: dict[str, Any]) -> str:
    def v(key: str, pct: bool = False) -> str:
        x = s.get(key)
        if x is None:
            return "n/a"
        return f"{100 * x:.1f}%" if pct else f"{x}"

    lines = [
        f"passed {s['passed']}/{s['questions']} ({v('pass_rate', True)})",
        (f"answerable: correct {s['correct']}/{s['answerable']} ({v('accuracy', True)}), F1 {v('f1')}, "
         f"cited {v('cited_rate', True)}, false refusals {s['false_refusals']}"),
        f"unanswerable refused: {v('refusal_accuracy', True)} of {s['unanswerable']}",
        (f"groundedness {v('groundedness', True)}, citation precision {v('citation_precision', True)}, "
         f"citation recall {v('citation_recall', True)}"),
        f"retrieval hit@k {v('hit_at_k', True)}, MRR {v('mrr')}",
        f"seconds per question p50 {v('p50_seconds')}, p95 {v('p95_seconds')}, total {v('total_seconds')}",
    ]
    wrong_ids = s.get("wrong_supported_ids") or []
    lines.append(f"wrong answers shown as supported: {s.get('wrong_supported', 0)}"
                 + (f" ({', '.join(wrong_ids)})" if wrong_ids else ""))
    stages = {k: n for k, n in (s.get("miss_stages") or {}).items() if n}
    if stages:
        lines.append("misses by stage: " + ", ".join(f"{k} {n}" for k, n in stages.items()))
    if s.get("by_source"):
        lines.append("by source: " + ", ".join(f"{k} {e['passed']}/{e['total']}" for k, e in s["by_source"].items()))
    if s["failed_ids"]:
        lines.append(f"failed: {', '.join(s['failed_ids'])}")
    return "\n".join(lines)
