"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

import rag  # noqa: F401 - its import sets the offline environment (rag/__init__.py OFFLINE_ENV) for every benchmark

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SCIFACT = Path(os.environ.get("RAG_BENCH_SCIFACT", SHARED / "data" / "scifact"))


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1] if len(ordered) > 1 else ordered[0]
