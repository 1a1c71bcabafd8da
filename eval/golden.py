"""Golden question set: end-to-end answer quality, citations, honest refusals and follow-ups.

A golden file is JSON Lines, one question per line (see ``eval/golden/README.md``)::

    {"id": "g01", "question": "...", "answerable": true, "answers": ["2021"],
     "evidence": "exact substring of the document", "conversation": null, "turn": 0}

Texts are compared folded (:func:`fold`: SQuAD-style :func:`normalize` after undoing PDF line-end hyphenation,
``en- abled`` == ``enabled``), so rows written against one text extraction still match the product's chunks.

:func:`load_golden` reads and validates a file, :func:`score_answer` scores one :class:`rag.types.Answer`,
:func:`run_golden` asks every question through any ``ask(question, history) -> Answer`` callable (follow-ups get the
pipeline's own earlier answers as chat history) and :func:`format_golden` renders the report.
"""

from __future__ import annotations

import os
import re
import string
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eval.data import DataFileError, iter_jsonl
from eval.metrics import percentile
from rag.pipeline import strip_citations
from rag.types import Answer

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
SEEDS_GOLDEN = GOLDEN_DIR / "seeds.jsonl"

EVIDENCE_MIN = 10
EVIDENCE_MAX = 200  # what a drafted evidence window aims for (eval.draft); hand-written rows may be longer
EVIDENCE_LIMIT = 1000  # the longest evidence load_golden accepts

AskFn = Callable[[str, list[dict[str, str]]], Answer]


# --------------------------------------------------------------------------- normalisation

_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_APOSTROPHES = "'’‘`´"


def normalize(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces.

    Commas between digits go first (``1,000`` == ``1000``); apostrophes are dropped (``Iran’s`` == ``Irans``); every
    other punctuation character, ASCII or Unicode (dashes, curly quotes), becomes a space, so ``25-year`` ==
    ``25 year`` and ``U.S.`` == ``u s``.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DIGIT_COMMA.sub("", text)
    text = "".join(
        "" if ch in _APOSTROPHES
        else " " if ch in string.punctuation or unicodedata.category(ch).startswith("P")
        else ch
        for ch in text
    )
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


# "en- abled": a word split at a line end, as PDF text extraction leaves it (the hyphen, then the line break)
_HYPHEN_JOIN = re.compile(r"(?<=[^\W\d_])- +(?=[^\W\d_A-Z])")
_NOT_ALNUM = re.compile(r"[\W_]+")


def dehyphenate(text: str) -> str:
    """Collapse whitespace and join words split at a line end: ``en- abled`` -> ``enabled``.

    Only a hyphen followed by a space, between a letter and a lower-case letter, is removed: ``25-year``,
    ``well-known`` and ``Diffie- Hellman`` keep theirs (:func:`evidence_in` also matches ``DiffieHellman``).
    """
    return _HYPHEN_JOIN.sub("", " ".join(text.split()))


def fold(text: str) -> str:
    """The form every comparison uses: :func:`normalize` after :func:`dehyphenate`."""
    return normalize(dehyphenate(text))


def contains(haystack: str, needle: str) -> bool:
    """Whether folded ``needle`` occurs in folded ``haystack`` on word boundaries (``100`` not in ``1000``)."""
    n = fold(needle)
    return bool(n) and f" {n} " in f" {fold(haystack)} "


def _squash(text: str) -> str:
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).lower())


def evidence_in(text: str, evidence: str) -> bool:
    """Whether ``text`` holds the ``evidence`` passage: folded forms (see :func:`fold`), or, failing that, letters and
    digits only (so ``non-zero`` == ``non- zero`` == ``nonzero``, whichever way a loader joined a split word)."""
    e = fold(evidence)
    if e and e in fold(text):
        return True
    squashed = _squash(evidence)
    return bool(squashed) and squashed in _squash(text)


def holds_gold(text: str, answers: Sequence[str], evidence: str | None) -> bool:
    """Whether ``text`` holds the evidence passage or one of the gold answers (see :func:`evidence_in`,
    :func:`contains`)."""
    return bool(evidence and evidence_in(text, evidence)) or any(contains(text, a) for a in answers)


# --------------------------------------------------------------------------- items

