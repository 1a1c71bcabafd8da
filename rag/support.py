"""Is a claim supported by a premise? One checker for the whole product: :meth:`SupportChecker.check` (a process
builds one, in :class:`rag.models.Models`).

No NLI model is available offline, so support is estimated from signals that run here, combined
by a small monotone logistic regression whose weights live in ``rag/support_calibration.json``
(fitted by ``python -m bench.support_checker --calibrate`` on HaluEval QA and WiCE together, with
grouped cross-validation). A long premise contains most of a claim's words somewhere, so most
signals look at the claim's *local* evidence, the few premise sentences that cover it best:

* lexical coverage: share of the claim's content words (Porter stems; light words such as
  "located" ignored) found in the whole premise (``lex_contain``), in the best window of up to
  three sentences (``lex_local``), and for its weakest part (``lex_part_min``: the claim is cut
  into clauses, each must be covered by one or two adjacent sentences). An ordinary word missing
  from a sentence earns partial credit when a word there is close in embedding space ("height"
  for "tall"); names and numbers never do;
* numbers and capitalised names of the claim that the premise, or the claim's window, never
  mentions (strong evidence of non-support), and negation mismatch with the best sentence;
* cross-encoder relevance (ms-marco MiniLM-L-12, :mod:`rag.rerank`) of the claim against its
  window, and of each clause against the sentences around its best match (the weakest counts);
* with a question (the product's case: the claim answers it), question-aware signals: coverage of
  the answer's own words (those the claim adds to the question), of each clause by one sentence,
  of the question's words by the premise, and the cross-encoder relevance of the question to the
  claim's window, with and without the claim (``q_*``). An answer copied from a passage that does
  not answer what was asked scores low on these. Without a question they are None and contribute
  nothing; ``question_given`` lets the fit hold answers to a stricter standard than free-standing
  sentences (HaluEval's supported answers are quoted spans; WiCE's supported claims paraphrase).

Each weight is constrained to its natural direction (:data:`FEATURE_SIGNS`); claim length is
deliberately *not* a feature (on HaluEval it predicts the label by itself). The fit gives zero
weight to some features; :meth:`SupportChecker.check` skips the cross-encoder calls of those.

Example:
    >>> s = SupportChecker().check("The tower is 330 metres tall.", "The tower is 450 metres tall.")
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
from rag.text import split_sentences

logger = logging.getLogger(__name__)

__all__ = [
    "CALIBRATION_PATH",
    "FEATURE_NAMES",
    "FEATURE_SIGNS",
    "QUESTION_FEATURES",
    "SupportChecker",
    "SupportFeatures",
    "SupportScore",
    "split_sentences",
]

CALIBRATION_PATH = Path(__file__).with_name("support_calibration.json")

FEATURE_NAMES: tuple[str, ...] = (
    "lex_contain",
    "lex_local",
    "lex_part_min",
    "num_missing",
    "name_missing",
    "num_missing_local",
    "name_missing_local",
    "negation_mismatch",
    "emb_sent",
    "ce_window",
    "ce_part_min",
    "q_answer_contain",
    "q_part_min",
    "q_cover",
    "q_ce_window",
    "q_ce_gain",
    "question_given",
)
"""Numeric features fed to the combiner, in the order of the stored weights."""

QUESTION_FEATURES: frozenset[str] = frozenset(n for n in FEATURE_NAMES if n.startswith("q_"))
"""Features that exist only when a question is given (None otherwise: they then contribute nothing)."""

CE_FEATURES: frozenset[str] = frozenset({"ce_window", "ce_part_min", "q_ce_window", "q_ce_gain"})
"""Features that cost cross-encoder calls (skipped by :meth:`SupportChecker.check` when weighted zero)."""

FEATURE_SIGNS: dict[str, int] = {name: 1 for name in FEATURE_NAMES} | {
    "num_missing": -1,
    "name_missing": -1,
    "num_missing_local": -1,
    "name_missing_local": -1,
    "negation_mismatch": -1,
    "question_given": -1,
}
"""Direction each weight is constrained to when fitting: +1 = evidence for support, -1 = against.

