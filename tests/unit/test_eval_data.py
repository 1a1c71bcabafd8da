"""One JSONL reader and one error type for the harness's data files (eval/data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.data import DataFileError, iter_jsonl
from rag.errors import RagError


def test_rows_come_with_their_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "rows.jsonl"
    p.write_text('{"id": "a"}\n\n   \n{"id": "b"}\n', encoding="utf-8")
    assert list(iter_jsonl(p)) == [(f"{p}:1", {"id": "a"}), (f"{p}:4", {"id": "b"})]


@pytest.mark.parametrize(("line", "message"), [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_a_bad_line_is_a_data_file_error_naming_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    p = tmp_path / "rows.jsonl"
    p.write_text('{"id": "a"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=rf"rows\.jsonl:2: {message}"):
        list(iter_jsonl(p))


def test_every_loader_error_is_one_type() -> None:
    from eval.baseline import BaselineError
    from eval.condense import CanardFormatError
    from eval.golden import GoldenError

    for cls in (GoldenError, CanardFormatError, BaselineError):
        assert issubclass(cls, DataFileError)
    assert issubclass(DataFileError, RagError) and issubclass(DataFileError, ValueError)
    assert DataFileError.http_status == 422


@pytest.mark.parametrize("loader", ["golden", "qa", "queries", "pairs", "canard"])
def test_each_loader_reports_a_broken_line_with_its_location(tmp_path: Path, loader: str) -> None:
    from eval.condense import load_canard
    from eval.golden import load_golden
    from eval.groundedness import load_pairs
    from eval.qa import load_questions
    from eval.retrieval import load_queries

    p = tmp_path / f"{loader}.jsonl"
    p.write_text("{broken\n", encoding="utf-8")
    load = {"golden": load_golden, "qa": load_questions, "queries": load_queries, "pairs": load_pairs,
            "canard": load_canard}[loader]
    with pytest.raises(DataFileError, match=rf"{loader}\.jsonl:1: not valid JSON"):
        load(p)
