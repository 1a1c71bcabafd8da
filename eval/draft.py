"""Draft a golden question set for a new corpus, for a human to review.

Every drafted row is a *proposal* in the golden JSONL format (``eval/golden/README.md``) with a ``review`` note:

- **answerable rows**: an informative sentence is picked from a document (seeded, spread over the documents; sentences
  with a date, a year, a number or a capitalised name are preferred; headings, very short or very long sentences and
  instructions are skipped). Its ``answers`` hold one short span of it (a date, year or number, or a capitalised name
  phrase), its ``evidence`` is the sentence (cut to at most 200 characters on word boundaries around the span, still an
  exact substring of the document), ``expected_sources`` its file name. The question is written by an LLM when one is
  given (and checked: one line, ends with ``?``, does not contain the answer, 5-30 words), else by a template that
  turns the sentence into an echo question around the span ("The library opened in what year with a grant from
  Andrew Carnegie?").
- **unanswerable rows** (about 20%): template questions about names that occur in the corpus, asking for a fact that
  no document mentions (a person's birth year, a place's population, who founded an organisation: only when none of
  the topic's keywords occurs anywhere in the corpus); ``answerable: false``, ``answers: []``, ``evidence: null``.
  They come last.

Usage::

    rag eval draft --corpus seeds --n 20 --seed 0 --out eval/golden/draft.jsonl
    rag eval draft --corpus docs/ --mode local --n 10 --out draft.jsonl   # questions written by the local LLM

    from eval.draft import draft_golden
    rows = draft_golden([Path("seeds")], get_settings(), n=20, seed=0)

The output passes :func:`eval.golden.load_golden`; edit or delete rows, then drop the ``review`` field.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eval.golden import EVIDENCE_MAX, contains, normalize

if TYPE_CHECKING:
    from index.ingest import ProgressFactory
    from rag.settings import AnswerMode, Settings
    from rag.types import Document

logger = logging.getLogger(__name__)

REVIEW = "draft: check the question, the answer and the evidence before use"
UNANSWERABLE_SHARE = 0.2
QUESTION_MIN_WORDS, QUESTION_MAX_WORDS = 5, 30

SENTENCE_MIN_WORDS, SENTENCE_MAX_WORDS = 6, 60
SENTENCE_MIN_CHARS, SENTENCE_MAX_CHARS = 30, 400
MAX_DOCUMENTS_PER_ROW = 20  # larger corpora are sampled down to 20 * n documents (seeded) before drafting


# --------------------------------------------------------------------------- word lists


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December")
_WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
_MONTH_SET = set(_MONTHS.split("|"))

# capitalised words that start sentences or clauses but are not names
_STOP_CAPS = _wordset(
    """A An The This That These Those It Its It's Their They Them He She His Her Him We Our Us You Your I My Me
    In On At For From With By As After Before While When Where Why How What Which Who Whom Whose Despite Following
    Perhaps Both Some Many Most Several Few All Any Each Every However Although Though If Since During Under Over To
    And But Or Nor So Yet Also Then Thus Therefore Meanwhile Moreover Furthermore Still Instead Indeed Here There
    Such Other Another One Two Three Four Five Six Seven Eight Nine Ten First Second Third Last Next New Not No Yes
    Today Yesterday Tomorrow Now According Because Until Unlike Like Besides Beyond Between Among Within Without
    Through Throughout Across Against Along Around About Above Below Into Onto Upon Via Per Key Please Note See""")
_HONORIFICS = {
    "president": "president", "prime": None, "minister": "minister", "dr": None, "mr": None, "mrs": None,
    "ms": None, "prof": None, "professor": "professor", "sir": None, "dame": None, "general": "general",
    "gen": None, "colonel": "colonel", "captain": "captain", "senator": "senator", "governor": "governor",
    "mayor": "mayor", "judge": "judge", "justice": "justice", "king": "king", "queen": "queen",
    "prince": "prince", "princess": "princess", "pope": "pope", "chancellor": "chancellor",
    "secretary": "secretary", "ambassador": "ambassador", "lord": None, "lady": None, "rev": None,
    "reverend": None, "chairman": "chairman", "ceo": None, "director": "director", "commander": "commander",
}
_ROLE_WORDS = _wordset(
    """spokesperson spokesman spokeswoman commander president minister director librarian founder author chairman
    chairwoman chair ceo leader official officer scientist professor researcher mayor governor senator general
    secretary ambassador architect engineer manager editor journalist reporter writer poet painter artist composer
    singer actor actress player coach captain king queen prince princess emperor chief head analyst economist
    historian politician lawyer judge doctor dr mr mrs ms""")
_PERSON_VERBS = _wordset("said says stated told wrote argued added explained noted warned who")
_ORG_WORDS = _wordset(
    """Library Ministry University College School Corps Company Corporation Inc Ltd LLC Council Agency Bank
    Department Party Museum Hospital Association Institute Foundation Committee Commission Court Army Navy Force
    Forces Organization Organisation Union Club Society Group Church Office Authority Board Service Times Post News
    Project Program Programme Center Centre Academy Guard Parliament Congress Senate Government""")
_PLACE_WORDS = _wordset(
    """Island Islands City Town Village River Lake Mountain Mount Valley County Province State States Street Road
    Avenue Harbor Harbour Bay Sea Ocean Park Pier Bridge Airport Station Square Gulf Strait East West North South
    Kingdom Republic Coast Peninsula Desert Forest Hill Hills Port""")
_PLACE_PREPS = _wordset("in at to from near into across throughout toward towards within")
_YEAR_PREPS = _wordset(
    "in since by from until till before after during of around circa and to between early late mid through")
_NUMBER_QUALIFIERS = re.compile(
    r"(?:\b(?:about|around|approximately|nearly|almost|over|some|roughly|up to|at least|at most|more than|less than"
    r"|fewer than|just over|just under)\s+)$",
    re.IGNORECASE,
)
_CONNECTORS = _wordset("of de du la le van von der den da di al bin")
_INSTRUCTION_STARTS = _wordset(
    """click run use see note install please make check open select enter type go visit read call contact follow add
    remove set ensure do don't dont try press download sign log choose refer email subscribe keep avoid consider
    remember let start stop create save write copy paste tap scroll navigate submit fill configure restart update
    share join register""")
_INSTRUCTION = re.compile(r"\b(?:you|your|you're|you'll)\b", re.IGNORECASE)
_PRONOUN_STARTS = _wordset("it its they their them he she his her")
_REGION_WORDS = _PLACE_WORDS | {"Middle", "Latin", "Central", "Southeast", "Northern", "Southern", "Eastern", "Western"}
_DEMONYM = re.compile(r"(?:ian|ican|ese|ish|ern|ean|eli|aqi|ani)$")
_LEADING_CONJ = re.compile(r"^(?:and|but|or|while|whereas|with|though|although|as|so|which|that)\s+", re.IGNORECASE)

_OPEN_PUNCT = "“\"‘'([{«"
_CLOSE_PUNCT = "”\"’'),.;:!?]}»"
_BULLET = re.compile(r"^(?:[-*+>]|\d{1,3}[.)])\s+")
_TERMINAL = re.compile(r"[.!?…][\"”’')\]]*$")

_DATE_FULL = re.compile(
    rf"\b(?:(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+(?:{_MONTHS}),?\s+\d{{4}})(?![\w-])"
)
_MONTH_YEAR = re.compile(rf"\b(?:{_MONTHS}),?\s+\d{{4}}(?![\w-])")
_YEAR = re.compile(r"(?<![\w.,$€£/-])(?:1[5-9]\d\d|20\d\d)(?![\w%-]|[.,]\d)")
_NUMBER = re.compile(
    r"(?<![\w.,/-])(?P<cur>[$€£]\s?)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?P<scale>\s(?:thousand|million|billion|trillion))?(?P<pct>\s?%|\spercent\b|\sper\scent\b)?(?![\w-]|[.,:]\d)"
)
_TIME_AFTER = re.compile(r"^\s?(?:am|pm|a\.m\.|p\.m\.|o'clock)\b", re.IGNORECASE)
_TOKEN = re.compile(r"\S+")
_WORD_RE = re.compile(r"\w[\w'’-]*")

_KIND_PRIORITY = {"date": 6, "month": 6, "year": 5, "money": 4, "percent": 4, "number": 4, "person": 4,
                  "org": 3, "place": 3, "name": 2}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Span:
    """An answer candidate inside a sentence (offsets relative to the sentence)."""

    start: int
    end: int
    text: str
    kind: str  # date month year money percent number person org place name
    repl_start: int  # what the template replaces by ``wh`` (the span and the words it absorbs)
    repl_end: int
    wh: str
    multiword: bool = False


@dataclass
class Candidate:
    doc_index: int
    sentence_index: int
    start: int  # document offsets of the sentence
    end: int
    text: str
    options: list[Span]  # answer spans, best first
    score: float
    span: Span | None = None  # the chosen one


@dataclass
class _Doc:
    doc: Document
    file_name: str
    candidates: list[Candidate] = field(default_factory=list)
    names: list[Span] = field(default_factory=list)


@dataclass
class DraftStats:
    files: int = 0
    documents: int = 0
    skipped: list[str] = field(default_factory=list)
    answerable: int = 0
    unanswerable: int = 0
    llm_questions: int = 0
    template_questions: int = 0
    llm_rejected: Counter = field(default_factory=Counter)


# --------------------------------------------------------------------------- loading


def load_documents(paths: Iterable[str | Path], settings: Settings | None = None,
                   stats: DraftStats | None = None) -> list[Document]:
    """Documents under ``paths`` (files or folders), in file order; unreadable files are skipped (and logged)."""
    from index.load import discover, load_file
    from rag.errors import UnreadableDocumentError

    files, skipped = discover([Path(p) for p in paths])
    max_bytes = int(settings.max_file_mb * 1e6) if settings is not None else None
    docs: list[Document] = []
    for f in files:
        try:
            docs.extend(load_file(f.path, max_bytes=max_bytes))
        except UnreadableDocumentError as exc:
            logger.warning("skipped %s", exc.message)
            if stats is not None:
                stats.skipped.append(exc.message)
    if stats is not None:
        stats.files = len(files)
        stats.documents = len(docs)
        stats.skipped.extend(f"{p}: {why}" for p, why in skipped)
    return docs


# --------------------------------------------------------------------------- sentences


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) document offsets of the sentences of ``text``, stripped of whitespace and list markers."""
    from rag.pipeline import sentence_spans

    out = []
    for s, e in sentence_spans(text):
        chunk = text[s:e]
        lead = len(chunk) - len(chunk.lstrip())
        s += lead
        e = s + len(text[s:e].rstrip())
        m = _BULLET.match(text[s:e])
        if m:
            s += m.end()
        if e > s:
            out.append((s, e))
    return out


