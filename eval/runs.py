"""The output convention of every `rag eval` command: a run folder with results, summary and report.

    eval/runs/<utc-timestamp>/results.jsonl   one JSON object per evaluated item
                              summary.json    the figures (what `--json` prints as the last stdout line)
                              report.md       the human-readable report

The root is ``eval/runs`` under the working directory, or ``RAG_EVAL_RUNS_DIR``, or the command's ``--runs-dir``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("eval") / "runs"


class RunFolder:
    """A new, uniquely named folder for one evaluation run."""

    def __init__(self, kind: str, root: Path | None = None) -> None:
        root = Path(root or os.environ.get("RAG_EVAL_RUNS_DIR") or DEFAULT_ROOT)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = root / stamp
        n = 1
        while True:
            try:
                path.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                n += 1
                path = root / f"{stamp}-{n}"
        self.path = path
        self.kind = kind

    def write_results(self, records: Iterable[dict[str, Any]]) -> Path:
        out = self.path / "results.jsonl"
        with out.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False, default=_jsonable) + "\n")
        return out

    def write_summary(self, summary: dict[str, Any]) -> Path:
        out = self.path / "summary.json"
        out.write_text(json.dumps({"kind": self.kind, **summary}, indent=2, default=_jsonable) + "\n",
                       encoding="utf-8")
        return out

    def write_report(self, markdown: str) -> Path:
        out = self.path / "report.md"
        out.write_text(markdown, encoding="utf-8")
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