@dataclass(frozen=True)
class GoldenItem:
    id: str
    question: str
    answerable: bool
    answers: tuple[str, ...] = ()
    evidence: str | None = None
    conversation: str | None = None
    turn: int = 0
    expected_sources: tuple[str, ...] = ()
    history: tuple[tuple[str, str], ...] | None = None  # explicit (role, content) turns, instead of a conversation
    page: int | None = None  # 1-based page of a paged source (PDF) that holds the evidence
    why: str | None = None  # unanswerable rows: why the documents cannot answer

    @property
    def follow_up(self) -> bool:
        return (self.conversation is not None and self.turn > 0) or bool(self.history)


class GoldenError(DataFileError):
    """A golden file that does not validate."""


_FIELDS = {"id", "question", "answerable", "answers", "evidence", "conversation", "turn", "expected_sources", "history",
           "review", "page", "why"}


def source_name(source: str) -> str:
    """The file name of a source path (``/x/docs/gcrypt.pdf`` -> ``gcrypt.pdf``); expected_sources match on it."""
    return os.path.basename(source.replace("\\", "/"))


def from_expected_source(source: str, expected: Sequence[str]) -> bool:
    """Whether ``source`` (a chunk's path) is one of ``expected`` (file names or paths)."""
    name = source_name(source)
    return any(source == s or name == source_name(s) for s in expected)


def _check_evidence(item: GoldenItem, where: str, document_text: str | None,
                    documents: Mapping[str, str] | None) -> None:
    evidence = item.evidence
    if evidence is None:
        return
    if documents is not None:
        names = {source_name(k): v for k, v in documents.items()}
        if item.expected_sources:
            missing = [s for s in item.expected_sources if source_name(s) not in names]
            if missing:
                raise GoldenError(f"{where}: expected_sources {missing} are not among the documents "
                                  f"{sorted(names)}")
            texts = [names[source_name(s)] for s in item.expected_sources]
        else:
            texts = list(names.values())
        if not any(evidence_in(t, evidence) for t in texts):
            named = sorted(item.expected_sources) or "given"
            raise GoldenError(f"{where}: evidence is in none of the documents {named}"
                              f" (compared after collapsing whitespace and undoing hyphenation): {evidence!r}")
    elif document_text is not None and " ".join(evidence.split()) not in " ".join(document_text.split()):
        raise GoldenError(f"{where}: evidence is not an exact substring of the document (whitespace collapsed): "
                          f"{evidence!r}")


def _item(row: Any, where: str, document_text: str | None,
          documents: Mapping[str, str] | None = None) -> GoldenItem:
    if not isinstance(row, dict):
        raise GoldenError(f"{where}: expected a JSON object")
    missing, extra = {"id", "question", "answerable"} - row.keys(), row.keys() - _FIELDS
    if missing or extra:
        raise GoldenError(f"{where}: missing fields {sorted(missing)}, unknown fields {sorted(extra)}")
    id_, question, answerable = row["id"], row["question"], row["answerable"]
    answers, evidence = row.get("answers") or [], row.get("evidence")
    conversation, turn = row.get("conversation"), row.get("turn", 0)
    if not isinstance(id_, str) or not id_.strip():
        raise GoldenError(f"{where}: id must be a non-empty string")
    where = f"{where} ({id_})"
    if not isinstance(question, str) or not question.strip():
        raise GoldenError(f"{where}: question must be a non-empty string")
    if not isinstance(answerable, bool):
        raise GoldenError(f"{where}: answerable must be true or false")
    if not isinstance(answers, list) or not all(isinstance(a, str) and normalize(a) for a in answers):
        raise GoldenError(f"{where}: answers must be a list of non-empty strings")
    if conversation is not None and (not isinstance(conversation, str) or not conversation):
        raise GoldenError(f"{where}: conversation must be null or a non-empty string")
    if not isinstance(turn, int) or isinstance(turn, bool) or turn < 0:
        raise GoldenError(f"{where}: turn must be an integer >= 0")
    if conversation is None and turn != 0:
        raise GoldenError(f"{where}: a row without a conversation must have turn 0")
    sources = row.get("expected_sources") or []
    if not isinstance(sources, list) or not all(isinstance(x, str) and x.strip() for x in sources):
        raise GoldenError(f"{where}: expected_sources must be a list of file names or paths")
    history = row.get("history")
    if history is not None:
        if conversation is not None:
            raise GoldenError(f"{where}: use either history or conversation, not both")
        if not isinstance(history, list) or not all(
            isinstance(m, dict) and m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str)
            for m in history
        ):
            raise GoldenError(f"{where}: history must be a list of {{role: user|assistant, content: str}}")
    page, why = row.get("page"), row.get("why")
    if page is not None and (not isinstance(page, int) or isinstance(page, bool) or page < 1):
        raise GoldenError(f"{where}: page must be null or a page number >= 1")
    if why is not None and (not isinstance(why, str) or not why.strip()):
        raise GoldenError(f"{where}: why must be null or a non-empty string")
    if answerable:
        if not answers:
            raise GoldenError(f"{where}: an answerable question needs at least one answer")
        if evidence is None and sources:
            pass  # corpora without evidence strings: expected_sources say where the answer is
        elif not isinstance(evidence, str) or not EVIDENCE_MIN <= len(evidence) <= EVIDENCE_LIMIT:
            raise GoldenError(f"{where}: evidence must be a string of {EVIDENCE_MIN}-{EVIDENCE_LIMIT} characters")
    else:
        if answers or evidence is not None:
            raise GoldenError(f"{where}: an unanswerable question has answers [] and evidence null")
    item = GoldenItem(id=id_, question=question, answerable=answerable, answers=tuple(answers), evidence=evidence,
                      conversation=conversation, turn=turn, expected_sources=tuple(sources),
                      history=None if history is None else tuple((m["role"], m["content"]) for m in history),
                      page=page, why=why)
    _check_evidence(item, where, document_text, documents)
    return item


