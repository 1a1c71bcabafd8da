"""The groundedness suite (`rag eval suite`, `pytest eval/`) on the small corpus, extractive mode, real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.golden import GoldenError, load_golden
from eval.suite import run_suite, summarize_suite
from rag.cli import main
from rag.pipeline import Pipeline
from rag.settings import Settings
from tests.conftest import REPO

ROWS = [
    {"id": "s1", "question": "How many panels does the solar array have?", "answerable": True,
     "answers": ["4,200"], "evidence": "The array has 4,200 panels"},
    {"id": "s2", "question": "How many panels does the solar array have?", "answerable": True,
     "answers": ["4,200"], "expected_sources": ["solar.txt"]},
    {"id": "u1", "question": "What is the boiling point of mercury in Kelvin?", "answerable": False},
    # deliberately wrong gold answer: this question must fail
    {"id": "bad", "question": "How many panels does the solar array have?", "answerable": True,
     "answers": ["9,999"], "evidence": "The array has 4,200 panels"},
]


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    path = tmp_path / "golden.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return path


def test_golden_format_accepts_sources_and_history(tmp_path: Path, golden: Path) -> None:
    items = load_golden(golden)
    assert items[1].expected_sources == ("solar.txt",) and items[1].evidence is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "question": "q", "answerable": False, "history": [{"role": "bot"}]}) + "\n")
    with pytest.raises(GoldenError, match="history"):
        load_golden(bad)


def test_suite_scores_each_question(settings: Settings, corpus_dir: Path, golden: Path, minilm) -> None:
    from index.ingest import ingest
    from rag.pipeline import _shared_checker
    from rag.retrieve import Retriever

    ingest([corpus_dir], settings, embedder=minilm)
    pipe = Pipeline(settings, mode="extractive", retriever=Retriever(settings, embedder=minilm))
    records = {r.id: r for r in run_suite(load_golden(golden), pipe.ask, checker=_shared_checker(),
                                          retriever=pipe.retriever, k=6)}
    s1 = records["s1"]
    assert s1.passed and s1.correct and s1.cited and s1.grounded == 1.0
    assert s1.citation_precision == 1.0 and s1.citation_recall == 1.0 and s1.sentence_scores == [1.0]
    assert s1.retrieval_hit and s1.reciprocal_rank == 1.0 and s1.f1 is not None and s1.f1 > 0
    assert records["s2"].retrieval_hit and records["s2"].passed
    assert records["u1"].passed and records["u1"].refused and records["u1"].retrieval_hit is None
    assert not records["bad"].passed and "no gold answer" in records["bad"].why
    summary = summarize_suite(list(records.values()))
    assert summary["passed"] == 3 and summary["failed_ids"] == ["bad"] and summary["hit_at_k"] == 1.0


def test_cli_suite_writes_report_and_gates(tmp_path: Path, corpus_dir: Path, golden: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    args = ["eval", "suite", "--golden", str(golden), "--corpus", str(corpus_dir), "--mode", "extractive",
            "--runs-dir", str(runs), "--json"]
    assert main([*args, "--no-baseline"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["passed"] == 3 and out["questions"] == 4
    run = Path(out["run"])
    assert {"results.jsonl", "summary.json", "report.md"} <= {p.name for p in run.iterdir()}
    assert list(run.glob("*.png")) and "bad" in (run / "report.md").read_text()
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"suite": {"pass_rate": {"value": 1.0, "tolerance": 0.05,
                                                            "higher_is_better": True}}}))
    assert main([*args, "--baseline", str(baseline)]) == 1  # 0.75 < 1.0 - 0.05
    assert "pass_rate" in capsys.readouterr().err


def test_pytest_eval_runs_one_test_per_question(tmp_path: Path, corpus_dir: Path, golden: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "eval/", "-q", "-p", "no:cacheprovider", "--golden", str(golden),
         "--corpus", str(corpus_dir), "--mode", "extractive"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "test_golden_question[bad]" in out and "1 failed, 3 passed" in out, out
    assert "no gold answer" in out


def test_cli_draft_then_suite(tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A drafted golden set is valid input for the suite."""
    out = tmp_path / "drafted.jsonl"
    assert main(["eval", "draft", "--corpus", str(corpus_dir), "--n", "5", "--out", str(out)]) == 0
    items = load_golden(out)
    assert items and all(i.answerable or not i.answers for i in items)


@pytest.mark.slow
def test_seeds_suite_in_local_mode_holds_its_baseline(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The CI gate: the golden suite on seeds/ with the real local LLM must not fall below eval/baseline.json."""
    from rag.errors import ModelUnavailableError
    from rag.llm_model import resolve_model_path
    from tests.llama_server import model_cache_dir

    try:
        gguf = resolve_model_path("qwen2.5-coder-1.5b", model_cache_dir())
    except ModelUnavailableError as exc:
        pytest.fail(f"{exc.message} ({exc.hint})")
    monkeypatch.setenv("RAG_LLM_MODEL", str(gguf))
    monkeypatch.setenv("RAG_SEEDS_DIR", str(REPO / "seeds"))
    from rag.settings import get_settings

    get_settings.cache_clear()
    code = main(["eval", "suite", "--mode", "local", "--baseline", str(REPO / "eval" / "baseline.json"), "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 0, captured.err
    assert summary["questions"] == 36 and summary["regressions"] == 0 and summary["refusal_accuracy"] == 1.0
