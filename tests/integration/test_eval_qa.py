"""QA evaluation: SQuAD v2 scoring, sampling, summary and an end-to-end run on a real (tiny) index."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from eval.qa import (
    SUMMARY_KEYS,
    QaQuestion,
    QaRecord,
    evaluate_qa,
    exact_match,
    f1,
    format_report,
    load_questions,
    normalize_answer,
    percentile,
    quote_contains,
    sample_questions,
    score_answer,
    strip_citations,
    summarize,
)
from eval.retrieval import corpus_index_name
from rag.errors import PathNotFoundError, UnreadableDocumentError
from rag.settings import Settings
from rag.types import Answer, Citation

# --------------------------------------------------------------------------- SQuAD v2 scoring


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Cat!", "cat"),
        ("An apple, a day.", "apple day"),
        ("theater anthem", "theater anthem"),  # articles only as whole words
        ("  Denmark,\tIceland and\nNorway ", "denmark iceland and norway"),
        ("Hello-world's", "helloworlds"),  # punctuation is removed, not replaced by a space
        ("the", ""),
    ],
)
def test_normalize_answer_as_official_script(text: str, expected: str):
    assert normalize_answer(text) == expected


def test_exact_match():
    assert exact_match("The Cat!", ["cat"]) == 1.0
    assert exact_match("cats", ["cat"]) == 0.0
    assert exact_match("France", ["Paris", "france."]) == 1.0  # max over golds
    # no gold (impossible): as the official script, the only gold is "" and only an empty prediction matches
    assert exact_match("", []) == 1.0
    assert exact_match("France", []) == 0.0
    assert exact_match("", ["the"]) == 1.0  # golds that normalise to nothing are dropped


def test_f1_hand_computed():
    assert f1("Normandy is in France", ["France"]) == pytest.approx(2 * (1 / 4 * 1) / (1 / 4 + 1))  # 0.4
    # 4 of 5 predicted tokens are gold, all 4 gold tokens found: 2 * 0.8 * 1 / 1.8
    assert f1("in the 10th and 11th centuries", ["10th and 11th centuries"]) == pytest.approx(1.6 / 1.8)
    assert f1("in the 10th and 11th centuries", ["10th and 11th centuries", "in the 10th and 11th centuries"]) == 1.0
    assert f1("x x y", ["x y y"]) == pytest.approx(2 / 3)  # common tokens count with multiplicity: x once, y once
    assert f1("Paris", ["France"]) == 0.0
    assert f1("", []) == 1.0 and f1("France", []) == 0.0 and f1("", ["France"]) == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris [1].", "Paris."),
        ("It is [1, 2] big.", "It is big."),
        ("France[1][2]", "France"),
        ("France [1] [2]", "France"),
        ("Rollo [3-4] led them [12].", "Rollo led them."),
        ("a [note] and array[i] stay", "a [note] and array[i] stay"),
    ],
)
def test_strip_citations(text: str, expected: str):
    assert strip_citations(text) == expected


def test_quote_contains_whole_normalised_tokens():
    assert quote_contains("The Normans were in Normandy in the 10th and 11th centuries.", "10th and 11th Centuries")
    assert not quote_contains("In Frances' south", "France")
    assert not quote_contains("anything", "the")  # a gold that normalises to nothing never matches


def test_one_percentile_for_every_report():
    """eval.qa, eval.golden, eval.suite, eval.report, eval.condense and the benchmarks share eval.metrics.percentile
    (linear interpolation between closest ranks, numpy's default)."""
    import bench.common
    import eval.condense
    import eval.golden
    import eval.metrics
    import eval.report
    import eval.suite

    values = [3.0, 1.0, 2.0, 4.0]
    assert percentile(values, 50) == 2.5 and percentile(values, 0) == 1.0
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile([], 50) is None and percentile([float("nan"), None], 50) is None
    for module in (eval.condense, eval.golden, eval.report, eval.suite, bench.common):
        assert module.percentile is eval.metrics.percentile


# --------------------------------------------------------------------------- loading and sampling


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _q(id: str, impossible: bool, answers: list[str] | None = None, question: str | None = None) -> dict:
    return {"id": id, "question": question or f"question {id}?", "gold_passage_id": "P#0", "title": "P",
            "is_impossible": impossible, "answers": [] if impossible else (answers or ["x"]), "answer_spans": []}


def test_load_questions(tmp_path: Path):
    path = _write_jsonl(tmp_path / "q.jsonl", [_q("a", False, ["France", "in France"]), _q("b", True)])
    qs = load_questions(path)
    assert qs == [
        QaQuestion(id="a", question="question a?", is_impossible=False, answers=("France", "in France"),
                   gold_passage_id="P#0", title="P"),
        QaQuestion(id="b", question="question b?", is_impossible=True, answers=(), gold_passage_id="P#0", title="P"),
    ]


@pytest.mark.parametrize(
    "bad_line",
    [
        "{not json",
        json.dumps({"id": "x", "is_impossible": False, "answers": ["y"]}),  # no question
        json.dumps({"id": "x", "question": "q?", "is_impossible": "no", "answers": []}),
        json.dumps({"id": "x", "question": "q?", "is_impossible": False, "answers": []}),  # answerable, no answer
        json.dumps(["a", "list"]),
    ],
)
def test_load_questions_reports_file_and_line(tmp_path: Path, bad_line: str):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(_q("a", True)) + "\n\n" + bad_line + "\n")
    with pytest.raises(UnreadableDocumentError, match=r"q\.jsonl:3: "):
        load_questions(path)


