"""The support checker measured on labelled (context, question, response) pairs, as in HaluEval QA.

    rows = load_pairs("../shared/data/halueval_qa/pairs.jsonl")
    report = evaluate_groundedness(rows, SupportChecker())
    report.summary()["balanced_accuracy"]

"Unsupported" is the positive class for precision, recall and F1 (the checker's job is to catch unsupported
answers). AUROC ranks by ``1 - support score``. Figures are also given on the ``length_matched`` rows, where the
supported and unsupported responses have similar lengths, so length alone cannot separate them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.data import DataFileError, iter_jsonl

LABELS = ("supported", "unsupported")


@dataclass(frozen=True)
class Pair:
    id: str
    context: str
    question: str | None
    response: str
    label: str  # supported | unsupported
    length_matched: bool = False


def load_pairs(path: str | Path) -> list[Pair]:
    """Rows ``{context, question, response, label[, id, length_matched]}`` from a JSONL file.

    Raises:
        ValueError: a row that is not JSON, misses a field, or has an unknown label (with its line number).
    """
    rows: list[Pair] = []
    for where, r in iter_jsonl(path):
        missing = [k for k in ("context", "response", "label") if not isinstance(r.get(k), str) or not r[k].strip()]
        if missing:
            raise DataFileError(f"{where}: missing or empty {', '.join(missing)}")
        if r["label"] not in LABELS:
            raise DataFileError(f"{where}: label must be supported or unsupported, got {r['label']!r}")
        rows.append(Pair(id=str(r.get("id", where.rsplit(":", 1)[1])), context=r["context"],
                         question=r.get("question") or None,
                         response=r["response"], label=r["label"], length_matched=bool(r.get("length_matched"))))
    if not rows:
        raise DataFileError(f"{path}: no rows")
    return rows


# --------------------------------------------------------------------------- metrics (numpy only)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Mean of the recalls of both classes (``y`` in {0, 1}); None when a class is missing."""
    if y_true.size == 0 or len(set(y_true.tolist())) < 2:
        return None
    recalls = [float(np.mean(y_pred[y_true == c] == c)) for c in (0, 1)]
    return sum(recalls) / 2


def auroc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve of ``score`` for positives ``y_true == 1`` (ties count one half)."""
    pos, neg = score[y_true == 1], score[y_true == 0]
    if pos.size == 0 or neg.size == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def precision_recall_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    tp = float(np.sum((y_pred == 1) & (y_true == 1)))
    fp = float(np.sum((y_pred == 1) & (y_true == 0)))
    fn = float(np.sum((y_pred == 0) & (y_true == 1)))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


# --------------------------------------------------------------------------- an LLM as the judge


JUDGE_SYSTEM = (
    "You check answers against a context. Reply with one word: yes if the context supports the answer to the "
    "question, no if it does not (the answer is wrong, or the context does not say)."
)


@dataclass(frozen=True)
class Verdict:
    score: float
    supported: bool
    threshold: float = 0.5


class LlmJudge:
    """An LLM (local or hosted, anything with ``chat(messages, max_tokens=, temperature=)``) asked yes or no per
    pair. Its score is 1 for yes and 0 for no, so its AUROC is that of a single threshold."""

    def __init__(self, llm: Any, name: str = "llm") -> None:
        self.llm = llm
        self.name = name

    def check_many(self, pairs: Sequence[tuple[str, str]], *, questions: Sequence[str | None] | None = None,
                   ) -> list[Verdict]:
        out = []
        for i, (context, response) in enumerate(pairs):
            question = questions[i] if questions else None
            user = f"Context: {context}\n\n" + (f"Question: {question}\n" if question else "") + \
                f"Answer: {response}\n\nIs the answer supported by the context? Reply yes or no."
            reply = self.llm.chat([{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}],
                                  max_tokens=3, temperature=0.0)
            yes = reply.strip().lower().lstrip("*\"' ").startswith("yes")
            out.append(Verdict(score=1.0 if yes else 0.0, supported=yes))
        return out


# --------------------------------------------------------------------------- evaluation


@dataclass
class GroundednessReport:
    rows: list[Pair]
    scores: list[float]
    supported: list[bool]
    threshold: float
    seconds: float
    judge: str = "support-checker"
    records: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        y = np.array([r.label == "unsupported" for r in self.rows], dtype=int)
        pred = np.array([not s for s in self.supported], dtype=int)
        unsup_score = 1.0 - np.array(self.scores)
        lm = np.array([r.length_matched for r in self.rows], dtype=bool)
        p, r, f = precision_recall_f1(y, pred)
        return {
            "judge": self.judge,
            "rows": len(self.rows),
            "rows_length_matched": int(lm.sum()),
            "balanced_accuracy": _round(balanced_accuracy(y, pred)),
            "balanced_accuracy_length_matched": _round(balanced_accuracy(y[lm], pred[lm])) if lm.any() else None,
            "auroc": _round(auroc(y, unsup_score)),
            "auroc_length_matched": _round(auroc(y[lm], unsup_score[lm])) if lm.any() else None,
            "precision_unsupported": _round(p),
            "recall_unsupported": _round(r),
            "f1_unsupported": _round(f),
            "threshold": round(self.threshold, 4),
            "ms_per_pair": round(1000 * self.seconds / max(1, len(self.rows)), 1),
        }


def evaluate_groundedness(
    rows: Sequence[Pair], checker: Any, *, batch: int = 32, progress: Callable[[int], None] | None = None,
    judge: str = "support-checker",
) -> GroundednessReport:
    """Score every row with ``checker`` (a :class:`rag.support.SupportChecker` or anything with the same
    ``check_many(pairs, questions=...)``)."""
    t = time.perf_counter()
    scores: list[float] = []
    supported: list[bool] = []
    threshold = float("nan")
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        results = checker.check_many([(r.context, r.response) for r in part], questions=[r.question for r in part])
        for res in results:
            scores.append(float(res.score))
            supported.append(bool(res.supported))
            threshold = float(res.threshold)
        if progress:
            progress(len(part))
    seconds = time.perf_counter() - t
    records = [
        {"id": r.id, "label": r.label, "length_matched": r.length_matched, "score": round(s, 4),
         "verdict": "supported" if ok else "unsupported", "correct": (r.label == "supported") == ok,
         "question": r.question, "response": r.response}
        for r, s, ok in zip(rows, scores, supported, strict=True)
    ]
    return GroundednessReport(rows=list(rows), scores=scores, supported=supported, threshold=threshold,
                              seconds=seconds, records=records, judge=judge)


def format_summary(summary: dict[str, Any]) -> str:
    """The terminal table."""
    def v(key: str) -> str:
        x = summary.get(key)
        return "n/a" if x is None else f"{x:.3f}"

    return "\n".join([
        f"groundedness ({summary['judge']}): {summary['rows']} rows, {summary['rows_length_matched']} length-matched",
        f"{'':28}{'all':>8}{'length-matched':>16}",
        f"{'balanced accuracy':28}{v('balanced_accuracy'):>8}{v('balanced_accuracy_length_matched'):>16}",
        f"{'AUROC':28}{v('auroc'):>8}{v('auroc_length_matched'):>16}",
        (f"unsupported: precision {v('precision_unsupported')}, recall {v('recall_unsupported')}, "
         f"F1 {v('f1_unsupported')}; threshold {summary['threshold']}; {summary['ms_per_pair']} ms/pair"),
    ])


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)
