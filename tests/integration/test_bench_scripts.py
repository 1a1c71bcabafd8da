"""The benchmark scripts' own logic, without an LLM: the LlamaIndex-baseline scorer and arguments, and the large-PDF
bench on a small generated PDF (--pdf, so nothing is downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.large_pdf import main as large_pdf_main
from bench.large_pdf import measure
from bench.llamaindex_baseline import (
    REALDOCS,
    Question,
    Score,
    SystemReport,
    cited_numbers,
    llamaindex_refused,
    parse_args,
    score,
    select,
)

GPL = Question(id="g1", question="How long to cure?", answerable=True, answers=("30 days",),
               evidence="you cure the violation prior to 30 days after your receipt of the notice.")
NONE = Question(id="u1", question="Which court?", answerable=False)


# --------------------------------------------------------------------------- scorer


def test_right_and_cited_when_the_cited_text_holds_the_gold_answer() -> None:
    sc = score(GPL, "Within 30  Days [1].", ["... prior to 30 days after ..."], refused=False)
    assert (sc.correct, sc.cited, sc.right_and_cited, sc.wrong_shown) == (True, True, True, False)


def test_cited_by_evidence_with_other_whitespace_and_case() -> None:
    quote = "If You CURE the violation prior to\n30  days after your receipt of the notice."
    sc = score(GPL, "thirty days", [quote], refused=False)
    assert (sc.correct, sc.cited, sc.right_and_cited) == (False, True, False)


def test_right_but_uncited_when_no_cited_text_holds_it() -> None:
    sc = score(GPL, "30 days [2]", ["the licence terminates automatically"], refused=False)
    assert (sc.correct, sc.cited, sc.right_and_cited, sc.wrong_shown) == (True, False, False, False)


def test_gold_answer_matches_on_word_boundaries_only() -> None:
    assert not score(GPL, "130 days", [], refused=False).correct


def test_wrong_answer_with_a_citation_is_shown_wrong() -> None:
    sc = score(GPL, "60 days [1]", ["60 days"], refused=False)
    assert (sc.correct, sc.wrong_shown, sc.citations) == (False, True, 1)
    assert not score(GPL, "60 days", [], refused=False).wrong_shown  # no citation: wrong, but not shown as sourced


def test_a_refusal_of_an_answerable_question_is_not_a_wrong_answer_shown() -> None:
    sc = score(GPL, "I cannot answer that.", ["..."], refused=True)
    assert (sc.correct, sc.refused, sc.wrong_shown) == (False, True, False)


def test_unanswerable_refused_or_answered_with_citations() -> None:
    ok = score(NONE, "The documents do not say.", [], refused=True)
    assert (ok.correct, ok.refused, ok.wrong_shown) == (True, True, False)
    bad = score(NONE, "The courts of Delaware [1].", ["some clause"], refused=False)
    assert (bad.correct, bad.refused, bad.wrong_shown) == (False, False, True)


@pytest.mark.parametrize("text", [
    "I cannot answer this question based on the provided sources.",
    "I can't answer that from the sources.",
    "I am not able to answer this.",
    "There is no information about the court in the sources.",
    "The jurisdiction is not mentioned in the provided sources.",
    "The sources do not specify a version.",
    "Source 2 does not contain the answer.",
    "The licence doesn't say which court.",
    "None of the sources are helpful for this query.",
])
def test_llamaindex_refusal_rule_matches_plain_refusals(text: str) -> None:
    assert llamaindex_refused(text)


@pytest.mark.parametrize("text", [
    "Within 30 days of the notice [1].",
    "The file /etc/gcrypt/hwf.deny lists the disabled features [2].",
    "Nothing in the licence prevents this; you may distribute it [3].",
])
def test_llamaindex_refusal_rule_leaves_answers_alone(text: str) -> None:
    assert not llamaindex_refused(text)


def test_cited_numbers_expands_lists_and_ranges_in_order() -> None:
    assert cited_numbers("a [2] b [1, 3] c [4-5] d [2]") == [2, 1, 3, 4, 5]
    assert cited_numbers("no markers, Source 1, [RFC 5246]") == []


def test_cited_numbers_reads_the_source_n_forms_the_small_model_writes() -> None:
    assert cited_numbers("Published in 2004. [Source 1] (Source 3) [Sources 2 and 4]") == [1, 3, 2, 4]
    sc = score(GPL, "It is 30 days [Source 2].", ["30 days"], refused=False)
    assert (sc.correct, sc.cited) == (True, True)


def test_summary_counts_per_system() -> None:
    rep = SystemReport("x", index_s=1.5, chunks=10, scores=[
        score(GPL, "30 days [1]", ["30 days"], refused=False, seconds=1.0),
        score(GPL, "60 days [1]", ["60 days"], refused=False, seconds=3.0),
        score(NONE, "No information.", [], refused=True, seconds=2.0),
        Score(id="u2", answerable=False, correct=False, cited=False, refused=False, citations=0, wrong_shown=False,
              seconds=float("nan"), error="RuntimeError: boom"),
    ])
    s = rep.summary()
    assert (s["right_and_cited"], s["answerable"], s["refused"], s["unanswerable"]) == (1, 2, 1, 2)
    assert (s["wrong_shown_with_citations"], s["errors"], s["p50_s"], s["index_s"]) == (1, 1, 2.0, 1.5)


# --------------------------------------------------------------------------- arguments and sampling


def test_parse_args_defaults_and_choices() -> None:
    args = parse_args([])
    assert (args.docs, args.questions) == (REALDOCS / "docs", REALDOCS / "questions.jsonl")
    assert (args.limit, args.only, args.json) == (0, "both", False)
    args = parse_args(["--docs", "d", "--questions", "q.jsonl", "--limit", "3", "--only", "ours", "--json"])
    assert (args.docs, args.questions, args.limit) == (Path("d"), Path("q.jsonl"), 3)
    assert (args.only, args.json) == ("ours", True)
    for bad in (["--only", "haystack"], ["--limit", "-1"], ["--limit", "x"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_select_keeps_the_ratio_and_file_order() -> None:
    qs = [Question(f"a{i}", "?", True, ("x",)) for i in range(45)] + [Question(f"u{i}", "?", False) for i in range(15)]
    assert select(qs, 0) == qs
    three = select(qs, 3)
    assert [q.id for q in three] == ["a0", "a22", "u0"]
    twelve = select(qs, 12)
    assert sum(not q.answerable for q in twelve) == 3 and len(twelve) == 12
    assert [qs.index(q) for q in twelve] == sorted(qs.index(q) for q in twelve)


# --------------------------------------------------------------------------- large PDF


def _pdf(path: Path, pages: int) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    words = ["handshake", "certificate", "session", "cipher", "record", "alert", "extension", "resumption"]
    c = canvas.Canvas(str(path), pagesize=A4)
    for p in range(pages):  # different sentences on every page: a loader may drop lines repeated on each page
        for line in range(3):
            a, b = words[(p + line) % len(words)], words[(3 * p + 2 * line + 1) % len(words)]
            c.drawString(50, 800 - 24 * line, f"The {a} step {p * 3 + line} checks the {b} before the {a} ends.")
        c.showPage()
    c.save()
    return path


def test_large_pdf_measures_a_small_pdf(tmp_path: Path, minilm, capsys: pytest.CaptureFixture[str]) -> None:
    pdf = _pdf(tmp_path / "small.pdf", pages=3)
    out = measure(pdf, embedder=minilm, max_pages=2, log=False)
    assert (out["pages"], out["pages_with_text"], out["indexed_pages"]) == (3, 3, 2)
    assert out["chunks"] >= 1 and out["index_chunks_per_s"] > 0 and out["bare_chunks_per_s"] > 0
    assert out["ratio_index_vs_bare"] == pytest.approx(out["bare_s"] / out["index_s"], rel=0.1)  # same chunk count


def test_large_pdf_reports_a_loader_failure_and_exits_non_zero(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n")
    assert large_pdf_main(["--pdf", str(bad), "--json"]) == 1
    captured = capsys.readouterr()
    assert "error: loader failed" in captured.err and "broken.pdf" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1]) == {"ok": False, "error": captured.err[7:].strip()}
    assert large_pdf_main(["--pdf", str(tmp_path / "missing.pdf")]) == 1
    assert "no such file" in capsys.readouterr().err


# --------------------------------------------------------------------------- bench/calibrate_accept.py

def _accept_row(set_: str, answerable: bool, span: str | None, answers: list[str], p_nf: float = 0.1,
                evidence: float = 0.9) -> dict:
    signals = {"p_not_found": p_nf}
    if span is not None:
        signals |= {"gate": 1.0, "llm_not_found": -2.0, "relevance": 3.0, "source_rank": 0.0, "support": 0.8,
                    "entity_miss": 0.0, "span_words": 2.0}
    return {"set": set_, "id": f"{set_}-{span}", "answerable": answerable, "answers": answers, "span": span,
            "refused": span is None, "text": span or "", "dropped": [], "evidence_score": evidence,
            "signals": signals}


def test_accept_labels_a_span_by_the_gold_answer_it_holds() -> None:
    from bench.calibrate_accept import _label

    rows = _label([_accept_row("s", True, "16384 bytes [2]", ["16384 bytes"]),
                   _accept_row("s", True, "16 [4]", ["8 to 576 bits"]),
                   _accept_row("s", False, "<nettle/sha.h> [2]", [])], 10, 0)
    assert [r["correct"] for r in rows] == [True, False, False]


def test_accept_outcome_counts_right_wrong_and_refused_per_set() -> None:
    from bench.calibrate_accept import _outcome, _utility

    rows = [_accept_row("a", True, "x", ["x"]), _accept_row("a", True, "y", ["x"]),
            _accept_row("a", False, "z", [], p_nf=0.9), _accept_row("b", False, "w", [])]
    for r, ok in zip(rows, [True, False, False, False], strict=True):
        r["correct"] = ok
    probs = [0.9, 0.8, 0.9, 0.2]
    out = _outcome(rows, probs, t_accept=0.5, t_nf=0.5)
    assert out["a"] == {"answerable": 2, "unanswerable": 1, "right_shown": 1, "wrong_shown": 1,
                        "unanswerable_refused": 1}  # the third is refused on its P(NOT FOUND)
    assert out["b"]["unanswerable_refused"] == 1 and out["b"]["wrong_shown"] == 0
    # per set (right - cost x wrong) / questions, averaged: a = (1 - 2) / 3, b = 0
    assert _utility(rows, probs, 0.5, 0.5, wrong_cost=2.0) == pytest.approx((-1 / 3 + 0.0) / 2)


def test_shipped_acceptance_model_has_provenance_and_cv_figures() -> None:
    import json

    from rag.answerability import ACCEPT_FEATURES, ANSWERABILITY_PATH

    data = json.loads(ANSWERABILITY_PATH.read_text())
    accept = data["accept"]
    assert set(accept["weights"]) == set(ACCEPT_FEATURES) and 0 < accept["threshold"] < 1
    assert "bench.calibrate_accept" in accept["_about"] and {"squad2", "realdocs", "seeds"} <= set(accept["cv"])
    assert 0 < data["thresholds"]["not_found"] <= 1