def test_load_questions_duplicate_id_and_missing_file(tmp_path: Path):
    path = _write_jsonl(tmp_path / "q.jsonl", [_q("a", True), _q("a", False)])
    with pytest.raises(UnreadableDocumentError, match=r"q\.jsonl:2: duplicate question id 'a'"):
        load_questions(path)
    with pytest.raises(PathNotFoundError):
        load_questions(tmp_path / "nope.jsonl")


def test_sample_is_deterministic_and_stratified(tmp_path: Path):
    """On a generated file shaped like SQuAD 2.0 (about half impossible, kinds interleaved), so it runs anywhere."""
    rows = [_q(f"{i:05x}{'z' * (i % 3)}", i % 7 in (1, 3, 4, 6)) for i in range(600)]
    questions = load_questions(_write_jsonl(tmp_path / "questions.jsonl", rows))
    kinds = {q.is_impossible for q in questions}
    assert kinds == {True, False}, "the SQuAD 2.0 file has both kinds"
    first = sample_questions(questions, 100, seed=0)
    assert [q.id for q in first] == [q.id for q in sample_questions(questions, 100, seed=0)]
    assert [q.id for q in first] != [q.id for q in sample_questions(questions, 100, seed=1)]
    assert sum(q.is_impossible for q in first) == 50 and len({q.id for q in first}) == 100
    odd = sample_questions(questions, 7, seed=3)
    assert len(odd) == 7 and sum(not q.is_impossible for q in odd) == 4  # ceil(7/2) answerable
    position = {q.id: i for i, q in enumerate(questions)}
    assert [position[q.id] for q in first] == sorted(position[q.id] for q in first)  # file order kept
    assert sample_questions(questions, None, seed=5) == questions
    # the sample depends on the ids, not on the file order
    assert {q.id for q in sample_questions(questions[::-1], 100, seed=0)} == {q.id for q in first}


def test_sample_fills_from_the_other_kind_when_one_runs_short():
    qs = [QaQuestion(id=f"a{i}", question="q", is_impossible=False, answers=("x",)) for i in range(2)]
    qs += [QaQuestion(id=f"i{i}", question="q", is_impossible=True, answers=()) for i in range(20)]
    picked = sample_questions(qs, 10, seed=0)
    assert len(picked) == 10 and sum(not q.is_impossible for q in picked) == 2
    only_impossible = [q for q in qs if q.is_impossible]
    assert len(sample_questions(only_impossible, 5, seed=0)) == 5
    assert sample_questions(qs, 100, seed=0) == qs
    with pytest.raises(ValueError, match="limit must be > 0"):
        sample_questions(qs, 0, seed=0)


# --------------------------------------------------------------------------- records and summary


def _record(id: str, impossible: bool, *, refused: bool, em: float | None = None, f1: float | None = None,
            cited: bool | None = None, **seconds: float) -> QaRecord:
    return QaRecord(id=id, question="q", is_impossible=impossible, prediction="p", refused=refused, em=em, f1=f1,
                    seconds=seconds, citations=0 if refused else 1, cited_gold=cited)


