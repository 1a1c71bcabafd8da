"""Condenser evaluation: metrics, CANARD loading and sampling, and runs with a real Pipeline (extractive and a
scripted LLM), a stub retriever and a real tiny index."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from eval.condense import (
    CanardRow,
    Turn,
    evaluate_condense,
    load_canard,
    rouge_l,
    sample_rows,
    summarize,
    token_f1,
    tokens,
)
from rag.pipeline import CONDENSE_PROMPT, Pipeline
from rag.settings import Settings
from rag.testing import ScriptedChatModel

# --------------------------------------------------------------------------- metrics


def test_tokens_use_squad_normalisation():
    assert tokens("What was Pinhead's (Hellraiser's) powers?") == ["what", "was", "pinheads", "hellraisers", "powers"]
    assert tokens("The Cat, a DOG and an owl!") == ["cat", "dog", "and", "owl"]
    assert tokens("  the ") == []


def test_token_f1_hand_computed():
    assert token_f1("Where is Ford based?", "where is ford based") == 1.0
    # pred [cat, sat], ref [cat, sat, down]: P = 1, R = 2/3 -> 0.8
    assert token_f1("The cat sat.", "A cat sat down") == pytest.approx(0.8)
    # multiplicity: x once and y once in common -> P = R = 2/3
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert token_f1("w y x z", "w x y z") == 1.0  # a bag of tokens: order does not matter
    assert token_f1("Paris", "France") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("the", "a") == 1.0  # both empty after normalisation
    assert token_f1("", "France") == 0.0 and token_f1("France", "") == 0.0


def test_rouge_l_hand_computed():
    assert rouge_l("Where is Ford based?", "where is ford based") == 1.0
    # LCS [w, x, z] or [w, y, z] = 3 of 4 both ways -> 0.75 (token F1 would be 1.0)
    assert rouge_l("w y x z", "w x y z") == pytest.approx(0.75)
    # LCS = 4 (where is ford based): P = 4/4, R = 4/6 -> 2 * (2/3) / (5/3) = 0.8
    assert rouge_l("Where is Ford based?", "Where is the Ford motor company based?") == pytest.approx(
        2 * 1 * (4 / 6) / (1 + 4 / 6)
    )
    # LCS = 2 ([b, c]): P = 2/3, R = 2/4 -> 4/7
    assert rouge_l("d b c", "b c d e") == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert rouge_l("Paris", "France") == 0.0
    assert rouge_l("", "") == 1.0 and rouge_l("", "x") == 0.0 and rouge_l("x", "") == 0.0


def test_rouge_l_never_exceeds_token_f1():
    rng = random.Random(1)
    vocab = ["p", "q", "r", "s", "t", "u"]
    for _ in range(200):
        a = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 8)))
        b = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 8)))
        assert 0.0 <= rouge_l(a, b) <= token_f1(a, b) + 1e-12
        assert rouge_l(a, b) == pytest.approx(rouge_l(b, a))


# --------------------------------------------------------------------------- loading and sampling


def row_dict(i: int, history: list[dict] | None = None, **over) -> dict:
    d = {
        "id": f"D{i // 10}#{i % 10}", "title": "Eastbrook", "section": "History",
        "history": history if history is not None else [], "question": f"Question {i}?", "rewrite": f"Rewrite {i}?",
    }
    d.update(over)
    return d


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_load_canard_reads_rows(tmp_path: Path):
    hist = [{"role": "user", "text": "Who built it?"}, {"role": "assistant", "text": "The Merrow brothers."}]
    path = write_jsonl(tmp_path / "dev.jsonl", [row_dict(0), "", row_dict(1, hist, title=None)])
    rows = load_canard(path)
    assert [r.id for r in rows] == ["D0#0", "D0#1"]
    assert rows[0].first_turn and rows[0].history == () and rows[0].title == "Eastbrook"
    assert not rows[1].first_turn and rows[1].title == ""
    assert rows[1].history == (Turn("user", "Who built it?"), Turn("assistant", "The Merrow brothers."))
    assert rows[1].messages() == [
        {"role": "user", "content": "Who built it?"}, {"role": "assistant", "content": "The Merrow brothers."},
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (row_dict(5, rewrite=None), "'rewrite'"),
        ({k: v for k, v in row_dict(5).items() if k != "rewrite"}, "missing field 'rewrite'"),
        ({k: v for k, v in row_dict(5).items() if k != "history"}, "missing field 'history'"),
        (row_dict(5, question="   "), "'question' must be a non-empty string"),
        (row_dict(5, id=7), "'id' must be a non-empty string"),
        (row_dict(5, history="Who?"), "'history' must be a list"),
        (row_dict(5, history=[{"role": "system", "text": "x"}]), "history[0].role"),
        (row_dict(5, history=[{"role": "user", "content": "x"}]), "history[0].text"),
        (row_dict(5, history=["Who?"]), "history[0] must be an object"),
        (row_dict(5, title=3), "'title' must be a string"),
        (row_dict(0), "id 'D0#0' repeats line 1"),
    ],
)
def test_load_canard_rejects_bad_rows_with_line_number(tmp_path: Path, bad, message: str):
    path = write_jsonl(tmp_path / "dev.jsonl", [row_dict(0), "", bad])
    with pytest.raises(ValueError) as info:
        load_canard(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)


def test_load_canard_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_canard(tmp_path / "nope.jsonl")


def make_rows(n: int) -> list[CanardRow]:
    return [
        CanardRow(id=f"D{i // 4}#{i % 4}", history=() if i % 4 == 0 else (Turn("user", "Q?"), Turn("assistant", "A.")),
                  question=f"Question {i}?", rewrite=f"Rewrite {i}?")
        for i in range(n)
    ]


def test_sample_rows_is_seeded_ordered_and_keeps_first_turns():
    rows = make_rows(40)
    a = sample_rows(rows, 10, seed=0)
    assert a == sample_rows(rows, 10, seed=0)
    assert [r.id for r in a] != [r.id for r in sample_rows(rows, 10, seed=1)]
    assert len(a) == 10 and a == [r for r in rows if r in a]  # file order
    shuffled = rows[:]
    random.Random(5).shuffle(shuffled)
    assert {r.id for r in sample_rows(shuffled, 10, seed=0)} == {r.id for r in a}  # the ids decide, not file order
    assert sum(r.first_turn for r in sample_rows(rows, None)) == 10  # first turns kept by default
    skipped = sample_rows(rows, 10, seed=0, skip_first_turns=True)
    assert len(skipped) == 10 and not any(r.first_turn for r in skipped)
    assert sample_rows(rows, None) == rows and sample_rows(rows, 100) == rows
    assert sample_rows(rows, None, skip_first_turns=True) == [r for r in rows if not r.first_turn]
    for bad in (0, -1):
        with pytest.raises(ValueError):
            sample_rows(rows, bad)


# --------------------------------------------------------------------------- evaluate_condense

HISTORY = (Turn("user", "Who built the Eastbrook lighthouse?"), Turn("assistant", "The Merrow brothers [1]."))
ROWS = [
    CanardRow("L#1", (), "Who built the Eastbrook lighthouse?", "Who built the Eastbrook lighthouse?", "Eastbrook"),
    CanardRow("L#2", HISTORY, "When did they build it?",
              "When did the Merrow brothers build the Eastbrook lighthouse?"),
    CanardRow("L#3", HISTORY, "Where is the Eastbrook harbor?", "Where is the Eastbrook harbor?"),
]


def test_evaluate_condense_extractive_pipeline(tmp_path: Path):
    pipe = Pipeline(Settings(data_dir=tmp_path / "data"), mode="extractive")
    calls: list[int] = []

    class Bar:
        def update(self, n: int) -> None:
            calls.append(n)

        def close(self) -> None:
            calls.append(-1)

    def progress(total: int) -> Bar:
        calls.append(total)
        return Bar()

    report = evaluate_condense(ROWS, pipe, progress=progress)
    assert calls == [3, 1, 1, 1, -1]
    r1, r2, r3 = report.records
    # first turn: nothing to resolve, unchanged, exact
    assert r1["condensed"] == ROWS[0].question and not r1["changed"] and not r1["triggered"] and r1["first_turn"]
    assert r1["f1"] == r1["identity_f1"] == 1.0 and r1["exact"] and not r1["needs_rewrite"]
    # follow-up with pronouns: extractive mode prepends the previous user question
    assert r2["condensed"] == "Who built the Eastbrook lighthouse? When did they build it?"
    assert r2["changed"] and r2["triggered"] and r2["needs_rewrite"] and not r2["first_turn"]
    # condensed [who built eastbrook lighthouse when did they build it] (9) vs reference
    # [when did merrow brothers build eastbrook lighthouse] (7): common when, did, build, eastbrook, lighthouse = 5
    assert r2["f1"] == pytest.approx(round(2 * (5 / 9) * (5 / 7) / (5 / 9 + 5 / 7), 4))
    # identity [when did they build it] (5): common when, did, build = 3
    assert r2["identity_f1"] == pytest.approx(round(2 * (3 / 5) * (3 / 7) / (3 / 5 + 3 / 7), 4))
    # LCS(condensed, reference) = [when, did, build] (3; "eastbrook lighthouse" comes first in one, last in the
    # other): P = 3/9, R = 3/7
    assert r2["rouge_l"] == pytest.approx(round(2 * (3 / 9) * (3 / 7) / (3 / 9 + 3 / 7), 4))
    # no pronoun: not treated as a follow-up
    assert r3["condensed"] == ROWS[2].question and not r3["changed"] and not r3["triggered"]
    assert all(r["retrieval_changed"] is None and r["seconds"] >= 0 for r in report.records)

    s = report.summary()
    assert s == summarize(report.records)
    assert s["rows"] == 3 and s["first_turn"]["rows"] == 1 and s["follow_up"]["rows"] == 2
    assert s["rewrite_rate"] == pytest.approx(round(1 / 3, 4)) and s["follow_up"]["rewrite_rate"] == 0.5
    assert s["first_turn"]["rewrite_rate"] == 0.0 and s["first_turn"]["triggered_p50_s"] is None
    assert s["needs_rewrite_rate"] == pytest.approx(round(1 / 3, 4)) and s["missed_rate"] == 0.0
    assert s["f1"] == pytest.approx(round((1 + r2["f1"] + 1) / 3, 4), abs=1e-4)
    assert s["follow_up"]["identity_f1"] == pytest.approx(round((r2["identity_f1"] + 1) / 2, 4), abs=1e-4)
    assert s["retrieval_changed_rate"] is None and s["p50_s"] is not None and s["p95_s"] >= s["p50_s"]
    assert report.mode == "extractive" and report.model is None and report.k is None

    table = report.format_report()
    for label in ("F1 condensed", "F1 identity", "ROUGE-L condensed", "rewrite rate", "retrieval changed", "p50"):
        assert label in table
    assert "first turn" in table and "follow-up" in table and "n/a" in table
    out = json.loads(report.to_json())
    assert out["rows"] == 3 and out["follow_up"]["rows"] == 2 and out["mode"] == "extractive"
    assert len(json.loads(report.to_json(records=True))["records"]) == 3


def test_evaluate_condense_scripted_llm(tmp_path: Path):
    llm = ScriptedChatModel([
        "When did the Merrow brothers build the Eastbrook lighthouse?",
        "",  # an empty rewrite: the pipeline falls back to prepending the previous question
    ])
    pipe = Pipeline(Settings(data_dir=tmp_path / "data"), mode="local", llm=llm)
    rows = [*ROWS, CanardRow("L#4", HISTORY, "Is it still there?", "Is the Eastbrook lighthouse still there?")]
    report = evaluate_condense(rows, pipe)
    r1, r2, r3, r4 = report.records
    assert len(llm.calls) == 2  # only the two pronoun follow-ups reach the LLM
    system, user = llm.calls[0]["messages"]
    assert system == {"role": "system", "content": CONDENSE_PROMPT}
    assert "User: Who built the Eastbrook lighthouse?\nAssistant: The Merrow brothers." in user["content"]
    assert "[1]" not in user["content"]  # citation markers stripped from the history
    assert user["content"].endswith("Last question: When did they build it?\n\nRewritten question:")
    assert llm.calls[0]["temperature"] == 0.0 and llm.calls[0]["stop"] == ["\n"]

    assert r2["condensed"] == ROWS[1].rewrite and r2["exact"] and r2["f1"] == r2["rouge_l"] == 1.0
    assert r2["identity_f1"] < 1.0
    assert r4["condensed"] == "Who built the Eastbrook lighthouse? Is it still there?" and r4["changed"]
    assert not r1["changed"] and not r3["changed"]
    s = report.summary()
    assert s["follow_up"]["rewrite_rate"] == pytest.approx(round(2 / 3, 4))
    assert s["follow_up"]["triggered_rate"] == pytest.approx(round(2 / 3, 4))
    assert s["follow_up"]["exact"] == pytest.approx(round(2 / 3, 4))  # L#2 rewritten exactly, L#3 needed none
    assert s["follow_up"]["f1"] > s["follow_up"]["identity_f1"]
    assert s["triggered_p50_s"] is not None
    assert report.mode == "local" and report.model == Settings(data_dir=tmp_path / "data").llm_model


class StubRetriever:
    """Top-k ids by keyword: the lighthouse chunk for queries naming it, else the harbor chunk."""

    def __init__(self) -> None:
        self.queries: list[tuple[str, int]] = []

    def search(self, query: str, *, k: int | None = None):
        self.queries.append((query, k))
        ids = ["lighthouse", "harbor"] if "lighthouse" in query.lower() else ["harbor", "library"]
        return [SimpleNamespace(chunk=SimpleNamespace(id=i)) for i in ids[:k]]


def test_evaluate_condense_retrieval_changed_with_stub(tmp_path: Path):
    pipe = Pipeline(Settings(data_dir=tmp_path / "data"), mode="extractive")
    stub = StubRetriever()
    report = evaluate_condense(ROWS, pipe, retriever=stub, k=2)
    assert [r["retrieval_changed"] for r in report.records] == [False, True, False]
    assert all(k == 2 for _, k in stub.queries)
    assert len(stub.queries) == len({q for q, _ in stub.queries})  # each distinct query searched once
    s = report.summary()
    assert s["retrieval_changed_rate"] == pytest.approx(round(1 / 3, 4))
    assert s["follow_up"]["retrieval_changed_rate"] == 0.5 and s["first_turn"]["retrieval_changed_rate"] == 0.0
    assert report.k == 2
    with pytest.raises(ValueError):
        evaluate_condense(ROWS, pipe, retriever=stub, k=0)


def test_evaluate_condense_retrieval_changed_with_real_index(settings: Settings, corpus_dir: Path, minilm):
    from index.ingest import ingest
    from rag.retrieve import Retriever

    report = ingest([corpus_dir], settings, embedder=minilm)
    assert report.chunks_total >= 3 and not report.failed
    retriever = Retriever(settings, embedder=minilm)
    history = (Turn("user", "How many panels does the solar array have?"), Turn("assistant", "4,200 panels."))
    rows = [
        CanardRow("S#1", (), "How many panels does the solar array have?",
                  "How many panels does the solar array have?"),
        CanardRow("S#2", history, "Who paid for it?", "Who paid for the solar array?"),
    ]
    pipe = Pipeline(settings, mode="extractive")
    result = evaluate_condense(rows, pipe, retriever=retriever, k=1)
    r1, r2 = result.records
    assert r1["retrieval_changed"] is False
    top = [h.chunk.id for h in retriever.search(r2["condensed"], k=1)]
    assert top != [] and "solar" in retriever.search(r2["condensed"], k=1)[0].chunk.source
    expected = top != [h.chunk.id for h in retriever.search(r2["question"], k=1)]
    assert r2["retrieval_changed"] is expected


def test_cli_eval_condense_can_skip_first_turns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The one front-end (``rag eval condense``) carries the options of the old argparse one."""
    from rag.cli import main

    hist = [{"role": "user", "text": "Who built the Eastbrook lighthouse?"},
            {"role": "assistant", "text": "The Merrow brothers."}]
    path = write_jsonl(tmp_path / "dev.jsonl", [
        row_dict(0, question="Who built the Eastbrook lighthouse?", rewrite="Who built the Eastbrook lighthouse?"),
        row_dict(1, hist, question="When did they build it?", rewrite="When was the Eastbrook lighthouse built?"),
    ])
    runs = tmp_path / "runs"
    assert main(["eval", "condense", "--file", str(path), "--limit", "0", "--mode", "extractive", "--no-retrieval",
                 "--skip-first-turns", "--runs-dir", str(runs), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    assert out["rows"] == 1 and out["skip_first_turns"] is True and out["follow_up"]["rewrite_rate"] == 1.0
    assert "F1 condensed" in "\n".join(lines[:-1])
    recs = [json.loads(x) for x in (Path(out["run"]) / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in recs] == ["D0#1"]


def test_cli_eval_condense_writes_a_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    hist = [{"role": "user", "text": "Who built the lighthouse?"},
            {"role": "assistant", "text": "The Merrow brothers."}]
    path = write_jsonl(tmp_path / "dev.jsonl", [
        row_dict(0, question="Who built the lighthouse?", rewrite="Who built the lighthouse?"),
        row_dict(1, hist, question="When did they build it?",
                 rewrite="When did the Merrow brothers build the lighthouse?"),
    ])
    runs = tmp_path / "runs"
    assert main(["eval", "condense", "--file", str(path), "--limit", "0", "--mode", "extractive", "--no-retrieval",
                 "--runs-dir", str(runs), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rows"] == 2 and out["follow_up"]["rows"] == 1 and out["mode"] == "extractive"
    run = Path(out["run"])
    assert {"results.jsonl", "summary.json", "report.md"} <= {p.name for p in run.iterdir()}
