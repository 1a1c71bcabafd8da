"""The models of one process, built in one place: the composition root each entry point creates once.

The CLI (``rag.commands``), the server (``ui.service``) and the harness (``eval``) each build one :class:`Models` and
hand it to every :class:`~rag.pipeline.Pipeline` they make, so a process holds one MiniLM, one cross-encoder, one
support checker and one LLM per answer mode, whatever number of pipelines (indexes, modes) it serves. Nothing is a
module-level singleton: two ``Models`` are two sets of models (tests build their own, or inject fakes).

Each model is built on first use (``import rag`` stays light) and counted in :attr:`Models.built`, so a test can
check that nothing is built twice.

Example:
    >>> models = Models(get_settings())
    >>> local = Pipeline(settings, mode="local", models=models)
    >>> extractive = Pipeline(settings, mode="extractive", models=models)   # same cross-encoder and embedder
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rag.settings import AnswerMode, Settings

if TYPE_CHECKING:
    from index.embed import Embedder
    from rag.rerank import CrossEncoderReranker
    from rag.support import SupportChecker

__all__ = ["Models", "make_chat_model"]


def make_chat_model(settings: Settings, mode: AnswerMode) -> Any:
    """A new LLM for ``mode`` (None for extractive): the local GGUF (llama.cpp) or the hosted endpoint.

    Raises:
        ModelUnavailableError: the model cannot be found, or hosted mode has no endpoint.
        ValueError: an unknown mode.
    """
    if mode == "extractive":
        return None
    if mode == "local":
        from rag.llm_model import LocalChatModel, default_cache_dir, resolve_model_path

        path = resolve_model_path(settings.llm_model, default_cache_dir(settings))
        return LocalChatModel(str(path), n_ctx=settings.llm_n_ctx, n_threads=settings.llm_threads)
    if mode == "hosted":
        from rag.errors import ModelUnavailableError
        from rag.hosted import HostedChatModel

        if not settings.hosted_base_url:
            raise ModelUnavailableError(
                "hosted mode needs an endpoint", hint="set RAG_HOSTED_BASE_URL (e.g. http://127.0.0.1:8000/v1)"
            )
        key = settings.hosted_api_key.get_secret_value() if settings.hosted_api_key else None
        return HostedChatModel(settings.hosted_base_url, settings.hosted_model, api_key=key,
                               timeout=settings.hosted_timeout_s)
    raise ValueError(f"mode must be local, hosted or extractive, got {mode!r}")


class Models:
    """One embedder, one cross-encoder, one support checker and one LLM per mode, built on first use.

    Args:
        settings: where the models come from (``embed_model``, ``llm_model``, ``hosted_*``, ...).
        embedder, reranker, checker: ready-made parts (tests, or a caller that already holds them).
        llms: ready-made chat models by mode (``{"local": fake}``); the others are built from the settings.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        reranker: CrossEncoderReranker | None = None,
        checker: SupportChecker | None = None,
        llms: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self._embedder = embedder
        self._reranker = reranker
        self._checker = checker
        self._llms: dict[str, Any] = dict(llms or {})
        self.built: Counter[str] = Counter()
        self._lock = threading.RLock()

    @property
    def embedder(self) -> Embedder:
        """The sentence embedder of the index (``RAG_EMBED_MODEL``)."""
        with self._lock:
            if self._embedder is None:
                from index.embed import make_embedder

                s = self.settings
                self._embedder = make_embedder(s.embed_model, batch_size=s.embed_batch_size,
                                               onnx_cache=s.data_dir / "models")
                self.built["embedder"] += 1
            return self._embedder

    @property
    def reranker(self) -> CrossEncoderReranker:
        """The cross-encoder (ms-marco MiniLM-L-12, int8 ONNX) that reranks chunks and scores sentences."""
        with self._lock:
            if self._reranker is None:
                from rag.rerank import CrossEncoderReranker

                self._reranker = CrossEncoderReranker()
                self.built["reranker"] += 1
            return self._reranker

    @property
    def checker(self) -> SupportChecker:
        """The support checker. It shares the cross-encoder's loaded sessions (scoring one pair per call, as its
        calibration needs) and, when the index embeds with MiniLM, the embedder."""
        with self._lock:
            if self._checker is None:
                from index.embed import MINILM_ALIASES
                from rag.support import SupportChecker

                reranker = self.reranker
                reranker.warm_up()
                one_pair = copy.copy(reranker)  # the same ONNX sessions, batch-independent scores
                one_pair.batch_size = 1
                embedder = self.embedder if self.settings.embed_model in MINILM_ALIASES else None
                self._checker = SupportChecker(reranker=one_pair, embedder=embedder)
                self.built["checker"] += 1
            return self._checker

    def llm(self, mode: AnswerMode) -> Any:
        """The chat model of ``mode`` (None in extractive mode), built once."""
        if mode == "extractive":
            return None
        with self._lock:
            if mode not in self._llms:
                self._llms[mode] = make_chat_model(self.settings, mode)
                self.built[f"llm:{mode}"] += 1
            return self._llms[mode]