def skip_reason(sentence: str, title: str = "") -> str | None:
    """Why a sentence is not a good source for a question (None: it is fine)."""
    words = _words(sentence)
    if sentence.lstrip().startswith("#") or sentence.strip() == title.strip():
        return "heading"
    if len(words) < SENTENCE_MIN_WORDS or len(sentence) < SENTENCE_MIN_CHARS:
        return "short"
    if len(words) > SENTENCE_MAX_WORDS or len(sentence) > SENTENCE_MAX_CHARS:
        return "long"
    if not _TERMINAL.search(sentence) and len(words) < 10:
        return "heading"
    capitalised = sum(1 for w in words if w[:1].isupper())
    if capitalised >= 0.7 * len(words):
        return "heading"
    if sentence.rstrip(_CLOSE_PUNCT.replace("?", "")).endswith("?") or sentence.rstrip().endswith(":"):
        return "question"
    if "http" in sentence or "```" in sentence or sentence.count("|") >= 2 or "{" in sentence:
        return "markup"
    first = words[0].lower() if words else ""
    if first in _INSTRUCTION_STARTS or _INSTRUCTION.search(sentence):
        return "instruction"
    return None


# --------------------------------------------------------------------------- answer spans


def _prev_word(text: str, pos: int) -> str:
    m = re.search(r"([\w'’.-]+)[\s“\"‘(]*$", text[:pos])
    return m.group(1).lower().strip(".") if m else ""


