"""One test per golden question: see eval/conftest.py for how to point it at other documents and questions."""

from __future__ import annotations


def test_golden_question(golden_id: str, suite) -> None:
    r = suite.record(golden_id)
    shown = (f"question {r.question!r} -> {r.answer!r} (citations: {[c['quote'][:60] for c in r.citations]}; "
             f"lost at: {r.stage})")
    if r.answerable:
        assert not r.refused, f"refused ({r.refusal_reason}): {shown}"
        assert r.correct, f"no gold answer in the answer: {shown}"
        assert r.cited, f"no citation holds the evidence: {shown}"
        assert r.grounded == 1.0, f"unsupported sentence (grounded {r.grounded}): {shown}"
    else:
        assert r.refused, f"answered an unanswerable question: {shown}"
