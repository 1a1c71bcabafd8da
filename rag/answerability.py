"""Do the retrieved passages answer the question? A calibrated decision over several signals.

The pipeline refuses before any LLM call when this decision says no. One cross-encoder score alone (the old gate)
was calibrated on SQuAD 2.0, whose unanswerable questions are written to look answerable, and it refused plainly
answerable questions about real manuals. Here a small logistic model combines signals that are already computed
when the evidence is chosen:

* ``sent_top``: cross-encoder logit of the best evidence sentence against the question;
* ``sent_second``: the logit of the second best sentence (an answer often spans two);
* ``chunk_top``: cross-encoder logit of the best reranked chunk (paraphrased questions match a whole
  passage better than one sentence);
* ``chunk_gap``: how far the best chunk stands above the second one;
* ``coverage``: the share of the question's content words (stems) found in the best chunk, its title and section.

Its weights and thresholds live in ``rag/answerability.json``, fitted with cross-validation on a mix of sets (SQuAD
2.0 dev, ``../shared/data/realdocs``, the seed golden set) weighted equally, by ``python -m
bench.calibrate_answerability``; the file records the date, the data, the command and the per-set figures.

Example:
    >>> model = AnswerabilityModel.load()
    >>> model.probability({"sent_top": 6.0, "sent_second": 2.0, "chunk_top": 5.0, "chunk_gap": 3.0,
    ...                    "coverage": 0.8}) > 0.5
    True
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rag.errors import ModelUnavailableError

__all__ = [
    "ACCEPT_FEATURES", "ANSWERABILITY_PATH", "FEATURES", "AnswerabilityModel", "entity_miss", "logit",
    "question_coverage", "question_entities",
]

ANSWERABILITY_PATH = Path(__file__).with_name("answerability.json")
FEATURES: tuple[str, ...] = ("sent_top", "sent_second", "chunk_top", "chunk_gap", "coverage")
# The acceptance model's signals, for one answer span drafted by the local LLM (see AnswerabilityModel.accept):
# gate: logit of P(answerable); llm_not_found: logit of the LLM's own P(NOT FOUND) at its first reply token;
# relevance: cross-encoder logit of the evidence sentence holding the span; source_rank: that sentence's rank among
# the evidence sentences (0 = best); support: the support checker's score of the span (with the question) against
# its passage; entity_miss: names of the question (capitalised words, acronyms, words with digits) that neither the
# passage's chunk nor its title and section mention; span_words: words in the span (at most 40).
ACCEPT_FEATURES: tuple[str, ...] = (
    "gate", "llm_not_found", "relevance", "source_rank", "support", "entity_miss", "span_words",
)
_CLIP = 12.0

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_QUESTION_WORDS = frozenset(
    """a an the of to in on at by for with from into onto about as is are was were be been being do does did done
    have has had having what which who whom whose when where why how whether if or and but not no nor can could
    shall should will would may might must i me my you your we our they their it its this that these those there
    here any some all each every much many more most such than then so very just also only please tell explain
    describe give list name say says said mean means called use used using get gets make makes need needs want
    wants know does doesn don t s""".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer().stem(word))


def _content_stems(text: str) -> set[str]:
    return {_stem(w) for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _QUESTION_WORDS}


def question_coverage(question: str, passage: str) -> float:
    """Share of the question's content-word stems that occur in ``passage`` (1.0 for a question without any)."""
    wanted = _content_stems(question)
    if not wanted:
        return 1.0
    return len(wanted & _content_stems(passage)) / len(wanted)


_TOKEN = re.compile(r"[^\s\"'“”‘’()\[\]{},;:?!]+")
_PARTS = re.compile(r"[A-Z]{2,}|[A-Z]?[a-z]+|\d+")


def question_entities(question: str) -> list[str]:
    """The names a question asks about: words with an uppercase letter past the first word (``Libgcrypt``,
    ``GPLv3``, ``FIPS``), acronyms anywhere, and words holding a digit (``x86_64``, ``SM4``, ``2.0``)."""
    out: list[str] = []
    for i, m in enumerate(_TOKEN.finditer(question)):
        word = re.sub(r"(?:'s|’s)$", "", m.group(0)).strip(".-")
        if len(word) < 2 or word.lower() in _QUESTION_WORDS:
            continue
        upper_inside = any(c.isupper() for c in word[1:])
        capital = word[0].isupper() and i > 0
        if upper_inside or capital or any(c.isdigit() for c in word):
            out.append(word)
    return list(dict.fromkeys(out))


