"""BM25 build, atomic publish, load and filtered query."""

from __future__ import annotations

from pathlib import Path

from index.lexical import Bm25Index

TEXTS = {
    "a:0000": "The ferry to Gull Island leaves every two hours from Pier 3.",
    "b:0000": "The library opened in 1908 with a grant from Andrew Carnegie.",
    "c:0000": "Solar panels produce electricity; the array has 4,200 panels.",
}


def build(gen: int = 1) -> Bm25Index:
    return Bm25Index.build(list(TEXTS), list(TEXTS.values()), gen, k1=1.2, b=0.75)


def test_query_ranks_matching_chunk_first_with_stemming():
    hits = build().query("when did the libraries open", k=3)
    assert hits[0][0] == "b:0000"
    assert build().query("panel", k=1)[0][0] == "c:0000"  # stemmed: panels -> panel


def test_unknown_words_and_mask():
    idx = build()
    assert idx.query("xylophone quartz", k=3) == []
    assert [c for c, _ in idx.query("ferry library panels", k=3, allowed=["c:0000"])] == ["c:0000"]
    assert idx.query("ferry", k=3, allowed=["missing"]) == []


def test_save_load_and_generation_pointer(tmp_path: Path):
    build(1).save(tmp_path)
    assert Bm25Index.published_generation(tmp_path) == 1
    build(2).save(tmp_path)
    build(3).save(tmp_path)
    loaded = Bm25Index.load(tmp_path)
    assert loaded is not None and loaded.generation == 3
    assert loaded.query("ferry pier", k=1)[0][0] == "a:0000"
    # only the current and the previous folder are kept
    assert sorted(p.name for p in tmp_path.glob("bm25-*")) == ["bm25-2", "bm25-3"]


def test_empty_index(tmp_path: Path):
    empty = Bm25Index.build([], [], 5, k1=1.2, b=0.75)
    empty.save(tmp_path)
    loaded = Bm25Index.load(tmp_path)
    assert loaded is not None and loaded.query("anything", k=3) == []
    assert Bm25Index.load(tmp_path / "nothing-here") is None
