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


# --------------------------------------------------------------------------- acceptance of drafted spans

def _with_accept(weights: dict[str, float], bias: float = 0.0, threshold: float = 0.5) -> dict:
    data = json.loads(ANSWERABILITY_PATH.read_text())
    data["accept"] = {"weights": weights, "bias": bias, "threshold": threshold}
    return data


def test_acceptance_model_reads_its_block_and_is_monotone() -> None:
    from rag.answerability import ACCEPT_FEATURES

    weights = dict.fromkeys(ACCEPT_FEATURES, 0.0) | {"relevance": 1.0, "entity_miss": -2.0}
    model = AnswerabilityModel.from_dict(_with_accept(weights, threshold=0.4))
    assert model.thresholds["accept"] == 0.4
    on_topic = model.accept({"relevance": 3.0, "entity_miss": 0.0})
    off_topic = model.accept({"relevance": 3.0, "entity_miss": 3.0})
    assert on_topic is not None and off_topic is not None and on_topic > 0.9 > 0.1 > off_topic


def test_without_an_acceptance_block_there_is_no_acceptance_model() -> None:
    data = json.loads(ANSWERABILITY_PATH.read_text())
    data.pop("accept", None)
    assert AnswerabilityModel.from_dict(data).accept({"relevance": 1.0}) is None


def test_malformed_acceptance_block_is_a_clear_error() -> None:
    with pytest.raises(ModelUnavailableError, match="accept"):
        AnswerabilityModel.from_dict(_with_accept({"relevance": 1.0}))  # the other features are missing


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("What range of key lengths does Libgcrypt accept for Blowfish?", ["Libgcrypt", "Blowfish"]),
        ("Which header declares SM4 in Nettle?", ["SM4", "Nettle"]),
        ("Am I violating GPLv3 on x86_64?", ["GPLv3", "x86_64"]),
        ("When did the FIPS state change in version 2.0?", ["FIPS", "2.0"]),
        ("What is the default tag length?", []),  # the first word is not a name
        ("Is Bob's licence valid?", ["Bob"]),  # possessive dropped
    ],
)
def test_question_entities(question: str, names: list[str]) -> None:
    from rag.answerability import question_entities

    assert question_entities(question) == names


def test_entity_miss_counts_names_the_text_never_mentions() -> None:
    from rag.answerability import entity_miss

    q = "Which header file declares the SM4 block cipher in Nettle?"
    assert entity_miss(q, "Nettle manual > SHA2. Nettle defined SHA256 in <nettle/sha.h>.") == 1  # no SM4
    assert entity_miss(q, "nettle > Cipher functions. SM4 is declared in <nettle/sm4.h>.") == 0  # case folded
    assert entity_miss("Am I violating GPLv3?", "GNU GPL, version 3") == 0  # GPLv3 -> GPL + 3
    assert entity_miss("Does MPL-covered code qualify?", "Mozilla licence text") == 1
