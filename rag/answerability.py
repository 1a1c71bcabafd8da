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

__all__ = ["ANSWERABILITY_PATH", "FEATURES", "AnswerabilityModel", "question_coverage"]

ANSWERABILITY_PATH = Path(__file__).with_name("answerability.json")
FEATURES: tuple[str, ...] = ("sent_top", "sent_second", "chunk_top", "chunk_gap", "coverage")
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
        return cls(weights, bias, thresholds, source)

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