def _next_word(text: str, pos: int) -> str:
    m = re.match(r"[\s,”\"’)]*([\w'’-]+)", text[pos:])
    return m.group(1).lower() if m else ""


def _absorb_prep(sentence: str, start: int, preps: Iterable[str]) -> tuple[int, str]:
    """(start of the preposition before ``start`` if it is one of ``preps``, the preposition) or (start, "")."""
    m = re.search(r"\b([A-Za-z]+)\s+$", sentence[:start])
    if m and m.group(1).lower() in preps:
        return m.start(1), m.group(1)
    return start, ""


def _time_spans(sentence: str) -> list[Span]:
    spans: list[Span] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y in taken)

    for m in _DATE_FULL.finditer(sentence):
        rs, prep = _absorb_prep(sentence, m.start(), ("on",))
        spans.append(Span(m.start(), m.end(), m.group(), "date", rs, m.end(), f"{prep} what date".strip()))
        taken.append((m.start(), m.end()))
    for m in _MONTH_YEAR.finditer(sentence):
        if free(m.start(), m.end()):
            rs, prep = _absorb_prep(sentence, m.start(), ("in", "since", "by", "until", "from", "before", "after"))
            wh = f"{prep} what month and year".strip() if prep else "what month and year"
            spans.append(Span(m.start(), m.end(), m.group(), "month", rs, m.end(), wh))
            taken.append((m.start(), m.end()))
    for m in _YEAR.finditer(sentence):
        if not free(m.start(), m.end()):
            continue
        prev = _prev_word(sentence, m.start())
        after = sentence[m.end():m.end() + 2]
        if prev in _YEAR_PREPS or not after or after[0] in ",.;:)”\"’—–" or after.startswith(" -"):
            rs, prep = _absorb_prep(sentence, m.start(), _YEAR_PREPS)
            if prep.lower() in ("and", "to", "of", "between", "through", "mid", "early", "late"):
                rs, prep = m.start(), ""
            wh = f"{prep} what year".strip() if prep else "what year"
            spans.append(Span(m.start(), m.end(), m.group(), "year", rs, m.end(), wh))
            taken.append((m.start(), m.end()))
    for m in _NUMBER.finditer(sentence):
        if not free(m.start(), m.end()) or _TIME_AFTER.match(sentence[m.end():]):
            continue
        prev_raw = re.search(r"(\S+)\s+$", sentence[:m.start()])
        if prev_raw and prev_raw.group(1)[:1].isupper() and prev_raw.group(1).strip(_CLOSE_PUNCT).isalpha() \
                and prev_raw.group(1) not in _STOP_CAPS:
            continue  # "Pier 3", "Apollo 11": part of a name
        if m.start() == 0 and not m.group("scale") and not m.group("pct") and not m.group("cur"):
            continue  # a list number
        text = m.group().strip()
        rs = m.start()
        q = _NUMBER_QUALIFIERS.search(sentence[:m.start()])
        if q:
            rs = q.start()
        if m.group("cur"):
            kind, wh = "money", "how much"
        elif m.group("pct"):
            kind, wh = "percent", "what percentage"
        else:
            kind = "number"
            wh = f"how many{m.group('scale') or ''}"
        spans.append(Span(m.start(), m.start() + len(text), text, kind, rs, m.start() + len(text), wh))
        taken.append((m.start(), m.end()))
    return spans


