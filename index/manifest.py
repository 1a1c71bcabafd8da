"""The manifest: what is indexed, in SQLite beside the vector store.

It records, per file, the cheap facts used to skip unchanged files; per document, its content hash; and
per chunk, its text, offsets, page and section (so BM25 and citations never depend on the vector store's copy).
A manifest written before chunks had sections gets the ``section`` column on open (NULL for old rows). A
document row is written only after its vectors are stored, in one transaction with its chunk rows, so a
crash leaves the previous state, never a half one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.types import Chunk, Document

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    source TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, external_id TEXT, title TEXT NOT NULL,
    content_hash TEXT NOT NULL, n_chunks INTEGER NOT NULL, chars INTEGER NOT NULL, indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, page INTEGER, source TEXT NOT NULL, title TEXT NOT NULL,
    external_id TEXT, section TEXT
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_CHUNK_COLUMNS = 'chunk_id, doc_id, ordinal, text, start, "end", page, source, title, external_id, section'


def _chunk(r: tuple) -> Chunk:
    return Chunk(id=r[0], doc_id=r[1], ordinal=r[2], text=r[3], start=r[4], end=r[5], page=r[6], source=r[7],
                 title=r[8], external_id=r[9], section=r[10])


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a manifest written by an older version up to this schema (adds ``chunks.section``)."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(chunks)")}
    if "section" not in columns:
        try:
            db.execute("ALTER TABLE chunks ADD COLUMN section TEXT")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise


@dataclass(frozen=True)
class DocState:
    doc_id: str
    source: str
    external_id: str | None
    content_hash: str
    n_chunks: int


@dataclass(frozen=True)
class DocRow:
    doc_id: str
    source: str
    external_id: str | None
    title: str
    n_chunks: int
    chars: int
    indexed_at: float


@dataclass(frozen=True)
class FileState:
    source: str
    size: int
    mtime_ns: int
    digest: str


class Manifest:
    """SQLite record of files, documents and chunks of one index (WAL: readers are never blocked)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        _migrate(self._db)

    def close(self) -> None:
        self._db.close()

    # --- meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def generation(self) -> int:
        """Bumped on every change of the chunk set; BM25 compares against it."""
        return int(self.get_meta("generation", "0") or 0)

    # --- reads
    def files(self) -> dict[str, FileState]:
        return {r[0]: FileState(*r) for r in self._db.execute("SELECT source, size, mtime_ns, digest FROM files")}

    def documents(self) -> dict[str, DocState]:
        rows = self._db.execute("SELECT doc_id, source, external_id, content_hash, n_chunks FROM documents")
        return {r[0]: DocState(*r) for r in rows}

    def document_rows(self) -> list[DocRow]:
        """Every document with its title and size, newest first (for listings)."""
        rows = self._db.execute(
            "SELECT doc_id, source, external_id, title, n_chunks, chars, indexed_at FROM documents "
            "ORDER BY indexed_at DESC, doc_id"
        )
        return [DocRow(*r) for r in rows]

    def counts(self) -> tuple[int, int]:
        docs = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    def chunk_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT chunk_id FROM chunks")}

    def chunks(self, ids: Sequence[str]) -> dict[str, Chunk]:
        out: dict[str, Chunk] = {}
        for s in range(0, len(ids), 500):
            part = list(ids[s : s + 500])
            q = ",".join("?" * len(part))
            for r in self._db.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE chunk_id IN ({q})", part):
                out[r[0]] = _chunk(r)
        return out

    def chunk_ids_of_sources(self, sources: Sequence[str]) -> list[str]:
        q = ",".join("?" * len(sources))
        return [r[0] for r in self._db.execute(f"SELECT chunk_id FROM chunks WHERE source IN ({q})", list(sources))]

    def all_chunks(self) -> list[Chunk]:
        """Every chunk, in a stable order."""
        return [_chunk(r) for r in self._db.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks ORDER BY chunk_id")]

    # --- writes (each a single transaction)
    def commit_documents(self, docs: Iterable[tuple[Document, Sequence[Chunk]]]) -> None:
        now = time.time()
        with self._tx():
            for doc, chunks in docs:
                self._db.execute("DELETE FROM chunks WHERE doc_id=?", (doc.id,))
                self._db.executemany(
                    f"INSERT INTO chunks({_CHUNK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [(c.id, c.doc_id, c.ordinal, c.text, c.start, c.end, c.page, c.source, c.title, c.external_id,
                      c.section) for c in chunks],
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO documents"
                    "(doc_id, source, external_id, title, content_hash, n_chunks, chars, indexed_at) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (doc.id, doc.source, doc.external_id, doc.title, doc.content_hash, len(chunks), len(doc.text), now),
                )
            self._bump()

    def remove_documents(self, doc_ids: Sequence[str]) -> None:
        with self._tx():
            for s in range(0, len(doc_ids), 500):
                part = list(doc_ids[s : s + 500])
                q = ",".join("?" * len(part))
                self._db.execute(f"DELETE FROM chunks WHERE doc_id IN ({q})", part)
                self._db.execute(f"DELETE FROM documents WHERE doc_id IN ({q})", part)
            self._bump()

    def record_files(self, files: Iterable[FileState]) -> None:
        with self._tx():
            self._db.executemany(
                "INSERT OR REPLACE INTO files(source, size, mtime_ns, digest) VALUES (?,?,?,?)",
                [(f.source, f.size, f.mtime_ns, f.digest) for f in files],
            )

    def forget_files(self, sources: Iterable[str]) -> None:
        with self._tx():
            self._db.executemany("DELETE FROM files WHERE source=?", [(s,) for s in sources])

    def _bump(self) -> None:
        self.set_meta("generation", str(self.generation + 1))

    def _tx(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
