"""eval.draft: drafted golden rows are valid golden JSONL, grounded in their documents, and deterministic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from eval.draft import (
    REVIEW,
    Span,
    check_question,
    draft_golden,
    evidence_window,
    skip_reason,
    template_question,
    write_jsonl,
)
from eval.golden import contains, load_golden
from index.load import load_file
from rag.testing import ScriptedChatModel

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    dst = tmp_path / "corpus"
    shutil.copytree(FIXTURES, dst)
    return dst


def _texts(corpus: Path) -> dict[str, list[str]]:
    """File name -> texts of its documents."""
    out: dict[str, list[str]] = {}
    for name in ("solar.txt", "library.md", "nested/harbor.html"):
        out[Path(name).name] = [d.text for d in load_file(corpus / name)]
    return out


def _check_rows(rows: list[dict], corpus: Path, path: Path) -> None:
    write_jsonl(rows, path)
    items = load_golden(path)  # the golden validator accepts the whole file
    assert [i.id for i in items] == [f"d{k:03d}" for k in range(1, len(rows) + 1)]
    texts = _texts(corpus)
    for row in rows:
        assert row["review"] == REVIEW
        assert row["question"].endswith("?")
        if row["answerable"]:
            (source,) = row["expected_sources"]
            ev = row["evidence"]
            assert 10 <= len(ev) <= 200
            assert any(ev in t for t in texts[source]), (source, ev)  # an exact substring of its document
            assert any(a in ev and contains(ev, a) for a in row["answers"])
            assert not any(contains(row["question"], a) for a in row["answers"]), row
        else:
            assert row["answers"] == [] and row["evidence"] is None


def test_extractive_draft_is_valid_golden(corpus: Path, settings, tmp_path: Path) -> None:
    rows = draft_golden([corpus], settings, n=10, seed=0)
    _check_rows(rows, corpus, tmp_path / "draft.jsonl")
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    assert len(rows) <= 10 and len(answerable) >= 4 and 1 <= len(unanswerable) <= 2
    assert rows.index(unanswerable[0]) == len(answerable)  # unanswerable rows come last
    assert {s for r in answerable for s in r["expected_sources"]} <= {"solar.txt", "library.md", "harbor.html"}
    assert len({r["answers"][0] for r in answerable}) == len(answerable)  # no answer twice
    by_answer = {r["answers"][0]: r for r in answerable}
    assert by_answer["1908"]["question"] == "The library opened in what year with a grant from Andrew Carnegie?"
    assert by_answer["1908"]["evidence"] == "The library opened in 1908 with a grant from Andrew Carnegie."
    assert by_answer["March 2021"]["question"].endswith("in what month and year?")


def test_same_seed_same_rows_and_other_seeds_differ(tmp_path: Path, settings) -> None:
    corpus = tmp_path / "towns"
    corpus.mkdir()
    lines = [f"The museum of Town{i} was opened in {1900 + i} by the architect Anna Berg{i}." for i in range(30)]
    (corpus / "towns.txt").write_text("Towns\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    a = draft_golden([corpus], settings, n=6, seed=0)
    assert a == draft_golden([corpus], settings, n=6, seed=0)
    assert any(draft_golden([corpus], settings, n=6, seed=s) != a for s in (1, 2, 3))
    assert len(a) == 6 and sum(r["answerable"] for r in a) == 5
    write_jsonl(a, tmp_path / "t.jsonl")
    load_golden(tmp_path / "t.jsonl", (corpus / "towns.txt").read_text(encoding="utf-8"))


def test_llm_questions_are_used_when_valid(corpus: Path, settings, tmp_path: Path) -> None:
    plain = draft_golden([corpus], settings, n=10, seed=0)
    answerable = [r for r in plain if r["answerable"]]
    good = [f"Which value does draft question number {chr(65 + i)} ask about here?" for i in range(len(answerable))]
    # each question is followed by the round trip: the LLM answers its own question from the sentence
    llm = ScriptedChatModel([x for q, r in zip(good, answerable, strict=True) for x in (q, f"{r['answers'][0]}.")])
    seen: list[int] = []

    class Bar:
        def update(self, n: int) -> None:
            seen.append(n)

        def close(self) -> None:
            seen.append(-1)

    rows = draft_golden([corpus], settings, n=10, seed=0, llm=llm, progress=lambda total: Bar())
    _check_rows(rows, corpus, tmp_path / "llm.jsonl")
    assert [r["question"] for r in rows if r["answerable"]] == good
    # only the question changes: same sentences, answers and evidence as without the LLM
    strip = [{k: v for k, v in r.items() if k != "question"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "question"} for r in plain]
    assert len(llm.calls) == 2 * len(answerable)
    first, back = llm.prompts[0][-1]["content"], llm.prompts[1][-1]["content"]
    assert answerable[0]["answers"][0] in first and "Fact: " in first
    assert good[0] in back and answerable[0]["answers"][0] not in back.split("Question:")[1]
    assert all(c["temperature"] == 0.0 and c["max_tokens"] <= 128 for c in llm.calls)
    assert seen == [1] * len(rows) + [-1]


def test_bad_llm_replies_fall_back_to_the_template(corpus: Path, settings, tmp_path: Path) -> None:
    plain = draft_golden([corpus], settings, n=10, seed=0)
    answerable = [r for r in plain if r["answerable"]]
    bad = [
        f"In what year did it happen, {answerable[0]['answers'][0]}?",  # gives the answer away
        "When did it open?\nIt opened in 1908.",  # several lines
        "The library opened in some year.",  # not a question
        "When?",  # too short
        "Why " + "very " * 40 + "long?",  # too long
        "According to the sentence, what year is it?",  # not standalone
    ]
    llm = ScriptedChatModel(bad[: len(answerable)], default="Bad reply without a question mark")
    rows = draft_golden([corpus], settings, n=10, seed=0, llm=llm)
    assert rows == plain  # every question fell back to its template
    _check_rows(rows, corpus, tmp_path / "bad.jsonl")


def test_round_trip_rejects_a_question_with_another_answer(corpus: Path, settings) -> None:
    plain = draft_golden([corpus], settings, n=10, seed=0)
    first, second = plain[0], plain[1]
    assert first["answerable"] and second["answerable"] and "Okafor" not in first["answers"][0]
    llm = ScriptedChatModel(["Which person is named in the record about the Eastbrook library?", "Maria Okafor",
                             "Which person is named in the record about the Eastbrook library?",
                             f"It was {second['answers'][0]}"],
                            default="no question")
    rows = draft_golden([corpus], settings, n=10, seed=0, llm=llm)
    assert rows[0]["question"] == first["question"]  # "Maria Okafor" is not the answer: the template stays
    assert rows[1]["question"] == "Which person is named in the record about the Eastbrook library?"
    assert rows[2:] == plain[2:]


def test_failing_llm_falls_back(corpus: Path, settings) -> None:
    llm = ScriptedChatModel([])  # raises on every call
    assert draft_golden([corpus], settings, n=10, seed=0, llm=llm) == draft_golden([corpus], settings, n=10, seed=0)


def test_check_question() -> None:
    assert check_question("Question: When did the Eastbrook library open?", "1908") == (
        "When did the Eastbrook library open?", "ok")
    assert check_question('"Who gave the grant that opened the Eastbrook library?"', "Andrew Carnegie")[0]
    assert check_question("Did Andrew Carnegie give the library a grant?", "Andrew Carnegie")[1] == \
        "contains the answer"
    assert check_question("In what year, 1,000 or 2,000, did it happen?", "1000")[1] == "contains the answer"
    assert check_question("What? Where is the library located?", "Eastbrook")[1] == "not one question"
    assert check_question("Who opened it?", "X")[1] == "3 words"
    assert check_question("", "X")[1] == "empty"
    assert check_question("When did the library in Eastbrook open??", "1908")[0] == \
        "When did the library in Eastbrook open?"
    assert check_question("Which year is given in the fact about the library?", "1908")[1] == "mentions the text"


def test_template_questions() -> None:
    s = "Tehran has promised a response, with President Masoud Pezeshkian vowing to act against Israel."
    start = s.index("Masoud")
    from eval.draft import answer_spans

    spans = {sp.text: sp for sp in answer_spans(s, {"Tehran", "President", "Masoud", "Pezeshkian", "Israel"})}
    assert spans["Masoud Pezeshkian"].kind == "person" and spans["Masoud Pezeshkian"].start == start
    assert template_question(s, spans["Masoud Pezeshkian"]) == \
        "Tehran has promised a response, with which president vowing to act against Israel?"

    s = "Israel’s military operation, dubbed “Operation Rising Lion,” delivered devastating blows."
    (sp,) = [x for x in answer_spans(s, {"Israel", "Operation", "Rising", "Lion"}) if x.text == "Operation Rising Lion"]
    assert template_question(s, sp) == "Israel’s military operation, dubbed what, delivered devastating blows?"

    s = "Iran quickly retaliated by launching over 100 drones toward Israeli territory."
    (sp,) = [x for x in answer_spans(s, set()) if x.text == "100"]
    assert template_question(s, sp) == "Iran quickly retaliated by launching how many drones toward Israeli territory?"

    s = "It was paid for by a municipal bond of 3.2 million dollars, approved by voters in 2019."
    spans = {sp.text: sp for sp in answer_spans(s, set())}
    assert spans["2019"].kind == "year" and spans["3.2 million"].kind == "number"
    assert template_question(s, spans["2019"], "The Solar Array Project") == (
        "The Solar Array Project: it was paid for by a municipal bond of 3.2 million dollars, approved by voters "
        "in what year?")
    assert "how many million dollars" in template_question(s, spans["3.2 million"])

    s = "The library is open from 9 am to 8 pm on weekdays and closed on Sundays."
    assert answer_spans(s, set()) == []  # clock times and weekdays are not answers


def test_evidence_window_cuts_long_sentences_on_word_boundaries() -> None:
    words = [f"word{i}" for i in range(60)]
    words[30] = "Zanzibar"
    sentence = " ".join(words) + "."
    start = sentence.index("Zanzibar")
    span = Span(start, start + 8, "Zanzibar", "place", start, start + 8, "what")
    lo, hi = evidence_window(sentence, span)
    ev = sentence[lo:hi]
    assert 10 <= len(ev) <= 200 and "Zanzibar" in ev
    assert ev in sentence and ev == ev.strip()
    assert (lo == 0 or sentence[lo - 1] == " ") and (hi == len(sentence) or sentence[hi] == " ")
    assert evidence_window("A short sentence about Zanzibar.", Span(23, 31, "Zanzibar", "place", 23, 31, "what")) \
        == (0, 32)


def test_skip_reasons() -> None:
    assert skip_reason("# Eastbrook Public Library") == "heading"
    assert skip_reason("Opening hours and closures on public holidays in Eastbrook") == "heading"
    assert skip_reason("It opened.") == "short"
    assert skip_reason("Click the Save button to store the settings you changed in 2021.") == "instruction"
    assert skip_reason("You can borrow up to 12 books at once from the library in Eastbrook.") == "instruction"
    assert skip_reason("When did the library open its doors to the public in Eastbrook?") == "question"
    assert skip_reason("The library opened in 1908 with a grant from Andrew Carnegie.") is None
    assert skip_reason(" ".join(["word"] * 80) + ".") == "long"


def test_unanswerable_rows_avoid_topics_the_corpus_mentions(tmp_path: Path, settings) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "town.txt").write_text(
        "Eastbrook\n\nThe town of Eastbrook had a population of 5,400 people in 2020, according to the census.\n"
        "Its mayor since 2018 is Jonas Whitfield, who was born in the village of Marrow Creek.\n"
        "The harbor in Eastbrook was dredged in 1996 by the Eastbrook Harbor Authority.\n",
        encoding="utf-8",
    )
    rows = draft_golden([corpus], settings, n=10, seed=0)
    questions = [r["question"] for r in rows if not r["answerable"]]
    assert questions
    for q in questions:
        assert not any(w in q.lower() for w in ("population", "born", "mayor")), q


def test_cli_draft_writes_jsonl_and_summary(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    out = tmp_path / "out" / "draft.jsonl"
    assert main(["eval", "draft", "--corpus", str(corpus), "--n", "8", "--seed", "1", "--out", str(out)]) == 0
    items = load_golden(out)
    text = capsys.readouterr().out
    assert f"drafted {len(items)} rows" in text and "from templates" in text
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(r["review"] == REVIEW for r in rows)


def test_cli_draft_reports_a_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    assert main(["eval", "draft", "--corpus", str(tmp_path / "nope"), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()
