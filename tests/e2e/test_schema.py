"""Schemathesis against /openapi.json: generated requests (valid and invalid) never get a 5xx.

The app runs in-process (ASGI) on its own data dir indexed from the small corpus, in extractive mode, with an API
key; uploads and deletions hit the real index. The examples per operation are bounded to keep the run to a few
minutes; `slow` because each accepted question runs the real cross-encoder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from rag.settings import Settings
from rag.testing import ScriptedChatModel
from tests.conftest import FIXTURES
from ui.api import create_app
from ui.service import Service

KEY = "sk-schema-" + "y" * 20


# The app is built at import (schemathesis reads its schema at collection); its service starts in the fixture.
_ROOT = Path(tempfile.gettempdir()) / f"rag-schema-{os.getpid()}"  # created by the fixture, only when the test runs
_CFG = Settings(data_dir=_ROOT / "data", seeds_dir=_ROOT / "seeds", answer_mode="extractive", api_key=KEY,
                max_upload_mb=0.2, request_timeout_s=60)
# The LLM modes get a scripted model that always says NOT FOUND: this test is about HTTP handling, and the real
# local LLM (7 s a question) would allow only a handful of examples. The real models answer in test_server.py.
_SERVICE = Service(_CFG, llm=ScriptedChatModel(default="NOT FOUND"))
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_CFG, service=_SERVICE, with_ui=False,
                                                                   start=False))


@pytest.fixture(scope="module", autouse=True)
def _started(minilm):
    from rag.retrieve import Retriever

    shutil.copytree(FIXTURES / "corpus", _ROOT / "seeds")
    _SERVICE._injected_retriever = Retriever(_CFG, embedder=minilm)
    _SERVICE.start()
    assert _SERVICE.readiness.ready, _SERVICE.readiness.error
    yield
    _SERVICE.close()
    shutil.rmtree(_ROOT, ignore_errors=True)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:  # type: ignore[no-untyped-def]
    for headers in ({"Authorization": f"Bearer {KEY}"}, {}):
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
        ctype = response.headers.get("content-type") or ""
        ctype = ctype[0] if isinstance(ctype, list) else ctype
        if response.status_code >= 400 and ctype.startswith("application/json"):
            body = response.json()
            assert {"error", "message"} <= set(body), body
