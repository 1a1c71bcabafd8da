"""Is a claim supported by a premise? One function for the whole product: :func:`check`.

No NLI model is available offline, so support is estimated from signals that run here, combined
by a small logistic regression whose weights live in ``rag/support_calibration.json`` (fitted by
``python -m bench.support_checker --calibrate``, grouped cross-validation on HaluEval QA):

* cross-encoder relevance (ms-marco MiniLM-L-12, :mod:`rag.rerank`) of the claim, and of
  question + claim, against the whole premise and against its best-matching sentences, and how much
  adding the claim to the question raises or lowers the question's relevance (``ce_gain``);
* embedding similarity (all-MiniLM-L6-v2) of the claim to its closest premise sentence;
* lexical containment: share of the claim's content words (Porter stems; light words such as
  "located" ignored) found in the premise, overall and for the words the claim adds to the
  question (its "answer" part); an ordinary word missing from the premise earns partial credit
  when a premise word is close in embedding space ("height" for "tall"), names and numbers never;
* consistency of numbers and capitalised names: a number or name in the claim that the premise
  never mentions is strong evidence of non-support;
* negation mismatch between the claim and its best-matching premise sentence.

Each weight is constrained to its natural direction (:data:`FEATURE_SIGNS`); claim length is
deliberately *not* a feature (on HaluEval it predicts the label by itself). The fit gives zero
weight to features that only carry length there, and :meth:`SupportChecker.check` skips the
cross-encoder calls for those.

The checker is strict: the calibration data's supported answers are copied spans, so a claim
whose content words are mostly absent from the premise (heavy rewording) scores low.

Example:
    >>> s = check("The tower is 330 metres tall.", "The tower is 450 metres tall.")
    >>> s.supported, s.features.missing_numbers
    (False, ('450',))
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
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
    "FEATURE_SIGNS",
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

FEATURE_SIGNS: dict[str, int] = {name: 1 for name in FEATURE_NAMES} | {
    "num_missing": -1,
    "name_missing": -1,
    "negation_mismatch": -1,
}
"""Direction each weight is constrained to when fitting: +1 = evidence for support, -1 = against.