def _tokens(sentence: str) -> list[tuple[int, int, str]]:
    """Word tokens with sentence offsets, quotes and trailing punctuation and possessives stripped."""
    out = []
    for m in _TOKEN.finditer(sentence):
        s, e = m.start(), m.end()
        while s < e and sentence[s] in _OPEN_PUNCT:
            s += 1
        while e > s and sentence[e - 1] in _CLOSE_PUNCT:
            e -= 1
        word = sentence[s:e]
        for poss in ("’s", "'s"):
            if word.endswith(poss):
                e -= 2
                word = word[:-2]
        if word:
            out.append((s, e, word))
    return out


def _is_cap(word: str) -> bool:
    return word[:1].isupper() and word[:1].isalpha() and "-" not in word and word != "I"


def proper_words(texts: Iterable[str]) -> set[str]:
    """Capitalised words seen somewhere other than at the start of a sentence: likely parts of names."""
    found: set[str] = set()
    for text in texts:
        for s, e in sentences(text):
            toks = _tokens(text[s:e])
            for i, (_, _, w) in enumerate(toks):
                if i > 0 and _is_cap(w) and w not in _STOP_CAPS:
                    found.add(w)
    return found


def _name_spans(sentence: str, proper: set[str], known: dict[str, str] | None = None) -> list[Span]:
    toks = _tokens(sentence)
    runs: list[list[tuple[int, int, str]]] = []
    run: list[tuple[int, int, str]] = []

    def close() -> None:
        while run and run[-1][2].lower() in _CONNECTORS:
            run.pop()
        if run:
            runs.append(list(run))
        run.clear()

    for i, (s, e, w) in enumerate(toks):
        initial = i == 0
        cap = _is_cap(w) and w not in _STOP_CAPS and not (initial and w not in proper)
        cap = cap and w not in _MONTH_SET and w.rstrip("s") not in _WEEKDAYS
        gap = run and sentence[run[-1][1]:s].strip()  # punctuation between the previous token and this one
        if gap:
            close()
        if cap or (run and w.lower() in _CONNECTORS and w.islower()):
            run.append((s, e, w))
        elif run and w.isdigit() and len(w) <= 3:
            run.append((s, e, w))
            close()
        else:
            close()
        if sentence[e:e + 2] in ("’s", "'s") or (e < len(sentence) and sentence[e] in ",;:.!?”\")"):
            close()
    close()

    spans = []
    for r in runs:
        honorific = None
        while len(r) > 1 and r[0][2].lower().strip(".") in _HONORIFICS:
            honorific = r[0]
            r = r[1:]
        s, e = r[0][0], r[-1][1]
        text = sentence[s:e]
        words = text.split()
        if all(w.lower() in _CONNECTORS for w in words):
            continue
        prev, nxt = _prev_word(sentence, (honorific or r[0])[0]), _next_word(sentence, e)
        wordset = set(words)
        if (not honorific and _DEMONYM.search(words[-1]) and re.match(r"\s+[a-z]", sentence[e:])
                and all(w in _REGION_WORDS for w in words[:-1]) and prev not in _ROLE_WORDS):
            continue  # "Chinese goods", "Middle Eastern partner": an adjective, not a name
        if honorific or prev in _ROLE_WORDS or nxt in _PERSON_VERBS:
            kind = "person"
        elif wordset & _ORG_WORDS:
            kind = "org"
        elif wordset & _PLACE_WORDS or (prev in _PLACE_PREPS and len(words) == 1):
            kind = "place"
        else:
            kind = (known or {}).get(text, "name")  # "Trump has warned" after "President Trump" elsewhere
        rs, wh = (honorific or r[0])[0], "what"
        if kind == "person":
            role = _HONORIFICS.get(honorific[2].lower().strip(".")) if honorific else None
            if role:
                wh = f"which {role}"
            else:
                wh = "whom" if prev in ("from", "by", "to", "with", "for") and not honorific else "who"
        elif kind == "place" and prev in ("in", "at"):
            rs, _ = _absorb_prep(sentence, rs, ("in", "at"))
            wh = "where"
        spans.append(Span(s, e, text, kind, rs, e, wh, multiword=len(words) > 1))
    return spans


def known_kinds(texts: Iterable[str], proper: set[str]) -> dict[str, str]:
    """Name phrase -> person, org or place, where some mention of it tells (a title, a role word, "in X")."""
    votes: dict[str, Counter[str]] = {}
    for text in texts:
        for s, e in sentences(text):
            for sp in _name_spans(text[s:e], proper):
                if sp.kind != "name":
                    votes.setdefault(sp.text, Counter())[sp.kind] += 1
    return {name: c.most_common(1)[0][0] for name, c in votes.items()}


def answer_spans(sentence: str, proper: set[str], known: dict[str, str] | None = None) -> list[Span]:
    """Answer candidates in a sentence: dates, years, numbers, then capitalised name phrases, best first."""
    spans = _time_spans(sentence)
    taken = [(sp.start, sp.end) for sp in spans]
    for sp in _name_spans(sentence, proper, known):
        if all(sp.end <= a or sp.start >= b for a, b in taken):
            spans.append(sp)
    return sorted(spans, key=lambda sp: (-_span_priority(sp), sp.start))


def _span_priority(sp: Span) -> float:
    return _KIND_PRIORITY[sp.kind] + (1 if sp.multiword and sp.kind in ("person", "org", "place", "name") else 0)


# --------------------------------------------------------------------------- evidence