def test_summarize_hand_built_records():
    records = [
        _record("a1", False, refused=False, em=1.0, f1=1.0, cited=True, retrieve=0.1, generate=1.0, total=1.2),
        _record("a2", False, refused=False, em=0.0, f1=0.5, cited=False, retrieve=0.2, generate=2.0, total=2.4),
        _record("a3", False, refused=True, em=0.0, f1=0.0, cited=False, retrieve=0.3, total=0.4),  # false refusal
        _record("i1", True, refused=True, retrieve=0.1, total=0.2),
        _record("i2", True, refused=False, retrieve=0.4, generate=3.0, total=3.5),  # answered the unanswerable
        _record("i3", True, refused=True, retrieve=0.5, total=0.6),
    ]
    s = summarize(records)
    assert tuple(s) == SUMMARY_KEYS
    assert s == {
        "em": 0.3333,  # 1 / 3
        "f1": 0.5,  # (1 + 0.5 + 0) / 3
        "refusal_rate": 0.6667,  # 2 of 3 impossible refused
        "false_refusal_rate": 0.3333,  # 1 of 3 answerable refused
        "refusal_bacc": 0.6667,  # (2/3 + 2/3) / 2
        "cited_gold_rate": 0.5,  # a1 of {a1, a2}; the refused a3 does not count
        "p50_s": 0.9,  # interpolated between the 3rd and 4th of 0.2 0.4 0.6 1.2 2.4 3.5
        "p95_s": 3.225,  # 2.4 + 0.75 * (3.5 - 2.4)
        "stages": {
            "retrieve": {"p50_s": 0.25, "p95_s": 0.475},  # 0.1 0.1 0.2 0.3 0.4 0.5
            "generate": {"p50_s": 2.0, "p95_s": 2.9},  # 1.0 2.0 3.0
        },
        "questions": 6,
        "answerable": 3,
        "unanswerable": 3,
    }


def test_summarize_empty_groups_give_none():
    empty = summarize([])
    assert empty == {"em": None, "f1": None, "refusal_rate": None, "false_refusal_rate": None, "refusal_bacc": None,
                     "cited_gold_rate": None, "p50_s": None, "p95_s": None, "stages": {}, "questions": 0,
                     "answerable": 0, "unanswerable": 0}
    only_refused_answerable = summarize([_record("a", False, refused=True, em=0.0, f1=0.0, cited=False, total=1.0)])
    assert only_refused_answerable["em"] == 0.0 and only_refused_answerable["false_refusal_rate"] == 1.0
    assert only_refused_answerable["refusal_rate"] is None and only_refused_answerable["refusal_bacc"] is None
    assert only_refused_answerable["cited_gold_rate"] is None
    only_impossible = summarize([_record("i", True, refused=False, total=1.0)])
    assert only_impossible["em"] is None and only_impossible["refusal_rate"] == 0.0
    assert only_impossible["false_refusal_rate"] is None and only_impossible["refusal_bacc"] is None


def _citation(quote: str, n: int = 1) -> Citation:
    return Citation(n=n, chunk_id="d:0", source="/p.jsonl", title="T", quote=quote, start=0, end=len(quote), score=1.0)


def test_score_answer():
    q = QaQuestion(id="a", question="Where is Normandy?", is_impossible=False, answers=("France",))
    ans = Answer(question=q.question, standalone_question=q.question, text="Normandy is in France [1].",
                 citations=[_citation("Normandy is a region in France.")], mode="extractive",
                 seconds={"retrieve": 0.25, "total": 9.0})
    rec = score_answer(q, ans, total_seconds=0.5)
    assert rec.prediction == "Normandy is in France." and rec.em == 0.0 and rec.f1 == pytest.approx(0.4)
    assert rec.cited_gold is True and rec.citations == 1 and not rec.refused
    assert rec.seconds == {"retrieve": 0.25, "total": 0.5}  # the measured wall time wins
    assert score_answer(q, ans).seconds["total"] == 9.0
    refusal = ans.model_copy(update={"text": "France is not in the documents.", "refused": True, "citations": []})
    r = score_answer(q, refusal)
    assert r.refused and r.em == 0.0 and r.f1 == 0.0 and r.cited_gold is False  # refusal scores 0, even if it matches
    impossible = QaQuestion(id="b", question="Where is Atlantis?", is_impossible=True, answers=())
    r = score_answer(impossible, ans.model_copy(update={"seconds": {"retrieve": 0.25}}))
    assert r.em is None and r.f1 is None and r.cited_gold is None and r.seconds == {"retrieve": 0.25, "total": 0.25}