def entity_miss(question: str, text: str) -> int:
    """How many of :func:`question_entities` ``text`` never mentions. A name counts as mentioned when each of its
    letter runs (two letters or more, split at case changes) and digit runs occurs in ``text``, case-insensitively:
    ``GPLv3`` is mentioned
    by "GPL ... version 3", ``MPL-covered`` by "MPL"."""
    low = text.lower()
    words = set(re.findall(r"[a-z]+|\d+", low))
    missed = 0
    for name in question_entities(question):
        parts = [p.lower() for p in _PARTS.findall(name) if len(p) > 1 or p.isdigit()]
        if parts and not all(p in words or (len(p) > 3 and p in low) for p in parts):
            missed += 1
    return missed


def logit(p: float) -> float:
    """log(p / (1 - p)), clipped to +-12."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return _clip(math.log(p / (1 - p)))


def _clip(x: float) -> float:
    if not math.isfinite(x):
        return -_CLIP if x < 0 else _CLIP
    return max(-_CLIP, min(_CLIP, x))


@dataclass(frozen=True)
class AnswerabilityModel:
    """Logistic model over :data:`FEATURES`, with one refusal threshold per answer mode.

    ``thresholds["llm"]`` serves the LLM modes (the LLM's own NOT FOUND and verification refuse after it, so it is
    set for high recall of answerable questions); ``thresholds["extractive"]`` serves extractive mode, where it is
    the only refusal signal (set for balanced accuracy).
    """

    weights: Mapping[str, float]
    bias: float
    thresholds: Mapping[str, float]
    source: str = "<dict>"
    accept_weights: Mapping[str, float] | None = None
    accept_bias: float = 0.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> AnswerabilityModel:
        try:
            weights = {name: float(data["weights"][name]) for name in FEATURES}
            thresholds = {k: float(v) for k, v in dict(data["thresholds"]).items()}
            bias = float(data["bias"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelUnavailableError(
                f"answerability calibration {source} is malformed ({type(exc).__name__}: {exc})",
                hint="re-run: python -m bench.calibrate_answerability",
            ) from None
        if {"llm", "extractive"} - thresholds.keys():
            raise ModelUnavailableError(f"answerability calibration {source} lacks thresholds for llm/extractive")
        accept = data.get("accept")
        if accept is None:
            return cls(weights, bias, thresholds, source)
        try:
            accept_weights = {name: float(accept["weights"][name]) for name in ACCEPT_FEATURES}
            accept_bias = float(accept["bias"])
            thresholds["accept"] = float(accept["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelUnavailableError(
                f"answerability calibration {source}: malformed 'accept' ({type(exc).__name__}: {exc})",
                hint="re-run: python -m bench.calibrate_answerability --collect-local --write-accept",
            ) from None
        return cls(weights, bias, thresholds, source, accept_weights, accept_bias)

    @classmethod
    def load(cls, path: Path = ANSWERABILITY_PATH) -> AnswerabilityModel:
        """The stored model.

        Raises:
            ModelUnavailableError: the file is missing or malformed.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(
                f"cannot read the answerability calibration {path}: {exc}",
                hint="re-run: python -m bench.calibrate_answerability",
            ) from None
        return cls.from_dict(data, str(path))

    def probability(self, signals: Mapping[str, float]) -> float:
        """P(answerable) for one question's signals (missing sentence/chunk logits count as very low)."""
        z = self.bias
        for name in FEATURES:
            value = float(signals.get(name, -_CLIP if name != "coverage" else 0.0))
            z += self.weights[name] * (_clip(value) if name != "coverage" else value)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def threshold(self, mode: str) -> float:
        """The refusal threshold for an answer mode (local, hosted -> ``llm``; extractive)."""
        return self.thresholds["extractive" if mode == "extractive" else "llm"]

    def accept(self, signals: Mapping[str, float]) -> float | None:
        """P(the drafted span answers the question) over :data:`ACCEPT_FEATURES`; None when the calibration has no
        acceptance model (then the support checker and the relevance floor decide alone)."""
        if self.accept_weights is None:
            return None
        z = self.accept_bias
        for name in ACCEPT_FEATURES:
            z += self.accept_weights[name] * _clip(float(signals.get(name, 0.0)))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
