"""BM25 over the same chunks as the vector store: the home of ``bm25s``.

Built from the manifest's chunk texts and saved as a new folder ``bm25-<generation>``; a small pointer
file is then replaced atomically, so a reader always loads a complete index and is never blocked.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def _bm25s():
    """Import bm25s, which sets its own logger to DEBUG on import; keep it quiet."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s

POINTER = "bm25.json"


def _stemmer():
    try:
        import Stemmer

        return Stemmer.Stemmer("english").stemWords
    except ImportError:  # pragma: no cover - PyStemmer is a declared dependency
        return None


def _tokenize(texts: Sequence[str], stemmer) -> list[list[str]]:
    return _bm25s().tokenize(list(texts), stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)


class Bm25Index:
    """A loaded BM25 index with its chunk ids (position i of the index is ``ids[i]``)."""

    def __init__(self, retriever, ids: list[str], generation: int) -> None:
        self._retriever = retriever
        self.ids = ids
        self.generation = generation
        self._pos = {cid: i for i, cid in enumerate(ids)}
        self._stemmer = _stemmer()
        self._vocab = retriever.vocab_dict if retriever is not None else {}

    @classmethod
    def build(cls, ids: list[str], texts: list[str], generation: int, *, k1: float, b: float) -> Bm25Index:
        if not ids:
            return cls(None, [], generation)
        retriever = _bm25s().BM25(k1=k1, b=b, method="lucene")
        retriever.index(_tokenize(texts, _stemmer()), show_progress=False)
        return cls(retriever, ids, generation)

    def save(self, index_dir: Path) -> None:
        """Write to a fresh folder, then swap the pointer; older folders (but the previous) are removed."""
        folder = index_dir / f"bm25-{self.generation}"
        tmp = index_dir / f".bm25-{self.generation}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._retriever is not None:
            self._retriever.save(str(tmp), show_progress=False)
        (tmp / "ids.json").write_text(json.dumps(self.ids))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        pointer_tmp = index_dir / f".{POINTER}.tmp-{os.getpid()}"
        previous = _read_pointer(index_dir)
        pointer_tmp.write_text(json.dumps({"generation": self.generation, "folder": folder.name}))
        os.replace(pointer_tmp, index_dir / POINTER)
        keep = {folder.name, previous["folder"] if previous else ""}
        for old in index_dir.glob("bm25-*"):
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, index_dir: Path) -> Bm25Index | None:
        bm25s = _bm25s()
        pointer = _read_pointer(index_dir)
        if pointer is None:
            return None
        folder = index_dir / pointer["folder"]
        try:
            ids = json.loads((folder / "ids.json").read_text())
            retriever = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0) if ids else None
        except (OSError, ValueError) as exc:
            logger.warning("BM25 index at %s is unreadable (%s); it will be rebuilt", folder, exc)
            return None
        return cls(retriever, ids, int(pointer["generation"]))

    @staticmethod
    def published_generation(index_dir: Path) -> int | None:
        """Generation of the index the pointer names (a cheap read), or None."""
        pointer = _read_pointer(index_dir)
        return int(pointer["generation"]) if pointer else None

    def query(self, text: str, k: int, *, allowed: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Best chunks for ``text`` as ``(chunk_id, bm25 score)``; ``allowed`` restricts to these chunk ids."""
        if self._retriever is None or not self.ids:
            return []
        tokens = [t for t in _tokenize([text], self._stemmer)[0] if t in self._vocab]
        if not tokens:
            return []
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self.ids), dtype=np.float32)
            for cid in allowed:
                pos = self._pos.get(cid)
                if pos is not None:
                    mask[pos] = 1.0
            if not mask.any():
                return []
        k = min(k, len(self.ids))
        docs, scores = self._retriever.retrieve(
            [tokens], k=k, show_progress=False, n_threads=1, weight_mask=mask
        )
        out = []
        for pos, score in zip(docs[0], scores[0], strict=True):
            if score > 0:
                out.append((self.ids[int(pos)], float(score)))
        return out


def _read_pointer(index_dir: Path) -> dict | None:
    try:
        data = json.loads((index_dir / POINTER).read_text())
        return data if (index_dir / data["folder"]).is_dir() else None
    except (OSError, ValueError, KeyError):
        return None