# --------------------------------------------------------------------------- end to end on a real tiny index

PASSAGES = [
    {"_id": "Bees#0", "title": "Honeybees", "text": "Worker bees collect nectar and pollen and communicate with a "
                                                     "waggle dance."},
    {"_id": "Tides#0", "title": "Tides", "text": "The gravitational pull of the moon causes the rise and fall of "
                                                  "sea levels."},
    {"_id": "Volcanoes#0", "title": "Volcanoes", "text": "Magma rises through the crust and erupts as lava, ash and "
                                                          "volcanic gases."},
]
QUESTIONS = [
    _q("q1", False, ["nectar and pollen"], "What do worker bees collect?"),
    _q("q2", False, ["the gravitational pull of the moon", "gravitational pull"], "What causes the tides?"),
    _q("q3", False, ["lava, ash and volcanic gases"], "What erupts from volcanoes?"),
    _q("q4", True, question="What colour are honeybee queens?"),
    _q("q5", True, question="How hot is the magma of the moon?"),
]
# what the stub answers: text with markers, or None to refuse
SCRIPT = {
    "What do worker bees collect?": "Worker bees collect nectar and pollen [1].",
    "What causes the tides?": "The gravitational pull of the moon [1].",
    "What erupts from volcanoes?": None,  # a false refusal
    "What colour are honeybee queens?": None,  # a right refusal
    "How hot is the magma of the moon?": "Very hot [1].",  # answers the unanswerable
}