def evidence_window(sentence: str, span: Span, limit: int = EVIDENCE_MAX) -> tuple[int, int]:
    """(start, end) within ``sentence``: the whole sentence if short enough, else at most ``limit`` characters around
    the span, cut on word boundaries."""
    n = len(sentence)
    if n <= limit:
        return 0, n
    length = span.end - span.start
    lo = max(0, span.start - (limit - length) // 3)  # more context after the span start than before
    hi = min(n, lo + limit)
    lo = max(0, hi - limit)
    if lo > 0 and not sentence[lo - 1].isspace():
        nxt = re.search(r"\s", sentence[lo:span.start])
        lo = lo + nxt.end() if nxt else span.start
    if hi < n and not sentence[hi].isspace():
        cut = sentence.rfind(" ", span.end, hi)
        hi = cut if cut >= 0 else span.end
    while lo < span.start and sentence[lo] in " ,;:—–-":
        lo += 1
    while hi > span.end and sentence[hi - 1] in " ,;:—–-":
        hi -= 1
    return lo, hi


# --------------------------------------------------------------------------- questions


def _finish_question(text: str) -> str:
    text = text.strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"[.!;:,\s]+([”\"’)]*)$", r"\1", text)
    text = re.sub(r"[.!;:,]+([”\"’)]+)$", r"\1", text)
    text = text.rstrip(" .!;:,—–-")
    return (text[:1].upper() + text[1:] + "?") if text else ""


def _clauses(text: str) -> list[tuple[int, int]]:
    bounds = [0]
    for m in re.finditer(r',\s|;\s|:\s|\s?[—–]\s?|\s-\s|[.!?][”"’]?\s+(?=[“"‘A-Z])', text):
        bounds.append(m.end())
    out = []
    for i, b in enumerate(bounds):
        e = bounds[i + 1] if i + 1 < len(bounds) else len(text)
        out.append((b, e))
    return out


def template_question(sentence: str, span: Span, title: str = "") -> str:
    """An echo question: the sentence with the span (and its preposition or qualifier) replaced by a wh-phrase,
    shortened to the clauses around it when the sentence is long."""
    wh, rs, re_ = span.wh, span.repl_start, span.repl_end
    if re_ == span.end and sentence[re_:re_ + 2] in ("’s", "'s"):
        wh, re_ = "whose", re_ + 2  # "America’s strategic position" -> "whose strategic position"
    quoted = re.match(r"([,.;:!?]?)[”\"’]", sentence[re_:])
    if rs > 0 and sentence[rs - 1] in "“\"‘" and quoted:
        rs, re_, wh = rs - 1, re_ + quoted.end(), wh + quoted.group(1)  # dubbed “Operation X,” -> dubbed what,
    the = re.search(r"\b[Tt]he\s+$", sentence[:rs])
    if the and wh.split()[0] in ("what", "whose"):
        rs = the.start()  # "across the Middle East" -> "across what"
    owner = re.search(r"(?:^|(?<=\s))[\w-]+[’']s\s+$", sentence[:rs])
    if owner and wh == "what":
        rs = owner.start()  # "Israel’s “Operation Rising Lion” targeted" -> "What targeted"
    if rs == 0:
        wh = wh[:1].upper() + wh[1:]
    q = sentence[:rs] + wh + sentence[re_:]
    mark = rs
    if len(q.split()) > QUESTION_MAX_WORDS:
        parts = _clauses(q)
        i = next(k for k, (a, b) in enumerate(parts) if a <= mark < b)
        lo, hi = i, i

        def count(a: int, b: int) -> int:
            return len(q[parts[a][0]:parts[b][1]].split())

        while True:
            if lo > 0 and count(lo - 1, hi) <= QUESTION_MAX_WORDS:
                lo -= 1
            elif hi + 1 < len(parts) and count(lo, hi + 1) <= QUESTION_MAX_WORDS:
                hi += 1
            else:
                break
        q = q[parts[lo][0]:parts[hi][1]]
        if lo > 0:
            q = _LEADING_CONJ.sub("", q.strip(" ,;:—–-"))
    q = q.strip()
    first = (_words(q)[:1] or [""])[0].lower()
    if title and first in _PRONOUN_STARTS and not contains(title, span.text):
        q = f"{title.strip().rstrip('.:')}: {q[:1].lower() + q[1:]}"
    return _finish_question(q)


def question_messages(sentence: str, answer: str, title: str = "") -> list[dict[str, str]]:
    """The prompt that asks an LLM for one question whose answer is ``answer``."""
    return [
        {"role": "system", "content": "You write quiz questions that test whether a reader found a fact in a "
                                      "document. Reply with the question only."},
        {"role": "user", "content": (
            (f"Document title: {title}\n" if title else "")
            + f"Fact: {sentence}\nAnswer: {answer}\n\n"
            f"Write one question of 5 to 30 words whose answer is exactly \"{answer}\". The question must make sense "
            "on its own to someone who has not read the fact: name its subject, and do not refer to the fact, the "
            f"text or the document. Do not include \"{answer}\" in the question. Reply with the question only, on one "
            "line, ending with a question mark."
        )},
    ]


_PREFIX = re.compile(r"^(?:\*\*)?(?:question|q)\s*\d*\s*[:.)-]\s*(?:\*\*)?\s*", re.IGNORECASE)
_META = re.compile(
    r"\b(?:sentence|passage|excerpt|the (?:given |above )?(?:text|fact|document)|this (?:text|fact|document))\b",
    re.IGNORECASE,
)


