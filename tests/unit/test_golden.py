"""The golden question set and its scorer (no models: hand-built answers and a stub pipeline)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from eval.golden import (
    SEEDS_GOLDEN,
    GoldenError,
    GoldenItem,
    contains,
    evidence_in,
    fold,
    format_golden,
    load_golden,
    normalize,
    run_golden,
    score_answer,
)
from rag.types import Answer, Citation

REPO = Path(__file__).resolve().parents[2]
SEED_TEXT = (REPO / "seeds" / "china_iran_ties.txt").read_text(encoding="utf-8")
REALDOCS = REPO.parent / "shared" / "data" / "realdocs"


def _answer(text: str, quotes: list[str] = (), *, refused: bool = False, seconds: dict | None = None,
            question: str = "q") -> Answer:
    cites = []
    for n, quote in enumerate(quotes, start=1):
        start = SEED_TEXT.find(quote)
        cites.append(Citation(n=n, chunk_id=f"d:{n}", source="seeds/china_iran_ties.txt", title="China",
                              quote=quote, start=max(start, 0), end=max(start, 0) + len(quote), score=0.9))
    return Answer(question=question, standalone_question=question, text=text, citations=cites, refused=refused,
                  refusal_reason="no_evidence" if refused else None, mode="extractive", seconds=seconds or {})


def _item(**kw) -> GoldenItem:
    base = {"id": "x1", "question": "In what year was the 25-year agreement signed?", "answerable": True,
            "answers": ("2021",), "evidence": "cooperation agreement signed in 2021"}
    base.update(kw)
    return GoldenItem(**base)


# --------------------------------------------------------------------------- the shipped set

def test_shipped_set_validates_against_the_seed_text():
    items = load_golden(SEEDS_GOLDEN, SEED_TEXT)
    assert len(items) >= 15
    answerable = [i for i in items if i.answerable]
    unanswerable = [i for i in items if not i.answerable]
    assert len(answerable) >= 15 and len(unanswerable) >= 5
    for i in answerable:
        assert i.evidence in SEED_TEXT and 10 <= len(i.evidence) <= 200
        assert i.answers
        # the evidence states one of the gold answers, so a citation of it counts as cited
        assert any(contains(i.evidence, a) for a in i.answers), i.id
    for i in unanswerable:
        assert i.answers == () and i.evidence is None
    convs = Counter(i.conversation for i in items if i.conversation)
    assert sum(1 for n in convs.values() if n >= 2) >= 2
    follow_ups = [i for i in items if i.follow_up]
    assert any(not i.answerable for i in follow_ups)
    assert len({i.id for i in items}) == len(items)


def test_shipped_set_spreads_over_the_document():
    items = load_golden(SEEDS_GOLDEN, SEED_TEXT)
    offsets = sorted(SEED_TEXT.find(i.evidence) for i in items if i.answerable)
    assert offsets[0] < len(SEED_TEXT) * 0.25 and offsets[-1] > len(SEED_TEXT) * 0.75


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "g.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p


def _row(id_: str, **kw) -> dict:
    row = {"id": id_, "question": "When was it signed?", "answerable": True, "answers": ["2021"],
           "evidence": "cooperation agreement signed in 2021", "conversation": None, "turn": 0}
    row.update(kw)
    return row


def test_load_rejects_evidence_missing_from_the_document(tmp_path):
    p = _write(tmp_path, [_row("a", evidence="signed in the year 2022 by both")])
    assert load_golden(p)[0].evidence  # without a document there is nothing to check it against
    with pytest.raises(GoldenError, match="substring"):
        load_golden(p, SEED_TEXT)


@pytest.mark.parametrize(
    "rows, match",
    [
        ([_row("a"), _row("a")], "duplicate"),
        ([_row("a", conversation="c", turn=0), _row("b", conversation="c", turn=2)], "turn"),
        ([_row("a", conversation="c", turn=1)], "turn"),
        ([_row("a", turn=1)], "turn 0"),
        ([_row("a", answerable=False)], "unanswerable"),
        ([_row("a", answers=[])], "at least one answer"),
        ([_row("a", evidence="short")], "evidence"),
        ([_row("a", extra=1)], "unknown"),
    ],
)
def test_load_rejects_bad_rows(tmp_path, rows, match):
    with pytest.raises(GoldenError, match=match):
        load_golden(_write(tmp_path, rows), SEED_TEXT)


# --------------------------------------------------------------------------- realdocs-style rows

# as in ../shared/data/realdocs/questions.jsonl: page, why, evidence up to 300 characters with PDF hyphenation
GCRYPT_TEXT = ("Libgcrypt Reference Manual 15\nThe default is GCRY_RNG_TYPE_STANDARD unless FIPS mode as been\n"
               "enabled; in which case GCRY_RNG_TYPE_FIPS is used. " + "Filler text about random pools. " * 12)
LONG_EVIDENCE = ("The default is GCRY_RNG_TYPE_STANDARD unless FIPS mode as been en- abled; in which case "
                 "GCRY_RNG_TYPE_FIPS is used. " + "Filler text about random pools. " * 6).strip()
REAL_ROWS = [
    {"id": "g-gc05", "question": "Which RNG type is the default?", "answerable": True,
     "answers": ["GCRY_RNG_TYPE_STANDARD"], "expected_sources": ["gcrypt.pdf"], "evidence": LONG_EVIDENCE,
     "page": 22},
    {"id": "g-gpl01", "question": "How long to cure a violation?", "answerable": True, "answers": ["30 days"],
     "expected_sources": ["GPL-3.txt"], "evidence": "you cure the violation prior to 30 days after your receipt",
     "page": None},
    {"id": "u01", "question": "Which release added Kyber?", "answerable": False, "answers": [],
     "expected_sources": ["gcrypt.pdf"], "evidence": None, "page": None,
     "why": "The manual documents no Kyber algorithm."},
]
GPL_TEXT = "... provided you cure the violation prior to\n30 days after your receipt of the notice."


def test_realdocs_style_rows_load(tmp_path):
    assert len(LONG_EVIDENCE) > 200
    items = load_golden(_write(tmp_path, REAL_ROWS))
    assert [i.page for i in items] == [22, None, None]
    assert items[2].why == "The manual documents no Kyber algorithm." and items[0].why is None
    assert items[0].evidence == LONG_EVIDENCE and items[0].expected_sources == ("gcrypt.pdf",)
    # a multi-document corpus: evidence is looked up in its expected source, hyphenation and line breaks aside
    docs = {"/corpus/gcrypt.pdf": GCRYPT_TEXT, "/corpus/GPL-3.txt": GPL_TEXT}
    assert len(load_golden(_write(tmp_path, REAL_ROWS), documents=docs)) == 3
    with pytest.raises(GoldenError, match="none of the documents"):
        load_golden(_write(tmp_path, REAL_ROWS), documents={"gcrypt.pdf": GPL_TEXT, "GPL-3.txt": GCRYPT_TEXT})
    with pytest.raises(GoldenError, match="not among the documents"):
        load_golden(_write(tmp_path, REAL_ROWS), documents={"gcrypt.pdf": GCRYPT_TEXT})


@pytest.mark.parametrize(
    "row, match",
    [
        ({"page": "22"}, "page"),
        ({"page": 0}, "page"),
        ({"page": True}, "page"),
        ({"why": ""}, "why"),
        ({"why": 3}, "why"),
        ({"evidence": "x" * 1001}, "evidence"),
    ],
)
def test_realdocs_style_rows_reject_bad_fields(tmp_path, row, match):
    with pytest.raises(GoldenError, match=match):
        load_golden(_write(tmp_path, [{**REAL_ROWS[0], **row}]))


def test_evidence_longer_than_200_is_accepted_up_to_1000(tmp_path):
    evidence = ("cooperation agreement signed in 2021 " * 27)[:1000]
    assert load_golden(_write(tmp_path, [_row("a", evidence=evidence)]))[0].evidence == evidence


def test_shipped_realdocs_questions_load():
    path = REALDOCS / "questions.jsonl"
    if not path.is_file():
        pytest.skip(f"no {path}")
    items = load_golden(path)
    assert len(items) == 60 and sum(i.answerable for i in items) == 45
    assert all(i.expected_sources for i in items)
    assert all(i.why for i in items if not i.answerable)
    assert any(i.page for i in items) and all(i.page is None for i in items if not i.answerable)
    for i in items:
        if i.answerable:  # each evidence states one of its gold answers, so citing it counts as cited
            assert any(contains(i.evidence, a) for a in i.answers), i.id


def test_fold_undoes_line_end_hyphenation():
    assert fold("FIPS mode as been en- abled;") == fold("FIPS mode as been\nenabled") == "fips mode as been enabled"
    assert fold("a 25-year pact") == "25 year pact"  # a real hyphen stays a word break
    assert fold("Diffie- Hellman") == "diffie hellman"  # before a capital, a real hyphen at a line end
    assert contains("unless FIPS mode has been enabled", "been en- abled")
    assert evidence_in("mode as been\nenabled; in which", "as been en- abled; in")
    assert evidence_in("uses DiffieHellman keys", "uses Diffie- Hellman keys")
    assert not evidence_in("mode has been disabled", "been en- abled")


def test_cited_when_the_quote_holds_hyphenated_evidence():
    """The evidence keeps the PDF's "en- abled"; the quote comes from dehyphenated product text."""
    item = _item(answers=("GCRY_RNG_TYPE_STANDARD",), evidence="FIPS mode as been en- abled; in which case")
    quote = "Unless FIPS mode as been enabled; in which case GCRY_RNG_TYPE_FIPS is used."
    r = score_answer(item, _answer("GCRY_RNG_TYPE_STANDARD [1].", [quote]))
    assert r.correct and r.cited
    # the other way round, a quote that the evidence holds is not enough
    assert not score_answer(item, _answer("GCRY_RNG_TYPE_STANDARD [1].", ["mode as been"])).cited