@pytest.fixture
def squad_set(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "squad"
    d.mkdir()
    return {"passages": _write_jsonl(d / "passages.jsonl", PASSAGES),
            "questions": _write_jsonl(d / "questions.jsonl", QUESTIONS)}


def _stub(settings: Settings, index_name: str, embedder):  # type: ignore[no-untyped-def]
    """An ``answer`` callable that retrieves from the real index and cites its best chunk."""
    from rag.retrieve import Retriever

    retriever = Retriever(settings, index_name=index_name, embedder=embedder)
    asked: list[str] = []

    def answer(question: str) -> Answer:
        asked.append(question)
        top = retriever.search(question, k=1)[0]
        text = SCRIPT[question]
        common = {"question": question, "standalone_question": question, "mode": "extractive",
                  "seconds": {"retrieve": 0.01, "generate": 0.02}}
        if text is None:
            return Answer(text="The documents do not say.", refused=True, refusal_reason="no_evidence", **common)
        cite = Citation(n=1, chunk_id=top.chunk.id, source=top.chunk.source, title=top.chunk.title,
                        quote=top.chunk.text, start=top.chunk.start, end=top.chunk.end, score=1.0)
        return Answer(text=text, citations=[cite], **common)

    answer.asked = asked  # type: ignore[attr-defined]
    return answer


def test_evaluate_qa_end_to_end(settings: Settings, squad_set: dict[str, Path], minilm):
    index_name = corpus_index_name(squad_set["passages"])
    stub = _stub(settings, index_name, minilm)
    report = evaluate_qa(squad_set["passages"], squad_set["questions"], settings=settings, answer=stub,
                         embedder=minilm)
    assert report.index_name == index_name and report.documents == 3 and report.chunks == 3
    assert stub.asked == [q["question"] for q in QUESTIONS]  # all, in file order
    assert [r.id for r in report.records] == ["q1", "q2", "q3", "q4", "q5"]
    by_id = {r.id: r for r in report.records}
    assert by_id["q1"].prediction == "Worker bees collect nectar and pollen."
    assert by_id["q1"].em == 0.0 and by_id["q1"].f1 == pytest.approx(2 / 3) and by_id["q1"].cited_gold is True
    assert by_id["q2"].em == 1.0 and by_id["q2"].cited_gold is True  # the retrieved Tides passage was cited
    assert by_id["q3"].refused and by_id["q3"].em == 0.0 and by_id["q3"].citations == 0
    assert by_id["q5"].em is None and by_id["q5"].citations == 1
    assert set(by_id["q1"].seconds) == {"retrieve", "generate", "total"}
    s = report.summary
    assert s["em"] == pytest.approx(1 / 3, abs=1e-4) and s["f1"] == pytest.approx((2 / 3 + 1) / 3, abs=1e-4)
    assert s["refusal_rate"] == 0.5 and s["false_refusal_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["refusal_bacc"] == pytest.approx((0.5 + 2 / 3) / 2, abs=1e-4) and s["cited_gold_rate"] == 1.0
    assert (s["questions"], s["answerable"], s["unanswerable"]) == (5, 3, 2)
    assert set(s["stages"]) == {"retrieve", "generate"} and s["p50_s"] is not None
    assert report.mode == "extractive" and report.limit is None and report.seed == 0

    line = report.to_json()
    assert "\n" not in line
    data = json.loads(line)
    assert all(data[k] == s[k] for k in SUMMARY_KEYS)
    assert data["index_name"] == index_name and data["mode"] == "extractive" and data["seed"] == 0
    assert len(json.loads(report.to_json(records=True))["records"]) == 5
    table = format_report(report)
    assert "exact match" in table and "33.3%" in table and "retrieve" in table and "total" in table

    # again with a limit: the same index is reused, half of the sample unanswerable
    again = evaluate_qa(squad_set["passages"], squad_set["questions"], settings=settings, answer=stub,
                        embedder=minilm, limit=2, seed=1)
    assert (again.summary["answerable"], again.summary["unanswerable"]) == (1, 1)
    assert again.index_name == index_name and again.limit == 2 and again.seed == 1


def test_evaluate_qa_builds_the_pipeline_lazily(settings: Settings, squad_set: dict[str, Path], minilm,
                                                monkeypatch: pytest.MonkeyPatch):
    made: list[dict] = []

    class FakePipeline:
        def __init__(self, settings: Settings, *, index_name: str | None = None, mode: str | None = None) -> None:
            made.append({"settings": settings, "index_name": index_name, "mode": mode})

        def ask(self, question: str, history=()) -> Answer:  # type: ignore[no-untyped-def]
            return Answer(question=question, standalone_question=question, text="The documents do not say.",
                          refused=True, mode="hosted")

    fake = types.ModuleType("rag.pipeline")
    fake.Pipeline = FakePipeline  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rag.pipeline", fake)
    report = evaluate_qa(squad_set["passages"], squad_set["questions"], settings=settings, mode="hosted", limit=4,
                         embedder=minilm)
    assert made == [{"settings": settings, "index_name": corpus_index_name(squad_set["passages"]), "mode": "hosted"}]
    s = report.summary
    assert s["refusal_rate"] == 1.0 and s["false_refusal_rate"] == 1.0 and s["refusal_bacc"] == 0.5
    assert s["em"] == 0.0 and s["cited_gold_rate"] is None and report.mode == "hosted"


def test_evaluate_qa_bad_questions_fail_before_indexing(settings: Settings, squad_set: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch):
    import index.ingest

    def no_ingest(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("indexed before reading the questions")

    monkeypatch.setattr(index.ingest, "ingest", no_ingest)
    squad_set["questions"].write_text(json.dumps(QUESTIONS[0]) + "\n{broken\n")
    with pytest.raises(UnreadableDocumentError, match=r"questions\.jsonl:2: "):
        evaluate_qa(squad_set["passages"], squad_set["questions"], settings=settings, answer=stub_never_called)


def stub_never_called(question: str) -> Answer:
    raise AssertionError(f"asked {question!r}")


def test_cli_eval_qa_writes_a_run_folder(squad_set: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    runs = tmp_path / "runs"
    assert main(["eval", "qa", "--passages", str(squad_set["passages"]), "--questions", str(squad_set["questions"]),
                 "--mode", "extractive", "--runs-dir", str(runs), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = Path(out["run"])
    assert run.parent == runs and out["regressions"] == 0  # the qa baseline is for squad2, not this set
    assert {"results.jsonl", "summary.json", "report.md", "latency.png"} <= {p.name for p in run.iterdir()}
    assert len((run / "results.jsonl").read_text().splitlines()) == out["questions"]