def check_question(reply: str, answer: str) -> tuple[str | None, str]:
    """(the cleaned question, "ok") or (None, why it is rejected) for an LLM reply."""
    text = reply.strip()
    text = _PREFIX.sub("", text).strip()
    text = text.strip("*").strip()
    if len(text) >= 2 and text[0] in "\"“'" and text[-1] in "\"”'":
        text = text[1:-1].strip()
    text = re.sub(r"\s*\?+$", "?", text)  # "...??" -> "...?"
    if not text:
        return None, "empty"
    if "\n" in text:
        return None, "several lines"
    if not text.endswith("?") or text.count("?") != 1:
        return None, "not one question"
    if contains(text, answer) or answer.lower() in text.lower():
        return None, "contains the answer"
    n = len(text.split())
    if not QUESTION_MIN_WORDS <= n <= QUESTION_MAX_WORDS:
        return None, f"{n} words"
    if _META.search(text):
        return None, "mentions the text"
    return text, "ok"


def answer_messages(sentence: str, question: str) -> list[dict[str, str]]:
    """The round-trip prompt: answer the drafted question from the sentence alone, as a short copied span."""
    return [
        {"role": "system", "content": "You answer questions from one given fact. Reply with the answer only."},
        {"role": "user", "content": f"Fact: {sentence}\nQuestion: {question}\n\nAnswer with the shortest phrase "
                                    "copied from the fact, nothing else."},
    ]


def round_trip_ok(reply: str, answer: str) -> bool:
    """Whether the LLM's answer to its own question names ``answer`` (either one contains the other)."""
    reply = reply.strip().strip("\"“”'.")
    return bool(normalize(reply)) and (contains(reply, answer) or contains(answer, reply))


def _chat(llm: Any, messages: list[dict[str, str]], max_tokens: int, stop: list[str]) -> str | None:
    from rag.errors import ModelUnavailableError

    try:
        return str(llm.chat(messages, max_tokens=max_tokens, temperature=0.0, stop=stop))
    except ModelUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing call falls back to the template: the draft goes on
        logger.warning("LLM call failed (%s: %s); using the template", type(exc).__name__, exc)
        return None


def llm_question(llm: Any, sentence: str, answer: str, title: str = "") -> tuple[str | None, str]:
    """Ask ``llm`` for a question whose answer is ``answer``; (question, "ok") or (None, why not).

    The reply must pass :func:`check_question`, and then the round trip: asked to answer its own question from the
    sentence, the LLM must name ``answer`` (this drops questions that ask for something else in the sentence).
    """
    reply = _chat(llm, question_messages(sentence, answer, title), 64, ["\n\n"])
    if reply is None:
        return None, "LLM error"
    question, why = check_question(reply, answer)
    if question is None:
        return None, why
    back = _chat(llm, answer_messages(sentence, question), 32, ["\n"])
    if back is None:
        return None, "LLM error"
    if not round_trip_ok(back, answer):
        logger.info("round trip: %r was answered %r, not %r", question, back, answer)
        return None, "answered differently"
    return question, "ok"


# --------------------------------------------------------------------------- unanswerable templates

_UNANSWERABLE: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "person": (
        ("In what year was {e} born?", ("born", "birth")),
        ("Which university did {e} graduate from?", ("universit", "graduat", "studied", "degree", "college",
                                                      "educat")),
        ("How many children does {e} have?", ("child", "son", "daughter", "married", "family")),
    ),
    "place": (
        ("What is the population of {e}?", ("population", "inhabitant", "resident", "census")),
        ("What is the average annual rainfall in {e}?", ("rain", "precipitation", "climate", "weather")),
        ("What is the total area of {e} in square kilometres?", ("area", "square", "km", "acre", "hectare")),
    ),
    "org": (
        ("How many people work at {e}?", ("employ", "staff", "worker", "people work")),
        ("What was the annual budget of {e}?", ("budget", "revenue", "funding", "spend")),
        ("Who founded {e}?", ("found", "establish", "creat", "start")),
    ),
    "title": (
        ("Who is the author of “{e}”?", ("author", "written by", "wrote", "byline")),
        ("On what date was “{e}” published?", ("publish", "posted", "updated")),
    ),
}


def _mentions(corpus_lower: str, keywords: Sequence[str]) -> bool:
    return any(re.search(r"\b" + re.escape(k), corpus_lower) for k in keywords)


