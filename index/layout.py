"""Where one index lives: its Chroma collection, manifest, BM25 folder and writer lock."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.manifest import Manifest
from index.store import ChromaStore
from rag.errors import IndexLockedError
from rag.settings import Settings


@dataclass
class IndexLayout:
    """The parts of one named index. The Chroma store opens lazily (it is the slow part)."""

    settings: Settings
    name: str
    _store: ChromaStore | None = field(default=None, init=False, repr=False)
    _manifest: Manifest | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, settings: Settings, index_name: str | None = None) -> IndexLayout:
        return cls(settings, index_name or settings.index_name)

    @property
    def collection(self) -> str:
        return self.settings.collection_name(self.name)

    @property
    def dir(self) -> Path:
        return self.settings.data_dir / "indexes" / self.collection

    @property
    def chroma_dir(self) -> Path:
        return self.settings.data_dir / "chroma"

    @property
    def manifest(self) -> Manifest:
        if self._manifest is None:
            self._manifest = Manifest(self.dir / "manifest.sqlite")
        return self._manifest

    @property
    def store(self) -> ChromaStore:
        if self._store is None:
            self._store = ChromaStore(self.chroma_dir, self.collection, url=self.settings.chroma_url)
        return self._store

    @property
    def store_location(self) -> str:
        return self.settings.chroma_url or str(self.chroma_dir)

    def exists(self) -> bool:
        return (self.dir / "manifest.sqlite").is_file()

    def close(self) -> None:
        if self._manifest is not None:
            self._manifest.close()
            self._manifest = None


class WriteLock:
    """One writer per index: a second one gets :class:`IndexLockedError` at once, readers never wait."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fh: Any = None

    def __enter__(self) -> WriteLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise IndexLockedError(
                f"index {self.what!r} is being written by {holder}",
                hint="wait for that `rag index` to finish, then run again",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
