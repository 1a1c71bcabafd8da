"""One typed settings object: environment variables with prefix ``RAG_`` and an optional ``.env``.

Only entry points call :func:`get_settings`; everything else takes a ``settings`` argument.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RetrievalMode = Literal["dense", "bm25", "hybrid"]
AnswerMode = Literal["local", "hosted", "extractive"]


class Settings(BaseSettings):
    """Every knob of the product. Each field is the env var ``RAG_<FIELD NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- where things live
    data_dir: Path = Field(Path(".rag"), description="Chroma (embedded), BM25 index, manifests, model cache")
    seeds_dir: Path = Field(Path("seeds"), description="default folder indexed by `rag index` and the server")
    index_name: str = Field("default", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,40}$",
                            description="logical index; its collection name adds a fingerprint of the models")
    chroma_url: str | None = Field(
        None, description="Chroma server URL (http://host:port); unset: embedded Chroma under data_dir")

    # --- documents and chunks
    chunk_size: int = Field(256, gt=16, le=8192, description="chunk size in tokens (llama-index SentenceSplitter)")
    chunk_overlap: int = Field(32, ge=0, description="overlap between chunks in tokens")
    max_file_mb: float = Field(50.0, gt=0, description="files larger than this are reported and skipped")

    # --- embeddings
    embed_model: str = Field(
        "all-MiniLM-L6-v2",
        description="'all-MiniLM-L6-v2' (packaged), 'bge-small-en-v1.5' (packaged int8 ONNX), "
        "or any sentence-transformers model directory",
    )
    embed_batch_size: int = Field(32, gt=0, le=4096, description="texts per embedding batch")
    embed_title: bool = Field(True, description="prefix each chunk with its document title when embedding and in BM25")
    ingest_group_chunks: int = Field(
        1024, gt=0, description="chunks embedded and committed together; a crash loses at most one group"
    )

    # --- retrieval
    retrieval_mode: RetrievalMode = Field("hybrid", description="dense | bm25 | hybrid")
    top_k: int = Field(5, gt=0, le=1000, description="passages returned by search")
    candidates: int = Field(100, gt=0, le=2000, description="candidates per method before hybrid fusion")
    rrf_k: float = Field(60.0, gt=0, description="reciprocal rank fusion constant")
    dense_weight: float = Field(1.0, ge=0, description="weight of the dense ranking in hybrid fusion")
    bm25_weight: float = Field(1.0, ge=0, description="weight of the BM25 ranking in hybrid fusion")
    bm25_k1: float = Field(1.2, gt=0, description="BM25 term-frequency saturation")
    bm25_b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation")

    # --- answering (rag/pipeline.py)
    answer_mode: AnswerMode = Field(
        "local", description="local (llama.cpp) | hosted (OpenAI-compatible endpoint) | extractive (no LLM)"
    )
    rerank_candidates: int = Field(12, gt=0, le=200, description="hybrid hits scored by the cross-encoder")
    evidence_chunks: int = Field(6, gt=0, le=20, description="best reranked chunks whose sentences are scored")
    evidence_sentences: int = Field(6, gt=0, le=20, description="best sentences shown to the LLM as numbered evidence")
    gate_threshold: float | None = Field(
        None, ge=0, le=1,
        description="answerability threshold in the LLM modes: refuse without calling the LLM when P(answerable) "
        "(rag/answerability.py) is below it. Unset: the calibrated value stored in rag/answerability.json",
    )
    extractive_gate_threshold: float | None = Field(
        None, ge=0, le=1,
        description="the same in extractive mode, where it is the only refusal signal. Unset: the calibrated value",
    )
    answer_spans: bool = Field(
        True,
        description="local LLM: constrain the reply to a verbatim span of the evidence (or NOT FOUND) with a "
        "grammar built from the evidence",
    )
    llm_check: bool = Field(
        True,
        description="local mode: after verification, ask the LLM whether the cited passage states the answer as the "
        "answer to the question (one short yes/no step on the cached prompt); an answer it rejects is dropped",
    )
    not_found_floor: float | None = Field(
        None, ge=0, le=1,
        description="local mode with answer spans: refuse (not_found) when the LLM's own probability of starting "
        "its reply with NOT FOUND reaches this; below it the reply is forced to a span of the evidence, which the "
        "acceptance model then keeps or drops. Unset: the calibrated value in rag/answerability.json",
    )
    accept_threshold: float | None = Field(
        None, ge=0, le=1,
        description="local mode with answer spans: keep a span only when the calibrated acceptance model "
        "(rag/answerability.py) gives at least this probability that it answers the question. Unset: calibrated",
    )
    relevance_floor: float | None = Field(
        None,
        description="question-aware verification: an answer is shown only when the evidence sentence it comes "
        "from scores at least this cross-encoder logit against the question. Unset: the calibrated value",
    )
    max_question_chars: int = Field(2000, gt=0, le=100_000, description="longer questions are rejected (400)")
    llm_model: str = Field(
        "qwen2.5-coder-1.5b",
        description="local GGUF: 'qwen2.5-coder-1.5b' (packaged, default), 'qwen2.5-coder-0.5b' (packaged, faster) "
        "or a path to any .gguf file",
    )
    llm_n_ctx: int = Field(4096, ge=256, le=131072, description="local LLM context window (tokens)")
    llm_threads: int | None = Field(None, gt=0, description="local LLM CPU threads (default: all cores)")
    llm_max_tokens: int = Field(160, gt=0, le=4096, description="longest answer the LLM may write (tokens)")
    hosted_base_url: str | None = Field(None, description="OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1")
    hosted_api_key: SecretStr | None = Field(None, description="API key for the hosted endpoint (sent as Bearer)")
    hosted_model: str = Field("default", description="model name sent to the hosted endpoint")
    hosted_timeout_s: float = Field(120.0, gt=0, description="hosted request timeout (seconds)")


    # --- the server (ui/api.py: `rag serve`)
    host: str = Field("127.0.0.1", description="address `rag serve` listens on")
    port: int = Field(8000, ge=0, le=65535, description="port `rag serve` listens on")
    api_key: SecretStr | None = Field(
        None, description="when set, every API route needs `Authorization: Bearer <key>` (the UI asks for it too)"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed by CORS, as a JSON list; empty: CORS off"
    )
    max_body_kb: int = Field(256, gt=0, description="largest JSON request body (413 beyond)")
    max_upload_mb: float = Field(20.0, gt=0, description="largest uploaded document (413 beyond)")
    llm_queue_size: int = Field(
        4, ge=0, le=1000,
        description="local-LLM requests that may wait while one runs; beyond that the API answers 503 + Retry-After",
    )
    answer_workers: int = Field(
        2, gt=0, le=64, description="questions prepared (retrieval, reranking) at the same time; others wait"
    )
    request_timeout_s: float = Field(120.0, gt=0, description="a request running longer is stopped (504)")
    rate_limit_per_minute: int = Field(
        0, ge=0, description="requests per minute per client (API key or address) on the question routes; 0: off"
    )

    @field_validator("chroma_url", "hosted_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {v!r}")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _overlap(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self

    def index_fingerprint(self) -> str:
        """Hash of everything that changes stored vectors or chunk boundaries."""
        keys = self.model_dump(include={"embed_model", "chunk_size", "chunk_overlap", "embed_title"})
        keys["chunker"] = "llama-index-sentence-splitter-v2-structured-text-sections"
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:10]

    def collection_name(self, index_name: str | None = None) -> str:
        """The Chroma collection (and local index folder) name for ``index_name``."""
        return f"{index_name or self.index_name}-{self.index_fingerprint()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (entry points only)."""
    return Settings()
