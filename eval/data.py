"""Reading the evaluation sets: one JSONL reader and one error type for every data file of the harness.

Every loader (golden sets, SQuAD questions, BEIR queries, groundedness pairs, CANARD rows) reads its lines with
:func:`iter_jsonl` and reports a bad line as a :class:`DataFileError` whose message starts with ``file:line:``. The
loaders' own error names (``GoldenError``, ``CanardFormatError``) are subclasses, so callers can catch either.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.errors import UnreadableDocumentError

__all__ = ["DataFileError", "iter_jsonl"]


class DataFileError(UnreadableDocumentError, ValueError):
    """A data file of the harness that cannot be used as it is (HTTP 422 where it reaches the server; a
    ``ValueError`` for callers that validate input). The message starts with ``file:line:``."""


def iter_jsonl(path: str | Path, *, error: type[DataFileError] = DataFileError,
               ) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every non-blank line of a JSONL file, ``where`` being ``"file:line"``.

    Raises:
        error (a :class:`DataFileError`): a line that is not JSON, or not a JSON object.
        OSError: the file cannot be opened (loaders check existence first, with their own hint).
    """
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise error(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise error(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row
