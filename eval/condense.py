"""Follow-up condensing on CANARD-format rows: token F1 / ROUGE-L against human rewrites, rewrite rate, latency.

A CANARD-format file is JSONL, one row per question: ``id``, ``history`` (``[{role: user|assistant, text}]`` in
order; empty for a dialogue's first question), ``question`` (as asked), ``rewrite`` (the human self-contained
rewrite), and optionally ``title`` and ``section`` (the Wikipedia article the dialogue is about). Each sampled row
goes to ``Pipeline.condense(question, history)`` — the exact step ``Pipeline.ask`` runs before retrieval — and the
result is scored against the human rewrite. The unchanged question is scored the same way as the *identity*
baseline, so a condenser is only useful where it beats that.

With a retriever, each row also records whether the top-k chunk ids for the condensed question differ from those of
the question as asked (``retrieval_changed``): how often condensing changes what is retrieved.

Usage::

    rag eval condense --file ../shared/data/canard/dev.jsonl --limit 100 --seed 0 --mode local --json

    from eval.condense import evaluate_condense, load_canard, sample_rows
    rows = sample_rows(load_canard(path), 100, seed=0)
    report = evaluate_condense(rows, Pipeline(Settings(), mode="local"))
    print(report.format_report())
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.data import DataFileError, iter_jsonl
from eval.metrics import percentile, token_f1, tokens
from eval.qa import mean, round_seconds, share
from rag.pipeline import is_follow_up

if TYPE_CHECKING:
    from index.ingest import ProgressFactory

ROLES = ("user", "assistant")


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True)
class CanardRow:
    """One CANARD question: the dialogue so far, the question as asked and the human standalone rewrite."""

    id: str
    history: tuple[Turn, ...]
    question: str
    rewrite: str
    title: str = ""
    section: str = ""

    @property
    def first_turn(self) -> bool:
        """True for a dialogue's first question (no history: nothing to resolve against)."""
        return not self.history

    def messages(self) -> list[dict[str, str]]:
        """The history as chat messages, as ``Pipeline.condense`` takes them (``content``, not ``text``)."""
        return [{"role": t.role, "content": t.text} for t in self.history]


class CanardFormatError(DataFileError):
    """A malformed CANARD-format file; the message starts with ``file:line:``."""


