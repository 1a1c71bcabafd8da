"""Retrieval metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from eval.retrieval import load_qrels, mrr_at, ndcg_at, recall_at
from rag.errors import UnreadableDocumentError


def test_ndcg_recall_mrr():
    rels = {"a": 1, "b": 1}
    ranked = ["x", "a", "y", "b"]
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at(ranked, rels, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(["a", "b"], rels, 10) == pytest.approx(1.0)
    assert recall_at(ranked, rels, 2) == 0.5 and recall_at(ranked, rels, 10) == 1.0
    assert mrr_at(ranked, rels, 10) == 0.5 and mrr_at(["x"], rels, 10) == 0.0


def test_qrels_header_checked(tmp_path):
    bad = tmp_path / "q.tsv"
    bad.write_text("a\tb\tc\n1\t2\t1\n")
    with pytest.raises(UnreadableDocumentError, match="header"):
        load_qrels(bad)
