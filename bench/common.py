"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import rag  # noqa: F401 - its import sets the offline environment (rag/__init__.py OFFLINE_ENV) for every benchmark
from eval.metrics import percentile as percentile  # the one percentile (eval/metrics.py)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SCIFACT = Path(os.environ.get("RAG_BENCH_SCIFACT", SHARED / "data" / "scifact"))


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


