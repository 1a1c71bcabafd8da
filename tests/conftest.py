"""Shared fixtures: offline, isolated settings, real packaged models, small corpora."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import json
import shutil
from pathlib import Path

import pytest

from rag.settings import Settings, get_settings

pytest_plugins = ["tests.llama_server", "tests.rag_server"]

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """No RAG_* variable or .env from the developer leaks in; the data dir is per test."""
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 from its package, loaded once per test session."""
    from index.embed import make_embedder

    embedder = make_embedder("all-MiniLM-L6-v2")
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def models(minilm, tmp_path_factory):
    """The test session's models (rag.models.Models): the session MiniLM, one cross-encoder, one checker."""
    from rag.models import Models
    from rag.settings import Settings

    return Models(Settings(data_dir=tmp_path_factory.mktemp("models")), embedder=minilm)


class CountingEmbedder:
    """Wraps a real embedder and counts the texts it embedded."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[int] = []

    @property
    def embedded(self) -> int:
        return sum(self.calls)

    def embed_documents(self, texts):
        self.calls.append(len(texts))
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.fixture
def counting(minilm) -> CountingEmbedder:
    return CountingEmbedder(minilm)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A copy of the small text corpus, safe to modify."""
    dst = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "corpus", dst)
    return dst


@pytest.fixture
def beir_set(tmp_path: Path) -> dict[str, Path]:
    """A tiny BEIR-format set: corpus.jsonl, queries.jsonl, qrels TSV."""
    d = tmp_path / "beir"
    d.mkdir()
    docs = [
        ("d1", "Photosynthesis", "Plants convert sunlight, water and carbon dioxide into glucose and oxygen."),
        ("d2", "Volcanoes", "Magma rises through the crust and erupts as lava, ash and volcanic gases."),
        ("d3", "Honeybees", "Worker bees collect nectar and pollen and communicate with a waggle dance."),
        ("d4", "Tides", "The gravitational pull of the moon causes the rise and fall of sea levels."),
    ]
    with (d / "corpus.jsonl").open("w") as fh:
        for _id, title, text in docs:
            fh.write(json.dumps({"_id": _id, "title": title, "text": text}) + "\n")
    queries = [("q1", "how do plants make oxygen from sunlight"), ("q2", "what makes the sea level rise and fall"),
               ("q3", "how do bees communicate")]
    with (d / "queries.jsonl").open("w") as fh:
        for _id, text in queries:
            fh.write(json.dumps({"_id": _id, "text": text}) + "\n")
    (d / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td4\t1\nq3\td3\t1\n")
    return {"corpus": d / "corpus.jsonl", "queries": d / "queries.jsonl", "qrels": d / "qrels.tsv"}