def load_golden(path: str | Path, document_text: str | None = None, *,
                documents: Mapping[str, str] | None = None) -> list[GoldenItem]:
    """Read and validate a golden JSONL file.

    Args:
        path: the file.
        document_text: the one source document; when given, every ``evidence`` must be an exact substring of it
            (whitespace collapsed).
        documents: a multi-document corpus instead, ``{file name or path: text}``; every ``evidence`` must occur in
            one of the row's ``expected_sources`` (all documents when it has none), compared with
            :func:`evidence_in` (whitespace collapsed, hyphenation undone), and every expected source must be there.

    Raises:
        GoldenError: a malformed row, a duplicate id, evidence not in the document, or a conversation whose turns are
            not 0, 1, 2, ... in file order.
    """
    path = Path(path)
    items: list[GoldenItem] = []
    seen: set[str] = set()
    last_turn: dict[str, int] = {}
    for where, row in iter_jsonl(path, error=GoldenError):
        item = _item(row, where, document_text, documents)
        if item.id in seen:
            raise GoldenError(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        if item.conversation is not None:
            expected = last_turn.get(item.conversation, -1) + 1
            if item.turn != expected:
                raise GoldenError(f"{where} ({item.id}): conversation {item.conversation!r} expects turn "
                                  f"{expected} next, got {item.turn}")
            last_turn[item.conversation] = item.turn
        items.append(item)
    if not items:
        raise GoldenError(f"{path}: no questions")
    return items


# --------------------------------------------------------------------------- scoring

@dataclass
class GoldenResult:
    id: str
    question: str
    answerable: bool
    conversation: str | None
    turn: int
    correct: bool
    cited: bool | None
    refused: bool
    text: str
    seconds: float
    refusal_reason: str | None = None
    citations: int = 0
    standalone_question: str | None = None

    @property
    def follow_up(self) -> bool:
        return self.conversation is not None and self.turn > 0


def _total_seconds(answer: Answer, wall: float | None) -> float:
    total = answer.seconds.get("total") if answer.seconds else None
    if total is not None:
        return float(total)
    return float(wall) if wall is not None else float("nan")


def score_answer(item: GoldenItem, answer: Answer, *, wall_seconds: float | None = None) -> GoldenResult:
    """Score one answer against its golden item.

    correct: answerable -> not refused and the answer text (citation markers removed) contains a gold answer,
    normalised; unanswerable -> refused. cited (answerable only, else None): some citation's quote holds the
    evidence or a gold answer (:func:`holds_gold`). seconds: ``answer.seconds["total"]`` if present, else
    ``wall_seconds``.
    """
    refused = bool(answer.refused)
    if item.answerable:
        body = strip_citations(answer.text)
        correct = not refused and any(contains(body, a) for a in item.answers)
        cited: bool | None = not refused and any(holds_gold(c.quote, item.answers, item.evidence)
                                                 for c in answer.citations)
    else:
        correct, cited = refused, None
    return GoldenResult(
        id=item.id, question=item.question, answerable=item.answerable, conversation=item.conversation,
        turn=item.turn, correct=correct, cited=cited, refused=refused, text=answer.text,
        seconds=_total_seconds(answer, wall_seconds), refusal_reason=answer.refusal_reason,
        citations=len(answer.citations), standalone_question=answer.standalone_question,
    )


# --------------------------------------------------------------------------- running

@dataclass
class GoldenReport:
    results: list[GoldenResult]
    summary: dict[str, Any] = field(default_factory=dict)


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def summarize(results: Sequence[GoldenResult]) -> dict[str, Any]:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    follow_ups = [r for r in results if r.follow_up]
    seconds = [r.seconds for r in results]
    out: dict[str, Any] = {
        "questions": len(results),
        "answerable": len(answerable),
        "answerable_correct": sum(r.correct for r in answerable),
        "cited_correct": sum(bool(r.correct and r.cited) for r in answerable),
        "unanswerable": len(unanswerable),
        "refused_correct": sum(r.correct for r in unanswerable),
        "follow_ups": len(follow_ups),
        "follow_ups_correct": sum(r.correct for r in follow_ups),
        "false_refusals": sum(r.refused for r in answerable),
    }
    out["answer_accuracy"] = _rate(out["answerable_correct"], out["answerable"])
    out["cited_accuracy"] = _rate(out["cited_correct"], out["answerable"])
    out["refusal_accuracy"] = _rate(out["refused_correct"], out["unanswerable"])
    out["follow_up_accuracy"] = _rate(out["follow_ups_correct"], out["follow_ups"])
    p50, p95 = percentile(seconds, 50), percentile(seconds, 95)
    out["p50_seconds"] = None if p50 is None else round(p50, 3)
    out["p95_seconds"] = None if p95 is None else round(p95, 3)
    return out


def run_golden(
    items: Sequence[GoldenItem],
    ask: AskFn,
    *,
    on_result: Callable[[GoldenResult], None] | None = None,
) -> GoldenReport:
    """Ask every golden question in order and score it.

    ``ask(question, history)`` gets, for a follow-up, the earlier turns of its conversation as chat messages
    (``[{"role": "user", "content": q0}, {"role": "assistant", "content": answer0.text}, ...]``, the pipeline's own
    answers, not the gold ones); rows without a conversation get ``[]``. Seconds per question are
    ``answer.seconds["total"]`` when the answer has it, else the wall time around ``ask``.
    """
    histories: dict[str, list[dict[str, str]]] = {}
    results: list[GoldenResult] = []
    for item in items:
        if item.conversation is None:
            history: list[dict[str, str]] = []
        else:
            if item.turn == 0:
                histories[item.conversation] = []
            history = histories.setdefault(item.conversation, [])
        t = time.perf_counter()
        answer = ask(item.question, list(history))
        wall = time.perf_counter() - t
        result = score_answer(item, answer, wall_seconds=wall)
        results.append(result)
        if item.conversation is not None:
            history.append({"role": "user", "content": item.question})
            history.append({"role": "assistant", "content": answer.text})
        if on_result is not None:
            on_result(result)
    return GoldenReport(results=results, summary=summarize(results))


# --------------------------------------------------------------------------- output

def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_result(r: GoldenResult) -> str:
    verdict = "ok  " if r.correct else "FAIL"
    kind = "ans" if r.answerable else "n/a"
    cited = "-" if r.cited is None else ("cited" if r.cited else "uncited")
    state = "refused" if r.refused else "answered"
    conv = f"{r.conversation}/{r.turn}" if r.conversation else ""
    return (f"{verdict} {r.id:<6} {kind} {state:<8} {cited:<7} {r.seconds:6.2f}s {conv:<5} "
            f"{_short(r.question, 60)!s:<60} -> {_short(r.text, 90)}")


def format_golden(report: GoldenReport) -> str:
    s = report.summary or summarize(report.results)
    lines = [format_result(r) for r in report.results]

    def frac(a: str, b: str) -> str:
        num, den = s[a], s[b]
        return f"{num}/{den}" + (f" ({100 * num / den:.0f}%)" if den else "")

    def secs(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f} s"

    lines += [
        "",
        f"answerable correct:      {frac('answerable_correct', 'answerable')}",
        f"correct and cited:       {frac('cited_correct', 'answerable')}",
        f"unanswerable refused:    {frac('refused_correct', 'unanswerable')}",
        f"follow-ups correct:      {frac('follow_ups_correct', 'follow_ups')}",
        f"false refusals:          {s['false_refusals']}/{s['answerable']}",
        f"seconds per question:    p50 {secs(s['p50_seconds'])}, p95 {secs(s['p95_seconds'])}",
    ]
    return "\n".join(lines)


def report_json(report: GoldenReport) -> dict[str, Any]:
    """The report as plain data: the summary plus one dict per result."""
    return {"summary": report.summary, "results": [asdict(r) for r in report.results]}