# --------------------------------------------------------------------------- normalisation and scoring

def test_normalize_is_squad_style():
    assert normalize("The  Natanz atomic-facility!") == "natanz atomic facility"
    assert normalize("1,000 drones") == normalize("1000 drones") == "1000 drones"
    assert normalize("Iran’s") == normalize("Iran's") == "irans"
    assert contains("over 100 drones", "100") and not contains("over 1000 drones", "100")
    assert contains("a 25-year pact", "25 year")


def test_correct_and_cited():
    quote = ("The foundation of China’s support for Iran rests on their comprehensive 25-year cooperation "
             "agreement signed in 2021.")
    assert quote in SEED_TEXT
    r = score_answer(_item(), _answer("It was signed in 2021 [1].", [quote]))
    assert r.correct and r.cited and not r.refused
    assert r.text == "It was signed in 2021 [1]."


def test_correct_but_citation_lacks_evidence():
    r = score_answer(_item(), _answer("Signed in 2021 [1].", ["Iran quickly retaliated by launching over 100 drones"]))
    assert r.correct and r.cited is False


def test_cited_when_the_quote_holds_the_gold_answer_only():
    r = score_answer(_item(), _answer("2021 [1]", ["covering trade, energy, and a pact signed in 2021"]))
    assert r.correct and r.cited


