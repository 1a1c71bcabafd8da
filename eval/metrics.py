"""The evaluation toolkit's one copy of each measure: percentiles, the SQuAD answer normaliser and token F1.

Every report (``rag eval qa``, ``suite``, ``condense``, the golden report, the benchmarks) uses these, so a p95 or an
F1 means the same everywhere.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Iterable
from typing import Any

__all__ = ["exact_match", "finite", "normalize_answer", "percentile", "squad_f1", "token_f1", "tokens"]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def finite(values: Iterable[Any] | None) -> list[float]:
    """The finite numbers of ``values`` (None, NaN, infinities, booleans and non-numbers dropped)."""
    out: list[float] = []
    for v in values or ():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if math.isfinite(v):
            out.append(float(v))
    return out


def percentile(values: Iterable[Any] | None, q: float) -> float | None:
    """The ``q``-th percentile (0..100) of the finite values, with linear interpolation between closest ranks
    (numpy's default, ``statistics.quantiles(method="inclusive")``); None when there is no finite value.

    Raises:
        ValueError: ``q`` outside 0..100.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    vals = sorted(finite(values))
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official SQuAD v2 ``normalize_answer``)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def tokens(text: str) -> list[str]:
    """SQuAD-normalised tokens: lowercased, punctuation and articles removed, split on whitespace."""
    return normalize_answer(text).split() if text else []


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 (official SQuAD v2, tokens counted with multiplicity). Both empty after normalisation:
    1.0; one empty: 0.0."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def _golds(golds: Iterable[str]) -> list[str]:
    """As the official script: gold answers that normalise to nothing are dropped; none left means ``[""]``."""
    kept = [g for g in golds if normalize_answer(g)]
    return kept or [""]


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0 (official SQuAD v2)."""
    return max(float(normalize_answer(g) == normalize_answer(prediction)) for g in _golds(golds))


def squad_f1(prediction: str, golds: Iterable[str]) -> float:
    """Best :func:`token_f1` of the prediction against any gold answer (official SQuAD v2)."""
    return max(token_f1(prediction, g) for g in _golds(golds))