Without the constraint the fit learns length through the back door on HaluEval (longer claims score
higher on relevance there, and are mostly unsupported), i.e. "more relevant means less supported".
``question_given`` (1 with a question) may only make the check stricter: an answer to a question is held to
the standard of a quoted span, a free-standing sentence is allowed to paraphrase its sources.
"""

_WINDOW = 3  # premise sentences in a claim's window (chosen greedily to cover its words)
_CE_CLIP = 12.0  # cross-encoder logits are clipped to +-this before combining
_VECTOR_CACHE_SIZE = 20_000  # cached sentence / word embeddings (384 floats each, about 30 MB in all)


# --------------------------------------------------------------------------- values


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SupportFeatures(_Frozen):
    """The evidence behind a :class:`SupportScore` (all computed, none learned).

    Cross-encoder features the stored combiner gives zero weight are not computed by
    :meth:`SupportChecker.check` (they stay None); :meth:`SupportChecker.features_many` computes all.
    The ``q_*`` features are None without a question.
    """

    lex_contain: float = Field(description="share of the claim's content-word stems found in the premise")
    lex_local: float = Field(description="the same, in the claim's window (up to 3 sentences chosen to cover it)")
    lex_part_min: float = Field(
        description="weakest clause of the claim: its words' coverage by its best 1-2 adjacent sentences"
    )
    num_missing: float = Field(description="share of the claim's numbers absent from the premise (0 if none)")
    name_missing: float = Field(description="1.0 if any of the claim's capitalised names is absent from the premise")
    num_missing_local: float = Field(description="share of the claim's numbers absent from its window (0 if none)")
    name_missing_local: float = Field(description="1.0 if any of the claim's names is absent from its window")
    negation_mismatch: float = Field(description="1.0 if exactly one of claim / best premise sentence is negated")
    emb_sent: float = Field(description="max cosine similarity: claim vs premise sentences")
    ce_window: float | None = Field(None, description="cross-encoder logit: claim vs its window")
    ce_part_min: float | None = Field(
        None, description="min over the claim's clauses of the logit: clause vs the sentences around its best match"
    )
    q_answer_contain: float | None = Field(
        None, description="coverage of the content words the claim adds to the question (1.0 if it adds none)"
    )
    q_part_min: float | None = Field(None, description="weakest clause's coverage by one single sentence")
    q_cover: float | None = Field(
        None, description="share of the question's content-word stems found in the premise (exact stems only)"
    )
    q_ce_window: float | None = Field(None, description="cross-encoder logit: question vs the claim's window")
    q_ce_gain: float | None = Field(
        None, description="logit of question + claim vs the window minus that of the question alone"
    )
    question_given: float = Field(0.0, description="1.0 when the claim was checked with a question, else 0.0")
    missing_numbers: tuple[str, ...] = Field((), description="numbers in the claim that the premise lacks")
    missing_names: tuple[str, ...] = Field((), description="names in the claim that the premise lacks")
    best_sentence: str = Field("", description="the premise sentence closest to the claim")
    window: tuple[str, ...] = Field((), description="the claim's window: the premise sentences that cover it best")

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

WordSimilarities = Callable[[Sequence[str], Sequence[str]], Any]
"""``f(words, candidates)``: the matrix (words x candidates) of cosine similarities."""

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

    num_share, name_any, missing_nums, missing_names = _missing_facts(premise, claim, premise_words)
    return {
        "lex_contain": lex_contain,
        "lex_answer_contain": lex_answer,
        "num_missing": num_share,
        "name_missing": name_any,
        "missing_numbers": missing_nums,
        "missing_names": missing_names,
    }


def _missing_facts(
    premise: str, claim: str, premise_words: set[str] | None = None
) -> tuple[float, float, tuple[str, ...], tuple[str, ...]]:
    """Numbers and names of the claim that the premise lacks: (number share, any name, numbers, names)."""
    if premise_words is None:
        premise_words = set(_words(premise))
    premise_nums = _premise_numbers(premise)
    claim_nums = _numbers(claim)
    for w in _words(claim):
        if w in _NUMBER_WORDS and w not in ("one", "first", "second"):  # "one of", "second album": ambiguous
            claim_nums.add(_NUMBER_WORDS[w])
    missing_nums = sorted(n for n in claim_nums if n not in premise_nums and n.lstrip("-") not in premise_nums)
    index = _premise_name_index(premise)
    claim_names = _names(claim)
    missing_names = [n for n, initial in claim_names if not _name_in(n, initial, index, premise_words, premise)]
    return (
        len(missing_nums) / len(claim_nums) if claim_nums else 0.0,
        1.0 if missing_names else 0.0,  # one wrong name is enough (a share is diluted by the right ones)
        tuple(missing_nums),
        tuple(missing_names),
    )


_PART_SPLIT = re.compile(
    r"\s*(?:,(?!\s*\d)|[;:()\[\]]|\s[–—-]\s"
    r"|\b(?:and|but|while|whereas|although|which|who|whom|where|when|after|before|because|including|as well as|with)\b"
    r")\s*",
    re.IGNORECASE,
)


def claim_parts(claim: str) -> list[str]:
    """The claim cut into clauses at punctuation and connectives, each with at least two content words.

    A shorter piece (an appositive, a name between commas) joins the next one; at the end, the previous one.

    Example:
        >>> claim_parts("The couple married in New York on December 1, 2012, and their son, Bear, was born next year.")
        ['The couple married in New York on December 1, 2012', 'their son Bear', 'was born next year.']
    """
    parts: list[str] = []
    carry = ""
    for piece in _PART_SPLIT.split(claim):
        if not piece or not piece.strip():
            continue
        piece = f"{carry} {piece}".strip() if carry else piece.strip()
        if len(_content_words(piece)) < 2:
            carry = piece
            continue
        parts.append(piece)
        carry = ""
    if carry:
        if parts:
            parts[-1] = f"{parts[-1]} {carry}"
        else:
            parts.append(carry)
    return parts or [claim.strip()]


class _Evidence:
    """A premise cut into sentences, with each sentence's stems and ordinary content words."""

    def __init__(self, premise: str) -> None:
        self.sentences = split_sentences(premise) or [premise.strip()]
        self.stems: list[set[str]] = []
        self.soft_words: list[list[str]] = []
        for s in self.sentences:
            content = _content_words(s)
            self.stems.append(set(content) | {_stem(w) for w in _words(s)})
            self.soft_words.append([w for w in content.values() if not any(ch.isdigit() for ch in w)])
        self.all_stems: set[str] = set().union(*self.stems)
        self.vocab = list(dict.fromkeys(w for ws in self.soft_words for w in ws))

    def credit(self, words: dict[str, str], hard: Collection[str], similar: WordSimilarities | None) -> Any:
        """Matrix (word x sentence) of credit in [0, 1]: 1 where the sentence has the word's stem.

        Ordinary words (not in ``hard``: names, numbers) also earn ``clip((cos - 0.5) / 0.3, 0, 1)``
        for the closest word of the sentence.
        """
        import numpy as np

        stems = list(words)
        out = np.zeros((len(stems), len(self.sentences)), dtype=np.float32)
        for j, sent_stems in enumerate(self.stems):
            for i, st in enumerate(stems):
                if st in sent_stems:
                    out[i, j] = 1.0
        soft = [
            i for i, st in enumerate(stems)
            if out[i].max() < 1.0 and words[st] not in hard and not any(ch.isdigit() for ch in words[st])
            and words[st] not in _NUMBER_WORDS
        ]
        vocab = self.vocab
        if soft and vocab and similar is not None:
            position = {w: k for k, w in enumerate(vocab)}
            sims = np.asarray(similar([words[stems[i]] for i in soft], vocab), dtype=np.float32)
            gain = np.clip((sims - _SOFT_LOW) / (_SOFT_HIGH - _SOFT_LOW), 0.0, 1.0)
            for j, ws in enumerate(self.soft_words):
                if ws:
                    cols = [position[w] for w in ws]
                    out[soft, j] = np.maximum(out[soft, j], gain[:, cols].max(axis=1))
        return out


