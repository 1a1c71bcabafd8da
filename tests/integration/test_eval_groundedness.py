"""`rag eval groundedness`: the metrics by hand, loading, and the real support checker on real HaluEval rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eval.groundedness import (
    auroc,
    balanced_accuracy,
    evaluate_groundedness,
    load_pairs,
    precision_recall_f1,
)
from rag.cli import main
from tests.conftest import FIXTURES

HALUEVAL = FIXTURES / "halueval_sample.jsonl"  # 8 supported + 8 unsupported real HaluEval QA rows


def test_metrics_by_hand() -> None:
    y = np.array([1, 1, 0, 0, 0])
    pred = np.array([1, 0, 0, 0, 1])
    assert balanced_accuracy(y, pred) == pytest.approx((0.5 + 2 / 3) / 2)
    assert precision_recall_f1(y, pred) == pytest.approx((0.5, 0.5, 0.5))
    assert auroc(y, np.array([0.9, 0.4, 0.4, 0.1, 0.2])) == pytest.approx((3 + 2.5) / 6)
    assert balanced_accuracy(np.array([1, 1]), np.array([1, 0])) is None  # one class only
    assert auroc(np.array([0, 0]), np.array([0.1, 0.2])) is None


def test_load_pairs_validates(tmp_path: Path) -> None:
    good = {"context": "c", "question": "q", "response": "r", "label": "supported"}
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "label": "unsupported", "length_matched": True}))
    rows = load_pairs(p)
    assert [r.label for r in rows] == ["supported", "unsupported"] and rows[1].length_matched
    for bad, msg in ((dict(good, label="maybe"), "label"), ({"context": "c"}, "missing"), ("[1]", "object")):
        p.write_text(json.dumps(good) + "\n" + (bad if isinstance(bad, str) else json.dumps(bad)) + "\n")
        with pytest.raises(ValueError, match=msg) as err:
            load_pairs(p)
        assert ":2:" in str(err.value)


@pytest.fixture(scope="module")
def checker(models):
    c = models.checker
    c.warm_up()
    return c


def sample_rows(n: int = 16):
    rows = load_pairs(HALUEVAL)
    half = n // 2
    return ([r for r in rows if r.label == "supported"][:half] + [r for r in rows if r.label == "unsupported"][:half])


def test_real_checker_separates_supported_from_unsupported(checker) -> None:
    report = evaluate_groundedness(sample_rows(), checker)
    s = report.summary()
    assert s["rows"] == 16 and 0.0 <= s["threshold"] <= 1.0
    assert s["balanced_accuracy"] >= 0.75 and s["auroc"] >= 0.75
    assert all(r["verdict"] in ("supported", "unsupported") for r in report.records)


def test_cli_writes_a_run_folder(tmp_path: Path, checker, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = sample_rows(6)
    pairs.write_text("\n".join(json.dumps({"id": r.id, "context": r.context, "question": r.question,
                                           "response": r.response, "label": r.label}) for r in rows) + "\n")
    assert main(["eval", "groundedness", "--pairs", str(pairs), "--runs-dir", str(tmp_path / "runs"), "--json",
                 "--no-baseline"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = Path(last["run"])
    assert run.parent == tmp_path / "runs" and last["rows"] == 6
    assert {"results.jsonl", "summary.json", "report.md", "calibration.png"} <= {p.name for p in run.iterdir()}
    assert len((run / "results.jsonl").read_text().splitlines()) == 6
    assert json.loads((run / "summary.json").read_text())["kind"] == "groundedness"


def test_cli_bad_pairs_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "c", "response": "r", "label": "maybe"}\n')
    assert main(["eval", "groundedness", "--pairs", str(bad)]) == 1
    assert "label" in capsys.readouterr().err


def test_llm_judge_parses_yes_and_no() -> None:
    from eval.groundedness import LlmJudge
    from rag.testing import ScriptedChatModel

    llm = ScriptedChatModel(["Yes", " no.", "**Yes**"])
    rows = sample_rows(4)[:3]
    report = evaluate_groundedness(rows, LlmJudge(llm), judge="scripted")
    assert report.supported == [True, False, True] and report.scores == [1.0, 0.0, 1.0]
    prompt = llm.prompts[0][-1]["content"]
    assert rows[0].context in prompt and rows[0].response in prompt and prompt.endswith("Reply yes or no.")
    assert report.summary()["judge"] == "scripted"


@pytest.mark.slow
def test_hosted_llm_judge_against_a_real_server(llama_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from rag.settings import get_settings

    monkeypatch.setenv("RAG_HOSTED_BASE_URL", llama_server.base_url)
    monkeypatch.setenv("RAG_HOSTED_MODEL", llama_server.model)
    get_settings.cache_clear()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(HALUEVAL.read_text())
    assert main(["eval", "groundedness", "--pairs", str(pairs), "--judge", "hosted", "--runs-dir",
                 str(tmp_path / "runs"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rows"] == 16 and out["judge"].startswith("hosted LLM") and out["regressions"] == 0
    assert out["balanced_accuracy"] is not None