def unanswerable_questions(docs: Sequence[_Doc], k: int, rng: random.Random, corpus_lower: str,
                           used: set[str]) -> list[str]:
    """Up to ``k`` template questions about names of the corpus whose topic no document mentions."""
    if k <= 0:
        return []
    counts: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    for d in docs:
        for sp in d.names:
            if sp.kind == "name":
                continue
            counts[sp.text] += 1
            kinds.setdefault(sp.text, Counter())[sp.kind] += 1
    entities = sorted(counts, key=lambda e: (-counts[e], e))[:12]
    rng.shuffle(entities)
    options: list[tuple[str, str]] = []  # (question, entity)
    for e in entities:
        kind = kinds[e].most_common(1)[0][0]
        templates = list(_UNANSWERABLE[kind])
        rng.shuffle(templates)
        named = f"the {e}" if kind != "person" and re.search(r"\bthe " + re.escape(e.lower()), corpus_lower) else e
        options.extend((tpl.format(e=named), e) for tpl, keys in templates if not _mentions(corpus_lower, keys))
    titles = sorted({d.doc.title.strip() for d in docs if d.doc.title.strip()})
    for t in titles:
        options.extend((tpl.format(e=t), t) for tpl, keys in _UNANSWERABLE["title"]
                       if not _mentions(corpus_lower, keys))
    out: list[str] = []
    per_entity: Counter[str] = Counter()
    for most in range(1, 4):  # one question per entity first, then more
        for q, entity in options:
            if len(out) >= k:
                return out
            if q in out or normalize(q) in used or per_entity[entity] >= most:
                continue
            out.append(q)
            per_entity[entity] += 1
    return out


# --------------------------------------------------------------------------- drafting


def _candidates(d: _Doc, doc_index: int, proper: set[str], known: dict[str, str]) -> None:
    text, title = d.doc.text, d.doc.title
    title_norm = normalize(title)
    freq_cache: dict[str, int] = {}
    for si, (s, e) in enumerate(sentences(text)):
        sent = text[s:e]
        spans = answer_spans(sent, proper, known)
        d.names.extend(sp for sp in spans if sp.kind in ("person", "org", "place", "name"))
        if skip_reason(sent, title) is not None:
            continue
        scored: list[tuple[float, int, Span]] = []
        for sp in spans:
            if len(normalize(sp.text)) < 2 or sent.count(sp.text) > 1:
                continue
            score = _span_priority(sp)
            if title_norm and contains(title, sp.text):
                score -= 3  # the document's topic: a question about it is too easy
            key = normalize(sp.text)
            if key not in freq_cache:
                freq_cache[key] = len(re.findall(r"(?<!\w)" + re.escape(sp.text) + r"(?!\w)", text))
            if freq_cache[key] > 3:
                score -= 1
            scored.append((score, sp.start, sp))
        if not scored:
            continue
        scored.sort(key=lambda t: (-t[0], t[1]))
        n_words = len(_words(sent))
        score = scored[0][0] + (1 if 8 <= n_words <= 35 else 0)
        d.candidates.append(Candidate(doc_index, si, s, e, sent, [sp for _, _, sp in scored], score))


def _select(docs: list[_Doc], k: int, rng: random.Random) -> list[Candidate]:
    """Up to ``k`` candidates, round-robin over the documents (seeded order), best-scored with seeded jitter,
    avoiding neighbouring sentences and repeated answers."""
    queues: list[list[Candidate]] = []
    for d in docs:
        keyed = [(c.score + rng.uniform(0, 2.5), c) for c in d.candidates]
        keyed.sort(key=lambda t: (-t[0], t[1].sentence_index))
        queues.append([c for _, c in keyed])
    order = list(range(len(docs)))
    rng.shuffle(order)
    chosen: list[Candidate] = []
    answers: set[str] = set()
    answer_words: list[set[str]] = []

    def overlaps(text: str) -> bool:  # "Lin" after "Lin Jian", "Salami" after "Hossein Salami"
        words = set(normalize(text).split())
        return any(words <= used or used <= words for used in answer_words)

    near: set[tuple[int, int]] = set()
    taken: set[tuple[int, int]] = set()
    for strict in (True, False):
        progress = True
        while len(chosen) < k and progress:
            progress = False
            for di in order:
                if len(chosen) >= k:
                    break
                for c in queues[di]:
                    where = (c.doc_index, c.sentence_index)
                    if where in taken or (strict and where in near):
                        continue
                    span = next((sp for sp in c.options
                                 if normalize(sp.text) not in answers and not overlaps(sp.text)), None)
                    if span is None:
                        continue
                    chosen.append(replace(c, span=span))
                    key = normalize(span.text)
                    answers.add(key)
                    answer_words.append(set(key.split()))
                    taken.add(where)
                    near.update((c.doc_index, c.sentence_index + j) for j in (-1, 0, 1))
                    progress = True
                    break
    return sorted(chosen, key=lambda c: (c.doc_index, c.start))