def _parse_row(obj: Any) -> CanardRow:
    if not isinstance(obj, dict):
        raise CanardFormatError(f"expected a JSON object, got {type(obj).__name__}")
    for key in ("id", "question", "rewrite"):
        if key not in obj:
            raise CanardFormatError(f"missing field {key!r}")
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise CanardFormatError(f"field {key!r} must be a non-empty string, got {obj[key]!r:.80}")
    for key in ("title", "section"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise CanardFormatError(f"field {key!r} must be a string, got {type(obj[key]).__name__}")
    if "history" not in obj:
        raise CanardFormatError("missing field 'history'")
    history = obj["history"]
    if not isinstance(history, list):
        raise CanardFormatError(f"field 'history' must be a list, got {type(history).__name__}")
    turns = []
    for i, turn in enumerate(history):
        if not isinstance(turn, dict):
            raise CanardFormatError(f"history[{i}] must be an object with role and text, got {turn!r:.80}")
        if turn.get("role") not in ROLES:
            raise CanardFormatError(f"history[{i}].role must be 'user' or 'assistant', got {turn.get('role')!r:.40}")
        if not isinstance(turn.get("text"), str):
            raise CanardFormatError(f"history[{i}].text must be a string, got {turn.get('text')!r:.40}")
        turns.append(Turn(turn["role"], turn["text"]))
    return CanardRow(
        id=obj["id"], history=tuple(turns), question=obj["question"], rewrite=obj["rewrite"],
        title=obj.get("title") or "", section=obj.get("section") or "",
    )


def load_canard(path: str | Path) -> list[CanardRow]:
    """The rows of a CANARD-format JSONL file, in file order (blank lines skipped).

    Raises:
        FileNotFoundError: the file does not exist.
        CanardFormatError (a ValueError): a line is not JSON, lacks a field, has a field of the wrong type or an
            unknown role, or repeats an id; the message starts with ``file:line:``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected a CANARD-format .jsonl)")
    rows: list[CanardRow] = []
    seen: dict[str, int] = {}
    for where, raw in iter_jsonl(path, error=CanardFormatError):
        try:
            row = _parse_row(raw)
        except CanardFormatError as exc:
            raise CanardFormatError(f"{where}: {exc}") from exc
        lineno = int(where.rsplit(":", 1)[1])
        if row.id in seen:
            raise CanardFormatError(f"{where}: id {row.id!r} repeats line {seen[row.id]}")
        seen[row.id] = lineno
        rows.append(row)
    return rows


def sample_rows(
    rows: Sequence[CanardRow], limit: int | None, seed: int = 0, *, skip_first_turns: bool = False
) -> list[CanardRow]:
    """A deterministic sample of ``limit`` rows, returned in their original order.

    The draw is ``random.Random(seed).sample`` over the ids in sorted order, so it depends on the ids and the seed,
    not on the file order. First-turn rows (empty history) are kept unless ``skip_first_turns``: they measure
    whether the condenser leaves questions alone when there is nothing to resolve. ``limit=None`` (or a limit at
    least the number of rows) gives every (kept) row in file order.

    Raises:
        ValueError: ``limit`` is not positive.
    """
    if limit is not None and limit <= 0:
        raise CanardFormatError(f"limit must be > 0, got {limit}")
    pool = [r for r in rows if not (skip_first_turns and r.first_turn)]
    if limit is None or limit >= len(pool):
        return pool
    chosen = set(random.Random(seed).sample(sorted(r.id for r in pool), limit))
    return [r for r in pool if r.id in chosen]


# --------------------------------------------------------------------------- metrics


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F-measure (beta = 1) on the same tokens as :func:`token_f1`: LCS/len(pred) and LCS/len(ref)
    combined harmonically. Both empty: 1.0; one empty: 0.0."""
    p, r = tokens(pred), tokens(ref)
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- the run


def _group(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of one group of records (None where the group has no data)."""
    needs = [r for r in records if r["needs_rewrite"]]
    seconds = [r["seconds"] for r in records]
    triggered = [r["seconds"] for r in records if r["triggered"]]
    with_retrieval = [r["retrieval_changed"] for r in records if r["retrieval_changed"] is not None]
    return {
        "rows": len(records),
        "f1": mean([r["f1"] for r in records]),
        "rouge_l": mean([r["rouge_l"] for r in records]),
        "identity_f1": mean([r["identity_f1"] for r in records]),
        "identity_rouge_l": mean([r["identity_rouge_l"] for r in records]),
        "exact": share([r["exact"] for r in records]),
        "identity_exact": share([not r["needs_rewrite"] for r in records]),
        "rewrite_rate": share([r["changed"] for r in records]),
        "triggered_rate": share([r["triggered"] for r in records]),
        "needs_rewrite_rate": share([r["needs_rewrite"] for r in records]),
        "missed_rate": share([not r["changed"] for r in needs]),
        "retrieval_changed_rate": share(with_retrieval),
        "p50_s": round_seconds(percentile(seconds, 50)),
        "p95_s": round_seconds(percentile(seconds, 95)),
        "triggered_p50_s": round_seconds(percentile(triggered, 50)),
        "triggered_p95_s": round_seconds(percentile(triggered, 95)),
    }


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Overall metrics at top level, and the same for ``first_turn`` and ``follow_up`` rows.

    - ``f1``, ``rouge_l``: mean token F1 / ROUGE-L of the condensed question against the human rewrite;
      ``identity_f1``, ``identity_rouge_l``: the same for the question as asked (the baseline to beat).
    - ``exact`` / ``identity_exact``: share equal to the rewrite after normalisation.
    - ``rewrite_rate``: share of rows the condenser changed; ``triggered_rate``: share it treated as follow-ups
      (history with a user turn and :func:`rag.pipeline.is_follow_up`; an LLM may still return the question).
    - ``needs_rewrite_rate``: share whose human rewrite differs from the question (after normalisation);
      ``missed_rate``: of those, the share the condenser left unchanged.
    - ``retrieval_changed_rate``: share whose top-k chunk ids changed (None without a retriever).
    - ``p50_s``, ``p95_s``: percentiles (eval.metrics.percentile) of seconds per row (all rows; untouched rows cost ~0);
      ``triggered_p50_s``, ``triggered_p95_s``: over the triggered rows only (the LLM calls).
    """
    out = _group(records)
    out["first_turn"] = _group([r for r in records if r["first_turn"]])
    out["follow_up"] = _group([r for r in records if not r["first_turn"]])
    return out


@dataclass
class CondenseReport:
    """One run: a record (dict) per row, in row order, and what was run."""

    records: list[dict[str, Any]]
    mode: str | None = None
    model: str | None = None
    k: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """See :func:`summarize`."""
        return summarize(self.records)

    def to_json(self, *, records: bool = False) -> str:
        """One line of JSON: the summary, then what was run (and the records if asked)."""
        out: dict[str, Any] = self.summary()
        out.update(mode=self.mode, model=self.model, k=self.k, **self.meta)
        if records:
            out["records"] = self.records
        return json.dumps(out, ensure_ascii=False)

    def format_report(self) -> str:
        """A terminal table: condenser vs identity, overall and per row kind, then rates and latency."""
        s = self.summary()
        groups = [("overall", s), ("first turn", s["first_turn"]), ("follow-up", s["follow_up"])]
        head = f"mode: {self.mode or '-'}   model: {self.model or '-'}   rows: {s['rows']} " \
               f"({s['first_turn']['rows']} first-turn, {s['follow_up']['rows']} follow-up)"
        if self.meta:
            head += "   " + "   ".join(f"{k}: {v}" for k, v in self.meta.items() if k != "file")
        lines = [head, "", f"{'metric':<24}" + "".join(f"{name:>13}" for name, _ in groups),
                 "-" * 24 + " ------------" * len(groups)]
        rows: list[tuple[str, str, Callable[[Any], str]]] = [
            ("F1 condensed", "f1", _pct), ("F1 identity", "identity_f1", _pct),
            ("ROUGE-L condensed", "rouge_l", _pct), ("ROUGE-L identity", "identity_rouge_l", _pct),
            ("exact condensed", "exact", _pct), ("exact identity", "identity_exact", _pct),
            ("rewrite rate", "rewrite_rate", _pct), ("triggered rate", "triggered_rate", _pct),
            ("needs rewrite (human)", "needs_rewrite_rate", _pct), ("missed (of needed)", "missed_rate", _pct),
            ("retrieval changed", "retrieval_changed_rate", _pct),
            ("p50 per row", "p50_s", _sec), ("p95 per row", "p95_s", _sec),
            ("p50 triggered", "triggered_p50_s", _sec), ("p95 triggered", "triggered_p95_s", _sec),
        ]
        for label, key, fmt in rows:
            lines.append(f"{label:<24}" + "".join(f"{fmt(g[key]):>13}" for _, g in groups))
        return "\n".join(lines)


def _pct(v: Any) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _sec(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f} s"


def _triggered(row: CanardRow) -> bool:
    """Whether ``Pipeline.condense`` treats the row as a follow-up (mirrors its first test)."""
    return any(t.role == "user" and t.text.strip() for t in row.history) and is_follow_up(row.question)


def evaluate_condense(
    rows: Sequence[CanardRow],
    pipeline: Any,
    *,
    retriever: Any = None,
    k: int = 5,
    progress: ProgressFactory | None = None,
) -> CondenseReport:
    """Condense each row's question with ``pipeline.condense(question, history)`` and score it.

    Args:
        rows: the rows (see :func:`load_canard`, :func:`sample_rows`).
        pipeline: a :class:`rag.pipeline.Pipeline` (or anything with ``condense(question, messages)``). Its LLM, if
            any, is loaded before the first row so loading is not counted as latency.
        retriever: optional; ``retriever.search(query, k=k)`` returning hits with ``.chunk.id``. When given, each
            row records whether the top-k ids of the condensed question differ from those of the question as asked.
        k: how many hits to compare.
        progress: progress factory (``progress(total)`` returning an object with ``update(n)`` and ``close()``).

    Returns:
        The report; each record holds ``id``, ``title``, ``first_turn``, ``question``, ``reference``,
        ``condensed``, ``changed``, ``triggered``, ``needs_rewrite``, ``f1``, ``rouge_l``, ``identity_f1``,
        ``identity_rouge_l``, ``exact``, ``seconds`` and ``retrieval_changed`` (None without a retriever).
    """
    if k <= 0:
        raise CanardFormatError(f"k must be > 0, got {k}")
    if getattr(pipeline, "mode", None) != "extractive":
        llm = getattr(pipeline, "llm", None)
        if llm is not None and callable(getattr(llm, "warm_up", None)):
            llm.warm_up()
    cache: dict[str, tuple[str, ...]] = {}

    def top_ids(query: str) -> tuple[str, ...]:
        if query not in cache:
            cache[query] = tuple(hit.chunk.id for hit in retriever.search(query, k=k))
        return cache[query]

    bar = progress(len(rows)) if progress is not None else None
    records: list[dict[str, Any]] = []
    for row in rows:
        t = time.perf_counter()
        condensed = pipeline.condense(row.question, row.messages())
        seconds = time.perf_counter() - t
        retrieval_changed = None
        if retriever is not None:
            retrieval_changed = top_ids(condensed) != top_ids(row.question)
        records.append({
            "id": row.id,
            "title": row.title,
            "first_turn": row.first_turn,
            "question": row.question,
            "reference": row.rewrite,
            "condensed": condensed,
            "changed": condensed.strip() != row.question.strip(),
            "triggered": _triggered(row),
            "needs_rewrite": tokens(row.rewrite) != tokens(row.question),
            "f1": round(token_f1(condensed, row.rewrite), 4),
            "rouge_l": round(rouge_l(condensed, row.rewrite), 4),
            "identity_f1": round(token_f1(row.question, row.rewrite), 4),
            "identity_rouge_l": round(rouge_l(row.question, row.rewrite), 4),
            "exact": tokens(condensed) == tokens(row.rewrite),
            "seconds": round(seconds, 4),
            "retrieval_changed": retrieval_changed,
        })
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    mode = getattr(pipeline, "mode", None)
    model = getattr(pipeline, "model_name", None) if mode is not None else None
    return CondenseReport(records=records, mode=mode, model=model, k=k if retriever is not None else None)
