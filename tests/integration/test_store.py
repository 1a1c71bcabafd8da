"""Real Chroma on a temporary directory, fed hand-written vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.store import ChromaStore
from rag.types import Chunk


def chunk(doc: str, i: int, source: str = "/docs/a.txt") -> Chunk:
    return Chunk(id=f"{doc}:{i:04d}", doc_id=doc, ordinal=i, text=f"text {doc} {i}", start=0, end=10,
                 source=source, title="T")


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def store(tmp_path: Path) -> ChromaStore:
    return ChromaStore(tmp_path / "chroma", "test-coll")


def test_upsert_is_idempotent_and_query_ranks_by_cosine(store: ChromaStore):
    chunks = [chunk("d1", 0), chunk("d1", 1), chunk("d2", 0, "/docs/b.txt")]
    vecs = np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(1, 1, 0, 0)])
    store.upsert(chunks, vecs)
    store.upsert(chunks, vecs)
    assert store.count() == 3
    got = store.query(unit(1, 0.1, 0, 0), k=3)
    assert [cid for cid, _ in got] == ["d1:0000", "d2:0000", "d1:0001"]
    assert got[0][1] == pytest.approx(float(unit(1, 0.1, 0, 0) @ vecs[0]), abs=1e-4)


def test_source_filter_and_delete_documents(store: ChromaStore):
    chunks = [chunk("d1", 0), chunk("d1", 1), chunk("d2", 0, "/docs/b.txt")]
    store.upsert(chunks, np.stack([unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(1, 1, 0, 0)]))
    only_b = store.query(unit(1, 0, 0, 0), k=3, sources=["/docs/b.txt"])
    assert [cid for cid, _ in only_b] == ["d2:0000"]
    store.delete_documents(["d1"])
    assert store.ids() == {"d2:0000"}


def test_reopen_persists(tmp_path: Path):
    a = ChromaStore(tmp_path / "chroma", "persist")
    a.upsert([chunk("d1", 0)], np.stack([unit(0, 0, 1, 0)]))
    b = ChromaStore(tmp_path / "chroma", "persist")
    assert b.ids() == {"d1:0000"}


def test_mismatched_lengths_rejected(store: ChromaStore):
    with pytest.raises(ValueError, match="2 chunks but 1 vectors"):
        store.upsert([chunk("d1", 0), chunk("d1", 1)], np.stack([unit(1, 0, 0, 0)]))


def test_empty_collection_query(store: ChromaStore):
    assert store.query(unit(1, 0, 0, 0), k=5) == []