def test_citation_marker_is_not_an_answer():
    item = _item(answers=("1",), evidence="cooperation agreement signed in 2021")
    assert not score_answer(item, _answer("The agreement covers trade [1].")).correct


def test_wrong_answer():
    r = score_answer(_item(), _answer("It was signed in 2016 [1].", ["cooperation agreement signed in 2021"]))
    assert not r.correct and r.cited  # the citation was right, the text was not


def test_refused_answerable():
    r = score_answer(_item(), _answer("The documents do not say (2021 not found).", refused=True))
    assert r.refused and not r.correct and r.cited is False


def test_refused_unanswerable():
    item = _item(answerable=False, answers=(), evidence=None, question="What is Iran's population?")
    r = score_answer(item, _answer("I can't find that in the documents.", refused=True))
    assert r.correct and r.refused and r.cited is None


def test_answered_unanswerable():
    item = _item(answerable=False, answers=(), evidence=None, question="What is Iran's population?")
    r = score_answer(item, _answer("About 90 million [1].", ["Red pushpin marking Iran on a map"]))
    assert not r.correct and not r.refused and r.cited is None


def test_seconds_from_answer_total_else_wall():
    assert score_answer(_item(), _answer("2021", seconds={"total": 1.5, "llm": 1.0}), wall_seconds=9).seconds == 1.5
    assert score_answer(_item(), _answer("2021", seconds={"llm": 1.0}), wall_seconds=0.25).seconds == 0.25