def _draft(paths: Sequence[str | Path], settings: Settings | None, *, n: int = 20, seed: int = 0, llm: Any = None,
           progress: ProgressFactory | None = None) -> tuple[list[dict[str, Any]], DraftStats]:
    stats = DraftStats()
    if n <= 0:
        return [], stats
    docs_raw = load_documents(paths, settings, stats)
    rng = random.Random(seed)
    if len(docs_raw) > MAX_DOCUMENTS_PER_ROW * n:  # a large corpus: draft from a seeded sample of its documents
        keep = sorted(rng.sample(range(len(docs_raw)), MAX_DOCUMENTS_PER_ROW * n))
        docs_raw = [docs_raw[i] for i in keep]
    proper = proper_words(d.text for d in docs_raw)
    known = known_kinds((d.text for d in docs_raw), proper)
    docs = [_Doc(d, Path(d.source).name) for d in docs_raw]
    for i, d in enumerate(docs):
        _candidates(d, i, proper, known)

    n_unanswerable = round(n * UNANSWERABLE_SHARE)
    if n >= 3:
        n_unanswerable = max(1, n_unanswerable)
    picked = _select(docs, n - n_unanswerable, rng)
    corpus_lower = "\n".join(d.text for d in docs_raw).lower()

    rows: list[dict[str, Any]] = []
    bar = progress(len(picked) + n_unanswerable) if progress is not None else None
    try:
        for c in picked:
            d = docs[c.doc_index]
            assert c.span is not None
            lo, hi = evidence_window(c.text, c.span)
            evidence = d.doc.text[c.start + lo:c.start + hi]
            question = None
            if llm is not None:
                question, why = llm_question(llm, c.text, c.span.text, d.doc.title)
                if question is None:
                    stats.llm_rejected[why] += 1
                    logger.info("LLM question rejected (%s) for %r", why, c.span.text)
                else:
                    stats.llm_questions += 1
            if question is None:
                question = template_question(c.text, c.span, d.doc.title)
                stats.template_questions += 1
            rows.append({
                "id": "", "question": question, "answerable": True, "answers": [c.span.text], "evidence": evidence,
                "conversation": None, "turn": 0, "expected_sources": [d.file_name], "review": REVIEW,
            })
            if bar is not None:
                bar.update(1)
        used = {normalize(r["question"]) for r in rows}
        for q in unanswerable_questions(docs, n_unanswerable, rng, corpus_lower, used):
            rows.append({
                "id": "", "question": q, "answerable": False, "answers": [], "evidence": None,
                "conversation": None, "turn": 0, "expected_sources": [], "review": REVIEW,
            })
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    width = max(3, len(str(len(rows))))
    for i, r in enumerate(rows, start=1):
        r["id"] = f"d{i:0{width}d}"
    stats.answerable = sum(1 for r in rows if r["answerable"])
    stats.unanswerable = len(rows) - stats.answerable
    return rows, stats


def draft_golden(paths: Sequence[str | Path], settings: Settings | None = None, *, n: int = 20, seed: int = 0,
                 llm: Any = None, progress: ProgressFactory | None = None) -> list[dict[str, Any]]:
    """Draft up to ``n`` golden rows (about 80% answerable, 20% unanswerable) for the documents under ``paths``.

    Args:
        paths: files or folders (any format ``index.load`` reads).
        settings: used for the file-size limit (``max_file_mb``); None: no limit.
        n: rows wanted; fewer come back when the corpus has too few usable sentences or unanswerable templates.
        seed: the same seed and corpus give the same rows (with a deterministic ``llm``).
        llm: anything with ``chat(messages, max_tokens=, temperature=, stop=) -> str``; writes the answerable
            questions (checked, with the template as fallback). None: templates only.
        progress: ``progress(total)`` returning an object with ``update(n)`` and ``close()``.

    Returns:
        Rows in the golden JSONL format, ids ``d001``..., each with ``review``; answerable rows first (in document
        order), then the unanswerable ones.
    """
    return _draft(paths, settings, n=n, seed=seed, llm=llm, progress=progress)[0]


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")


class _LineProgress:
    """Progress on stderr, one line per question (for slow LLM drafting)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def update(self, n: int) -> None:
        self.done += n
        print(f"  drafted {self.done}/{self.total}", file=sys.stderr, flush=True)  # noqa: T201 - a command's output

    def close(self) -> None:
        pass


def run_draft(corpus: Sequence[Path], out: Path, *, n: int = 20, seed: int = 0, mode: str = "extractive",
              llm_model: str | None = None, echo: Callable[..., object] = print) -> int:
    """Draft a golden set from ``corpus`` into ``out`` and report on ``echo`` (``echo(text, err=True)`` for errors);
    the body of ``rag eval draft``. Returns the exit code: 0, 1 (nothing to draft from), 2 (a RagError)."""
    from rag.errors import RagError
    from rag.settings import get_settings

    settings = get_settings()
    if llm_model:
        settings = settings.model_copy(update={"llm_model": llm_model})
    try:
        llm = None
        if mode != "extractive":
            from rag.models import make_chat_model

            llm = make_chat_model(settings, cast("AnswerMode", mode))
        rows, stats = _draft(list(corpus), settings, n=n, seed=seed, llm=llm,
                             progress=cast("ProgressFactory", _LineProgress) if llm is not None else None)
    except RagError as exc:
        echo(f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), err=True)
        return 2
    if not rows:
        echo(f"error: nothing to draft from {', '.join(map(str, corpus))} "
             f"({stats.documents} documents, no usable sentences)", err=True)
        return 1
    write_jsonl(rows, out)
    echo(f"drafted {len(rows)} rows ({stats.answerable} answerable, {stats.unanswerable} unanswerable) "
         f"from {stats.documents} document(s) in {stats.files} file(s) -> {out}")
    if llm is not None:
        rejected = ", ".join(f"{why}: {k}" for why, k in stats.llm_rejected.most_common())
        echo(f"questions: {stats.llm_questions} by the LLM ({mode}), {stats.template_questions} from templates"
             + (f" (LLM replies rejected: {rejected})" if rejected else ""))
    else:
        echo(f"questions: {stats.template_questions} from templates")
    if stats.skipped:
        echo(f"skipped {len(stats.skipped)} file(s): " + "; ".join(stats.skipped[:3])
             + (" ..." if len(stats.skipped) > 3 else ""))
    echo("every row is a draft (field 'review'): check the question, the answer and the evidence, then drop 'review'")
    return 0