def _window(credit: Any, relevance: Any, size: int = _WINDOW) -> list[int]:
    """Up to ``size`` sentence indices, chosen greedily to cover the words best (ties: most relevant)."""
    import numpy as np

    n = credit.shape[1]
    chosen: list[int] = []
    covered = np.zeros(credit.shape[0], dtype=np.float32)
    for _ in range(min(size, n)):
        gain = np.maximum(credit, covered[:, None]).mean(axis=0) if credit.shape[0] else np.zeros(n)
        gain = gain + 1e-3 * relevance
        gain[chosen] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        if credit.shape[0]:
            covered = np.maximum(covered, credit[:, j])
    return chosen


def _coverage(credit: Any, rows: Any, cols: Sequence[int]) -> float:
    """Mean over the selected words of their best credit among the selected sentences (1.0: no words)."""
    sub = credit[rows]
    if sub.shape[0] == 0:
        return 1.0
    if not len(cols):
        return 0.0
    return float(sub[:, list(cols)].max(axis=1).mean())


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
    """all-MiniLM-L6-v2 from its installed package, via :mod:`index.embed`, built on first use (or an index
    embedder of the same model, shared: :class:`rag.models.Models` passes the one the retriever uses)."""

    def __init__(self, embedder: Any = None) -> None:
        self._embedder: Any = embedder

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
        self.embedder: SentenceEmbedder = embedder if isinstance(embedder, _MiniLM) else _MiniLM(embedder)
        self._calibration_source = calibration
        self._threshold_override = threshold
        self._combiner: _Combiner | None = None
        self._lock = threading.Lock()
        self._ce_cache: OrderedDict[tuple[str, str], float] = OrderedDict()
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

        # 1. premise sentences (embedded once, cached) and claims. Few texts per call on purpose: the embedder
        # runs up to 4 texts on one thread each, which a busy 2-core machine serves far faster than one batch
        evidence = {p: _Evidence(p) for p, _ in pairs}
        unique_sents = list(dict.fromkeys(s for ev in evidence.values() for s in ev.sentences))
        sent_vec = dict(zip(unique_sents, self._vectors(unique_sents), strict=True))
        claims = [c.strip() for _, c in pairs]
        claim_vec = np.asarray(self.embedder.embed_documents(claims), dtype=np.float32)
        missing = [w for (premise, _), c in zip(pairs, claims, strict=True)
                   for st, w in _content_words(c).items()
                   if st not in evidence[premise].all_stems and not any(ch.isdigit() for ch in w)]
        if missing:
            self._vectors(list(dict.fromkeys(missing)))  # the claims' missing words in one call (cached)

        # 2. lexical evidence, the claim's window and its clauses; cross-encoder pairs to score
        ce_pairs: list[tuple[str, str]] = []
        slots: list[dict[str, Any]] = []
        partial: list[dict[str, Any]] = []
        for i, (premise, claim) in enumerate(pairs):
            ev, q, claim = evidence[premise], qs[i], claims[i]
            sims = np.stack([sent_vec[s] for s in ev.sentences]) @ claim_vec[i]
            words = _content_words(claim)
            names = {n for n, _ in _names(claim)}
            credit = ev.credit(words, names, self._word_sims)
            window = _window(credit, sims)
            window_text = " ".join(ev.sentences[j] for j in sorted(window))
            every = np.ones(len(words), dtype=bool)
            parts, part_local, part_single, part_windows = claim_parts(claim), [], [], []
            for part in parts:
                rows = np.asarray([st in _content_words(part) for st in words], dtype=bool)
                if not rows.any():
                    continue
                sub = credit[rows]
                single = sub.mean(axis=0)
                pairs2 = np.maximum(sub[:, :-1], sub[:, 1:]).mean(axis=0) if sub.shape[1] > 1 else single
                part_single.append(float(single.max()))
                part_local.append(float(max(single.max(), pairs2.max())))
                best = int(np.argmax(single + 1e-3 * sims))
                part_windows.append((part.strip(), " ".join(ev.sentences[max(0, best - 1) : best + 2])))
            lex = _lexical(premise, claim, q, similar=self._word_similarity)
            num_local, name_local, _, _ = _missing_facts(window_text, claim)
            row: dict[str, Any] = {
                "lex_contain": lex["lex_contain"],
                "lex_local": _coverage(credit, every, window),
                "lex_part_min": min(part_local, default=1.0),
                "num_missing": lex["num_missing"],
                "name_missing": lex["name_missing"],
                "num_missing_local": num_local,
                "name_missing_local": name_local,
                "negation_mismatch": float(_negated(claim) != _negated(ev.sentences[int(np.argmax(sims))])),
                "emb_sent": float(sims.max()),
                "missing_numbers": lex["missing_numbers"],
                "missing_names": lex["missing_names"],
                "best_sentence": ev.sentences[int(np.argmax(sims))],
                "window": tuple(ev.sentences[j] for j in sorted(window)),
                "question_given": 1.0 if q else 0.0,
            }
            slot: dict[str, Any] = {}
            if "ce_window" in wanted:
                slot["window"] = len(ce_pairs)
                ce_pairs.append((claim, window_text))
            if "ce_part_min" in wanted:
                slot["parts"] = list(range(len(ce_pairs), len(ce_pairs) + len(part_windows)))
                ce_pairs.extend(part_windows)
            if q:
                qwords = _content_words(q)
                qcredit = ev.credit(qwords, (), None)  # exact stems: no word vectors for the question
                row["q_answer_contain"] = lex["lex_answer_contain"]
                row["q_part_min"] = min(part_single, default=1.0)
                row["q_cover"] = _coverage(qcredit, np.ones(len(qwords), dtype=bool), range(len(ev.sentences)))
                if wanted & {"q_ce_window", "q_ce_gain"}:
                    slot["q"] = len(ce_pairs)
                    ce_pairs.append((q.strip(), window_text))
                if "q_ce_gain" in wanted:
                    slot["qa"] = len(ce_pairs)
                    ce_pairs.append((_qa_text(q, claim), window_text))
            slots.append(slot)
            partial.append(row)
        logits = [_clip(x) for x in self._score_pairs(ce_pairs)] if ce_pairs else []

        # 3. assemble
        out = []
        for row, slot in zip(partial, slots, strict=True):
            if "window" in slot:
                row["ce_window"] = logits[slot["window"]]
            if "parts" in slot:
                row["ce_part_min"] = min((logits[k] for k in slot["parts"]), default=row.get("ce_window"))
            if "q" in slot and "q_ce_window" in wanted:
                row["q_ce_window"] = logits[slot["q"]]
            if "qa" in slot:
                row["q_ce_gain"] = logits[slot["qa"]] - logits[slot["q"]]
            out.append(SupportFeatures(**row))
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

    def _word_sims(self, words: Sequence[str], candidates: Sequence[str]) -> Any:
        """Cosine matrix (words x candidates)."""
        return self._vectors(words) @ self._vectors(candidates).T

    def _score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Cross-encoder logits, with an LRU cache (a question's window recurs for each of its claims)."""
        with self._cache_lock:
            known = {p: self._ce_cache[p] for p in pairs if p in self._ce_cache}
        new = list(dict.fromkeys(p for p in pairs if p not in known))
        if new:
            scored = dict(zip(new, self.reranker.score_pairs(new), strict=True))
            with self._cache_lock:
                for p, value in scored.items():
                    self._ce_cache[p] = value
                while len(self._ce_cache) > 4096:
                    self._ce_cache.popitem(last=False)
            known.update(scored)
        return [known[p] for p in pairs]


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