# --------------------------------------------------------------------------- running

def test_run_golden_passes_the_pipelines_own_history():
    items = [
        GoldenItem("s1", "Standalone?", True, ("2021",), "cooperation agreement signed in 2021"),
        GoldenItem("c1-0", "When was it signed?", True, ("2021",), "cooperation agreement signed in 2021", "c1", 0),
        GoldenItem("s2", "Other standalone?", False, (), None),
        GoldenItem("c1-1", "How long does it run?", True, ("25 years",), "a 25-year cooperation agreement", "c1", 1),
        GoldenItem("c2-0", "Which facility?", True, ("Natanz",), "targeted the Natanz atomic facility", "c2", 0),
        GoldenItem("c1-2", "Who signed it?", False, (), None, "c1", 2),
        GoldenItem("c2-1", "Where is it?", False, (), None, "c2", 1),
    ]
    replies = {
        "Standalone?": _answer("2021 [1]", ["signed in 2021"]),
        "When was it signed?": _answer("In 2021 [1].", ["cooperation agreement signed in 2021"]),
        "Other standalone?": _answer("No idea.", refused=True),
        "How long does it run?": _answer("Ten years [1].", ["a 25-year cooperation agreement"]),
        "Which facility?": _answer("Natanz [1].", ["targeted the Natanz atomic facility"], seconds={"total": 2.0}),
        "Who signed it?": _answer("Not in the documents.", refused=True),
        "Where is it?": _answer("In Isfahan.", seconds={"total": 4.0}),
    }
    seen: list[tuple[str, list[dict]]] = []

    def ask(question, history):
        seen.append((question, history))
        return replies[question].model_copy(update={"question": question})

    report = run_golden(items, ask)
    got = dict(seen)
    assert got["Standalone?"] == [] and got["Other standalone?"] == []
    assert got["When was it signed?"] == [] and got["Which facility?"] == []
    assert got["How long does it run?"] == [
        {"role": "user", "content": "When was it signed?"},
        {"role": "assistant", "content": "In 2021 [1]."},
    ]
    # the pipeline's real (wrong) answer is passed on, not the gold one
    assert got["Who signed it?"] == got["How long does it run?"] + [
        {"role": "user", "content": "How long does it run?"},
        {"role": "assistant", "content": "Ten years [1]."},
    ]
    assert got["Where is it?"] == [
        {"role": "user", "content": "Which facility?"},
        {"role": "assistant", "content": "Natanz [1]."},
    ]

    s = report.summary
    assert [r.id for r in report.results] == [i.id for i in items]
    assert (s["answerable_correct"], s["answerable"]) == (3, 4)
    assert s["cited_correct"] == 3
    assert (s["refused_correct"], s["unanswerable"]) == (2, 3)
    assert (s["follow_ups_correct"], s["follow_ups"]) == (1, 3)
    assert s["p50_seconds"] is not None and s["p95_seconds"] >= s["p50_seconds"]
    assert s["p95_seconds"] <= 4.0 and s["p95_seconds"] > 2.0
    text = format_golden(report)
    assert "answerable correct:      3/4" in text and "follow-ups correct:      1/3" in text
    assert "c1-1" in text and "FAIL" in text
    json.dumps(s)


def test_run_golden_on_the_shipped_set_with_a_perfect_stub():
    items = load_golden(SEEDS_GOLDEN, SEED_TEXT)
    by_question = {}
    for i in items:
        by_question.setdefault(i.question, i)

    def ask(question, history):
        i = by_question[question]
        if not i.answerable:
            return _answer("The documents do not say.", refused=True, question=question)
        return _answer(f"{i.answers[0]} [1].", [i.evidence], question=question)

    s = run_golden(items, ask).summary
    assert s["answerable_correct"] == s["answerable"] == s["cited_correct"]
    assert s["refused_correct"] == s["unanswerable"]
    assert s["follow_ups_correct"] == s["follow_ups"] >= 2