Without the constraint the fit learns length through the back door on HaluEval (longer claims score
higher on relevance there, and are mostly unsupported), i.e. "more relevant means less supported".
"""

_TOP_SENTENCES = 2  # premise sentences (closest by embedding) that the cross-encoder also scores
_CE_CLIP = 12.0  # cross-encoder logits are clipped to +-this before combining
_VECTOR_CACHE_SIZE = 20_000  # cached sentence / word embeddings (384 floats each, about 30 MB in all)


# --------------------------------------------------------------------------- values


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SupportFeatures(_Frozen):
    """The evidence behind a :class:`SupportScore` (all computed, none learned).

    Cross-encoder features the stored combiner gives zero weight are not computed by
    :meth:`SupportChecker.check` (they stay None); :meth:`SupportChecker.features_many` computes all.
    """

    ce_claim: float | None = Field(None, description="cross-encoder logit: claim vs whole premise")
    ce_qa: float | None = Field(None, description="cross-encoder logit: question + claim vs whole premise (= ce_claim without a question)")
    ce_sent: float | None = Field(None, description="max cross-encoder logit: claim vs its best-matching premise sentences")
    ce_qa_sent: float | None = Field(None, description="max cross-encoder logit: question + claim vs best-matching premise sentences")
    ce_gain: float | None = Field(None, description="ce_qa minus the logit of the question alone (0 without a question)")
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

    def vector(self) -> list[float | None]:
        """The numeric features in :data:`FEATURE_NAMES` order (None: not computed)."""
        return [getattr(self, name) for name in FEATURE_NAMES]


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
    yourself yourselves s t d ll m re ve y o 's yes no not""".split()
) | frozenset(  # light words: restating a fact often adds them without adding content
    """located situated lies lie lying stands stand standing based known called named name referred considered
    regarded described became become becomes served serve serves including include includes included well
    various several many much often currently later now still even really actually made make makes used use
    uses part type kind way thing things something someone people person may might must shall like another
    among within across around toward towards along since upon per via whose whether either although though
    however therefore thus instead rather indeed already yet ever one ones""".split()
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


def _names(text: str) -> list[tuple[str, bool]]:
    """Capitalised tokens that are not function words (a cheap proper-name detector).

    Returns (lowercased token, sentence_initial) pairs, deduplicated. A sentence-initial capital may
    just be an ordinary word, so callers treat those leniently.
    """
    out: dict[str, bool] = {}
    for m in _NAME.finditer(text):
        token = m.group(0).strip("'’-")
        low = token.lower().replace("’", "'")
        if low.endswith("'s"):
            low = low[:-2]
        if not low or low.isdigit() or low in _STOPWORDS or low in _NEGATIONS or low in _NUMBER_WORDS:
            continue
        before = text[: m.start()].rstrip()
        initial = not before or before[-1] in ".!?:;\"“(\n"
        out[low] = out.get(low, True) and initial
    return list(out.items())


def _premise_name_index(premise: str) -> tuple[set[str], set[str]]:
    """Lowercased capitalised tokens of the premise and their stems (with hyphen/apostrophe parts)."""
    caps: set[str] = set()
    for m in _NAME.finditer(premise):
        low = m.group(0).strip("'’-").lower().replace("’", "'")
        if low.endswith("'s"):
            low = low[:-2]
        caps.add(low)
        caps.update(p for p in re.split(r"[-']", low) if p)
    return caps, {_stem(c) for c in caps}


def _name_in(name: str, initial: bool, index: tuple[set[str], set[str]], words: set[str], premise: str) -> bool:
    """Is a claim name in the premise? Mid-sentence names must appear capitalised there too."""
    caps, cap_stems = index
    if name in caps or _stem(name) in cap_stems:
        return True
    parts = [p for p in re.split(r"[-']", name) if p]
    if len(parts) > 1 and all(p in caps or _stem(p) in cap_stems or p in _STOPWORDS for p in parts):
        return True
    if initial and (name in words or _stem(name) in {_stem(w) for w in words}):
        return True  # "Jewelry retailers ..." : capitalised only because it starts the sentence
    return len(name) >= 4 and re.search(re.escape(name), premise, flags=re.IGNORECASE) is not None and initial


def _negated(text: str) -> bool:
    return any(w in _NEGATIONS or w.endswith("n't") for w in _words(text))


WordSimilarity = Callable[[Sequence[str], Sequence[str]], list[float]]
"""``f(words, candidates)``: for each word, its highest cosine similarity to any candidate word."""

_SOFT_LOW, _SOFT_HIGH = 0.5, 0.8  # word cosine below LOW earns no credit, above HIGH full credit


def _content_words(text: str) -> dict[str, str]:
    """Content words keyed by stem (first spelling seen), without stopwords and possessive 's."""
    out: dict[str, str] = {}
    for w in _words(text):
        if w in _STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        if w.endswith("'s"):
            w = w[:-2]
        out.setdefault(_stem(w), w)
    return out


def _lexical(
    premise: str, claim: str, question: str | None, similar: WordSimilarity | None = None
) -> dict[str, Any]:
    """Lexical, number and name features.

    Containment counts a claim word as found when its stem occurs in the premise. With ``similar``
    (word embeddings), a missing ordinary word earns partial credit for a close premise word
    ("constructed" for "built"): ``clip((cos - 0.5) / 0.3, 0, 1)``. Names and numbers never do.
    """
    premise_words = set(_words(premise))
    premise_stems = set(_content_words(premise)) | {_stem(w) for w in premise_words}
    claim_words = _content_words(claim)
    question_stems = set(_content_words(question)) if question else set()
    claim_name_set = {n for n, _ in _names(claim)}

    credit: dict[str, float] = {st: 1.0 for st in claim_words if st in premise_stems}
    soft = [
        (st, w) for st, w in claim_words.items()
        if st not in credit and w not in claim_name_set and not any(ch.isdigit() for ch in w)
        and w not in _NUMBER_WORDS
    ]
    if soft and similar is not None:
        candidates = sorted({w for w in _content_words(premise).values() if not any(ch.isdigit() for ch in w)})
        if candidates:
            sims = similar([w for _, w in soft], candidates)
            for (st, _), cos in zip(soft, sims, strict=True):
                credit[st] = min(1.0, max(0.0, (cos - _SOFT_LOW) / (_SOFT_HIGH - _SOFT_LOW)))
    lex_contain = _mean_credit(claim_words, credit)
    lex_answer = _mean_credit([st for st in claim_words if st not in question_stems], credit)

    premise_nums = _premise_numbers(premise)
    claim_nums = _numbers(claim)
    for w in _words(claim):
        if w in _NUMBER_WORDS and w not in ("one", "first", "second"):  # "one of", "second album": ambiguous
            claim_nums.add(_NUMBER_WORDS[w])
    missing_nums = sorted(n for n in claim_nums if n not in premise_nums and n.lstrip("-") not in premise_nums)

    index = _premise_name_index(premise)
    claim_names = _names(claim)
    missing_names = [n for n, initial in claim_names if not _name_in(n, initial, index, premise_words, premise)]
    return {
        "lex_contain": lex_contain,
        "lex_answer_contain": lex_answer,
        "num_missing": len(missing_nums) / len(claim_nums) if claim_nums else 0.0,
        "name_missing": len(missing_names) / len(claim_names) if claim_names else 0.0,
        "missing_numbers": tuple(missing_nums),
        "missing_names": tuple(missing_names),
    }


def _mean_credit(stems: Iterable[str], credit: dict[str, float]) -> float:
    stems = list(stems)
    return sum(credit.get(st, 0.0) for st in stems) / len(stems) if stems else 1.0


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
        self.used = frozenset(n for n, c in zip(FEATURE_NAMES, self.coef, strict=True) if c != 0.0)

    def probability(self, vector: Sequence[float | None]) -> float:
        z = self.intercept + sum(
            c * (x - m) / s
            for c, x, m, s in zip(self.coef, vector, self.mean, self.scale, strict=True)
            if c != 0.0 and x is not None
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
    """all-MiniLM-L6-v2 from its installed package, via :mod:`index.embed`, built on first use."""

    def __init__(self) -> None:
        self._embedder: Any = None

    def embed_documents(self, texts: Sequence[str]) -> Any:
        if self._embedder is None:
            from index.embed import SentenceTransformerEmbedder, packaged_minilm_path

            embedder = SentenceTransformerEmbedder(packaged_minilm_path(), name="all-MiniLM-L6-v2", batch_size=64)
            embedder.warm_up()
            self._embedder = embedder
        embed_query = getattr(self._embedder, "embed_query", None)
        if embed_query is not None and 0 < len(texts) <= 4:
            # a few short texts: one thread each (index.embed's embed_query); two torch threads on
            # a busy 2-core machine stall for hundreds of ms on such tiny inputs
            import numpy as np

            return np.stack([embed_query(t) for t in texts])
        return self._embedder.embed_documents(texts)


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
        # batch_size=1: the int8 model quantises activations per call, so a pair's logit would
        # otherwise shift (by up to ~0.2) with whatever else shares its batch; one pair per call
        # makes check() and check_many() agree exactly, for about 10% more time.
        self.reranker = reranker or CrossEncoderReranker(batch_size=1)
        self.embedder: SentenceEmbedder = embedder or _MiniLM()
        self._calibration_source = calibration
        self._threshold_override = threshold
        self._combiner: _Combiner | None = None
        self._lock = threading.Lock()
        self._ce_question_cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._vector_cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_lock = threading.RLock()  # the two caches above may be shared by server threads

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
        combiner = self._get_combiner()
        features = self.features_many(pairs, question=question, questions=questions, only=combiner.used)
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
        only: Collection[str] | None = None,
    ) -> list[SupportFeatures]:
        """The raw features of each pair (what :meth:`check_many` combines); used for calibration.

        Args:
            pairs, question, questions: as in :meth:`check_many`.
            only: cross-encoder features to compute (None: all). The others are left None, which
                saves the cross-encoder calls the combiner would ignore (zero weight).
        """
        wanted = set(FEATURE_NAMES if only is None else only)
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
        sent_vec = dict(zip(unique_sents, self._vectors(unique_sents), strict=True))
        vecs = np.asarray(self.embedder.embed_documents(claim_texts + qa_texts), dtype=np.float32)
        claim_vec, qa_vec = vecs[: len(pairs)], vecs[len(pairs) :]

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

        # 3. cross-encoder pairs (only those the wanted features need), scored in one call
        need_qa = bool(wanted & {"ce_qa", "ce_gain"})
        ce_pairs: list[tuple[str, str]] = []
        slots: list[dict[str, Any]] = []
        q_index: dict[tuple[str, str], int] = {}
        q_logit_cached: dict[tuple[str, str], float] = {}
        for i, (premise, claim) in enumerate(pairs):
            slot: dict[str, Any] = {}
            if "ce_claim" in wanted:
                slot["claim"] = len(ce_pairs)
                ce_pairs.append((claim.strip(), premise))
            if need_qa:
                slot["qa"] = len(ce_pairs)
                ce_pairs.append((qa_texts[i], premise))
            if "ce_sent" in wanted:
                slot["sent"] = list(range(len(ce_pairs), len(ce_pairs) + len(best[i])))
                ce_pairs.extend((claim.strip(), s) for s in best[i])
            if "ce_qa_sent" in wanted:
                slot["qa_sent"] = list(range(len(ce_pairs), len(ce_pairs) + len(best[i])))
                ce_pairs.extend((qa_texts[i], s) for s in best[i])
            q = qs[i]
            if q and "ce_gain" in wanted:
                key = (q.strip(), premise)
                with self._cache_lock:
                    cached = self._ce_question_cache.get(key)
                if cached is not None:
                    q_logit_cached[key] = cached
                elif key not in q_index:
                    q_index[key] = len(ce_pairs)
                    ce_pairs.append(key)
            slots.append(slot)
        logits = [_clip(x) for x in self.reranker.score_pairs(ce_pairs)]
        q_logit = {key: logits[idx] for key, idx in q_index.items()}
        for key, value in q_logit.items():
            self._remember_question(key, value)
        q_logit.update(q_logit_cached)

        # 4. assemble
        out = []
        for i, (premise, claim) in enumerate(pairs):
            slot, q = slots[i], qs[i]
            ce_qa = logits[slot["qa"]] if need_qa else None
            gain: float | None = None
            if "ce_gain" in wanted:
                gain = 0.0
                if q:
                    key = (q.strip(), premise)
                    gain = ce_qa - q_logit[key]  # type: ignore[operator]
            lex = _lexical(premise, claim, q, similar=self._word_similarity)
            out.append(
                SupportFeatures(
                    ce_claim=logits[slot["claim"]] if "claim" in slot else None,
                    ce_qa=ce_qa if "ce_qa" in wanted else None,
                    ce_sent=max(logits[j] for j in slot["sent"]) if "sent" in slot else None,
                    ce_qa_sent=max(logits[j] for j in slot["qa_sent"]) if "qa_sent" in slot else None,
                    ce_gain=gain,
                    emb_sent=emb_sent[i],
                    emb_qa_sent=emb_qa[i],
                    negation_mismatch=float(_negated(claim) != _negated(best[i][0])),
                    best_sentence=best[i][0],
                    **lex,
                )
            )
        return out

    def _vectors(self, texts: Sequence[str]) -> Any:
        """Embeddings of premise sentences and single words, cached (LRU) across calls."""
        import numpy as np

        with self._cache_lock:
            new = [t for t in dict.fromkeys(texts) if t not in self._vector_cache]
            if new:
                vecs = np.asarray(self.embedder.embed_documents(new), dtype=np.float32)
                for t, v in zip(new, vecs, strict=True):
                    self._vector_cache[t] = v
            for t in texts:
                self._vector_cache.move_to_end(t)
            out = np.stack([self._vector_cache[t] for t in texts])
            while len(self._vector_cache) > _VECTOR_CACHE_SIZE:
                self._vector_cache.popitem(last=False)
        return out

    def _word_similarity(self, words: Sequence[str], candidates: Sequence[str]) -> list[float]:
        """Max cosine of each word to any candidate word."""
        a, b = self._vectors(words), self._vectors(candidates)
        return [float(x) for x in (a @ b.T).max(axis=1)]

    def _remember_question(self, key: tuple[str, str], value: float) -> None:
        with self._cache_lock:
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
