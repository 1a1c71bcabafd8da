"""`pytest eval/`: the golden set as a test suite, one test per golden question (the test id is the question id).

    pytest eval/                                               # seeds/ with eval/golden/seeds.jsonl, local mode
    pytest eval/ --golden my_golden.jsonl --corpus my_docs/ --mode extractive
    RAG_EVAL_GOLDEN=... RAG_EVAL_CORPUS=... RAG_EVAL_MODE=... pytest eval/

Each test asks its question through the real pipeline (follow-ups get their conversation's earlier turns, answered
by the pipeline first) and asserts: answerable -> correct, cited, every shown sentence supported by its citations;
unanswerable -> refused. The corpus is indexed into an index of its own (incremental: cheap when unchanged).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("golden suite (pytest eval/)")
    group.addoption("--golden", default=os.environ.get("RAG_EVAL_GOLDEN"),
                    help="golden JSONL (default eval/golden/seeds.jsonl; env RAG_EVAL_GOLDEN)")
    group.addoption("--corpus", default=os.environ.get("RAG_EVAL_CORPUS"),
                    help="documents the golden set is about (default seeds/; env RAG_EVAL_CORPUS)")
    group.addoption("--mode", default=os.environ.get("RAG_EVAL_MODE"),
                    help="answer mode: local | hosted | extractive (default RAG_ANSWER_MODE; env RAG_EVAL_MODE)")


def _golden_path(config: pytest.Config) -> Path:
    from eval.golden import SEEDS_GOLDEN

    value = config.getoption("--golden")
    return Path(value) if value else SEEDS_GOLDEN


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "golden_id" in metafunc.fixturenames:
        from eval.golden import load_golden

        items = load_golden(_golden_path(metafunc.config))
        metafunc.parametrize("golden_id", [i.id for i in items], ids=[i.id for i in items])


class SuiteRunner:
    """Runs the golden items in file order, once each, and keeps their records (a follow-up runs its earlier turns
    first, whatever order the tests are selected in)."""

    def __init__(self, config: pytest.Config) -> None:
        from eval.golden import load_golden
        from index.ingest import ingest
        from rag.models import Models
        from rag.pipeline import Pipeline
        from rag.settings import Settings

        settings = Settings()
        corpus = Path(config.getoption("--corpus") or settings.seeds_dir).resolve()
        if not corpus.exists():
            corpus = (REPO / "seeds").resolve() if not config.getoption("--corpus") else corpus
        index_name = "golden-" + hashlib.sha256(str(corpus).encode()).hexdigest()[:10]
        ingest([corpus], settings, index_name=index_name)
        self.items = load_golden(_golden_path(config))
        models = Models(settings)
        self.pipeline = Pipeline(settings, index_name=index_name, mode=config.getoption("--mode") or None,
                                 models=models)
        self.pipeline.warm_up()
        self.checker = models.checker
        self.records: dict[str, Any] = {}

    def record(self, golden_id: str) -> Any:
        from eval.suite import run_suite

        if golden_id not in self.records:
            target = next(item for item in self.items if item.id == golden_id)
            # a conversation is asked whole, in order, the first time one of its turns is needed
            pending = ([it for it in self.items if it.conversation == target.conversation]
                       if target.conversation is not None else [target])
            for rec in run_suite(pending, self.pipeline.ask, checker=self.checker, retriever=self.pipeline.retriever,
                                 candidates=self.pipeline.settings.rerank_candidates):
                self.records[rec.id] = rec
        return self.records[golden_id]


@pytest.fixture(scope="session")
def suite(request: pytest.FixtureRequest) -> SuiteRunner:
    return SuiteRunner(request.config)
