"""The answerability decision (rag.answerability): stored calibration, monotone signals, thresholds per mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answerability import ANSWERABILITY_PATH, FEATURES, AnswerabilityModel, question_coverage
from rag.errors import ModelUnavailableError

STRONG = {"sent_top": 8.0, "sent_second": 5.0, "chunk_top": 7.0, "chunk_gap": 4.0, "coverage": 1.0}
WEAK = {"sent_top": -9.0, "sent_second": -10.0, "chunk_top": -8.0, "chunk_gap": 0.1, "coverage": 0.0}


def test_stored_calibration_loads_with_provenance() -> None:
    data = json.loads(ANSWERABILITY_PATH.read_text())
    assert set(data["weights"]) == set(FEATURES)
    assert "bench.calibrate_answerability" in data["_about"]
    model = AnswerabilityModel.load()
    assert 0.0 < model.threshold("local") == model.threshold("hosted") < 1.0
    assert 0.0 < model.threshold("extractive") < 1.0


def test_strong_evidence_is_answerable_and_weak_is_not() -> None:
    model = AnswerabilityModel.load()
    assert model.probability(STRONG) >= model.threshold("extractive")
    assert model.probability(WEAK) < model.threshold("local")


def test_missing_signals_count_as_no_evidence() -> None:
    model = AnswerabilityModel.load()
    assert model.probability({}) < model.threshold("local")


def test_malformed_or_missing_calibration_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="answerability"):
        AnswerabilityModel.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"weights": {"sent_top": 1.0}, "bias": 0, "thresholds": {"llm": 0.5, "extractive": 0.5}}))
    with pytest.raises(ModelUnavailableError, match="malformed"):
        AnswerabilityModel.load(bad)


def test_question_coverage_uses_content_stems() -> None:
    assert question_coverage("What is the default tag length?", "The default tag lengths are 128 bits.") == 1.0
    assert question_coverage("Which company funds it?", "GNOME hosts the project.") == 0.0
    assert question_coverage("What is it?", "anything") == 1.0
