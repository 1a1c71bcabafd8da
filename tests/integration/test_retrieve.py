"""Dense, BM25 and hybrid retrieval over a real index."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.ingest import ingest
from rag.errors import BadQueryError
from rag.retrieve import Retriever, fuse
from rag.settings import Settings


@pytest.fixture
def retriever(settings: Settings, corpus_dir: Path, minilm) -> Retriever:
    ingest([corpus_dir], settings, embedder=minilm)
    return Retriever(settings, embedder=minilm)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("who is the head librarian", "library.md"),
        ("how many solar panels does the array have", "solar.txt"),
        ("when does the ferry to Gull Island leave", "harbor.html"),
    ],
)
def test_each_mode_finds_the_right_document(retriever: Retriever, mode: str, query: str, expected: str):
    hits = retriever.search(query, k=3, mode=mode)  # type: ignore[arg-type]
    assert Path(hits[0].chunk.source).name == expected
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(h.stage == mode for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hits_quote_exact_document_spans(retriever: Retriever):
    for h in retriever.search("library opening hours", k=3):
        text = Path(h.chunk.source).read_text() if not h.chunk.source.endswith(".html") else None
        if text is not None:
            assert text[h.chunk.start : h.chunk.end] == h.chunk.text


def test_source_filter(retriever: Retriever, corpus_dir: Path):
    src = str(corpus_dir / "solar.txt")
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search("library ferry panels", k=5, mode=mode, sources=[src])  # type: ignore[arg-type]
        assert hits and {h.chunk.source for h in hits} == {src}


@pytest.mark.parametrize("bad", ["", "   ", "a\x00b", "x" * 5000])
def test_bad_queries(retriever: Retriever, bad: str):
    with pytest.raises(BadQueryError):
        retriever.search(bad)


def test_bad_arguments(retriever: Retriever):
    with pytest.raises(ValueError, match="mode"):
        retriever.search("ferry", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be > 0"):
        retriever.search("ferry", k=-2)


def test_empty_index_returns_nothing(settings: Settings, minilm):
    r = Retriever(settings, embedder=minilm)
    assert r.search("anything at all", mode="hybrid") == []


def test_fuse_weights_and_ties():
    fused = fuse([(["a", "b", "c"], 1.0), (["c", "b"], 1.0)], k=60)
    assert [cid for cid, _ in fused] == ["c", "b", "a"]  # 1/63 + 1/61 > 1/62 + 1/62
    only_dense = fuse([(["a", "b"], 1.0), (["b", "a"], 0.0)], k=60)
    assert [cid for cid, _ in only_dense] == ["a", "b"]
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61) and fused[1][1] == pytest.approx(2 / 62)


def test_reader_picks_up_new_documents(settings: Settings, corpus_dir: Path, minilm):
    ingest([corpus_dir], settings, embedder=minilm)
    r = Retriever(settings, embedder=minilm)
    assert (r.search("marathon October", mode="bm25") == []
            or "marathon" not in r.search("marathon", mode="bm25")[0].chunk.text)
    (corpus_dir / "marathon.txt").write_text("The Eastbrook marathon is held every October along the harbor.")
    ingest([corpus_dir], settings, embedder=minilm)
    assert "marathon" in r.search("marathon October", mode="bm25", k=1)[0].chunk.text


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_seed_question_finds_the_answer_passage(settings: Settings, minilm, mode: str):
    from tests.conftest import REPO

    ingest([REPO / "seeds"], settings, embedder=minilm)
    hits = Retriever(settings, embedder=minilm).search("Who commanded the Revolutionary Guard Corps?", k=3, mode=mode)  # type: ignore[arg-type]
    assert any("Hossein Salami" in h.chunk.text for h in hits)
