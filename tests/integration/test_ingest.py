"""Incremental, idempotent, crash-safe indexing with the real embedder and real Chroma."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from index.ingest import ingest
from index.layout import IndexLayout, WriteLock
from index.lexical import Bm25Index
from rag.errors import IndexLockedError, PathNotFoundError
from rag.settings import Settings


def consistent(settings: Settings) -> tuple[int, int]:
    """Assert store, manifest and BM25 hold exactly the same chunks, once each; return (docs, chunks)."""
    layout = IndexLayout.open(settings)
    docs, chunks = layout.manifest.counts()
    manifest_ids = layout.manifest.chunk_ids()
    assert layout.store.ids() == manifest_ids
    assert layout.store.count() == chunks == len(manifest_ids)
    bm25 = Bm25Index.load(layout.dir)
    assert bm25 is not None and sorted(bm25.ids) == sorted(manifest_ids)
    assert bm25.generation == layout.manifest.generation
    layout.close()
    return docs, chunks


def test_first_index_then_unchanged_embeds_nothing(settings: Settings, corpus_dir: Path, counting):
    first = ingest([corpus_dir], settings, embedder=counting)
    assert (first.added, first.updated, first.unchanged, first.removed) == (3, 0, 0, 0)
    assert first.failed == [] and [Path(s.source).name for s in first.skipped] == ["notes.xyz"]
    assert first.chunks_added == first.chunks_total == counting.embedded > 0
    assert set(first.seconds) >= {"load", "chunk", "embed", "store", "bm25", "total"}
    assert consistent(settings)[0] == 3

    before = counting.embedded
    again = ingest([corpus_dir], settings, embedder=counting)
    assert counting.embedded == before
    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 0, 3, 0)

    # touching a file without changing it re-reads it but embeds nothing
    os.utime(corpus_dir / "solar.txt", (1, 1))
    touched = ingest([corpus_dir], settings, embedder=counting)
    assert counting.embedded == before and touched.unchanged == 3


def test_changed_file_replaces_its_chunks(settings: Settings, corpus_dir: Path, counting):
    ingest([corpus_dir], settings, embedder=counting)
    before = counting.embedded
    solar = corpus_dir / "solar.txt"
    solar.write_text(solar.read_text().replace("4,200 panels", "5,000 panels") + "\nA second phase is planned.\n")
    report = ingest([corpus_dir], settings, embedder=counting)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 2)
    assert counting.embedded - before == report.chunks_added
    layout = IndexLayout.open(settings)
    texts = " ".join(c.text for c in layout.manifest.all_chunks())
    assert "5,000 panels" in texts and "4,200 panels" not in texts
    consistent(settings)


def test_removed_file_chunks_go(settings: Settings, corpus_dir: Path, counting):
    ingest([corpus_dir], settings, embedder=counting)
    (corpus_dir / "library.md").unlink()
    report = ingest([corpus_dir], settings, embedder=counting)
    assert report.removed == 1 and report.documents_total == 2
    layout = IndexLayout.open(settings)
    assert not any(c.source.endswith("library.md") for c in layout.manifest.all_chunks())
    consistent(settings)


def test_indexing_another_folder_keeps_the_first(settings: Settings, corpus_dir: Path, tmp_path: Path, counting):
    ingest([corpus_dir], settings, embedder=counting)
    other = tmp_path / "other"
    other.mkdir()
    (other / "extra.txt").write_text("Extra document about the Eastbrook marathon held every October.")
    report = ingest([other], settings, embedder=counting)
    assert report.added == 1 and report.removed == 0 and report.documents_total == 4


def test_broken_files_reported_rest_indexed_and_nothing_lost(settings: Settings, corpus_dir: Path, counting):
    (corpus_dir / "empty.txt").write_bytes(b"")
    (corpus_dir / "binary.txt").write_bytes(b"\x00\x01\x02\x03")
    (corpus_dir / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    report = ingest([corpus_dir], settings, embedder=counting)
    assert report.added == 3
    assert sorted(Path(f.source).name for f in report.failed) == ["binary.txt", "broken.pdf", "empty.txt"]
    assert all(f.reason for f in report.failed)

    # a file indexed before and broken now keeps its previous chunks
    (corpus_dir / "solar.txt").write_bytes(b"\x00\xff\x00 corrupted")
    again = ingest([corpus_dir], settings, embedder=counting)
    assert "solar.txt" in {Path(f.source).name for f in again.failed}
    assert again.removed == 0 and again.documents_total == 3
    consistent(settings)


def test_missing_path_is_an_error(settings: Settings, tmp_path: Path, counting):
    with pytest.raises(PathNotFoundError):
        ingest([tmp_path / "nope"], settings, embedder=counting)


def test_second_writer_gets_a_clear_error(settings: Settings, corpus_dir: Path, counting):
    layout = IndexLayout.open(settings)
    with WriteLock(layout.dir / "write.lock", layout.name):
        with pytest.raises(IndexLockedError, match=r"being written by pid \d+"):
            ingest([corpus_dir], settings, embedder=counting)
    assert ingest([corpus_dir], settings, embedder=counting).added == 3  # released


def test_repairs_vectors_lost_from_the_store(settings: Settings, corpus_dir: Path, counting):
    ingest([corpus_dir], settings, embedder=counting)
    layout = IndexLayout.open(settings)
    victim = next(c for c in layout.manifest.all_chunks() if c.source.endswith("library.md"))
    layout.store.delete_ids([victim.id])
    layout.close()
    report = ingest([corpus_dir], settings, embedder=counting)
    assert report.repaired == 1 and report.updated == 1
    consistent(settings)


def test_removes_stray_vectors(settings: Settings, corpus_dir: Path, counting):
    import numpy as np

    from rag.types import Chunk

    ingest([corpus_dir], settings, embedder=counting)
    layout = IndexLayout.open(settings)
    stray = Chunk(id="deadbeefdeadbeef:0000", doc_id="deadbeefdeadbeef", ordinal=0, text="stray", start=0, end=5,
                  source=str(corpus_dir / "gone.txt"), title="gone")
    layout.store.upsert([stray], np.ones((1, 384), dtype=np.float32) / np.sqrt(384))
    layout.close()
    ingest([corpus_dir], settings, embedder=counting)
    consistent(settings)


def test_new_settings_fingerprint_gets_its_own_collection(settings: Settings, corpus_dir: Path, counting):
    ingest([corpus_dir], settings, embedder=counting)
    other = settings.model_copy(update={"chunk_size": 64, "chunk_overlap": 8})
    assert other.collection_name() != settings.collection_name()
    report = ingest([corpus_dir], other, embedder=counting)
    assert report.added == 3  # nothing mixed with the first collection
    assert IndexLayout.open(settings).manifest.counts()[0] == 3


def test_copied_folder_is_a_new_source(settings: Settings, corpus_dir: Path, tmp_path: Path, counting):
    ingest([corpus_dir], settings, embedder=counting)
    moved = tmp_path / "moved"
    shutil.move(corpus_dir, moved)
    report = ingest([moved], settings, embedder=counting)
    assert report.added == 3 and report.removed == 3  # the old paths no longer exist
    assert report.documents_total == 3
    consistent(settings)


# --------------------------------------------------------------------------- sections


def test_chunk_sections_are_stored_and_used_for_retrieval_text(settings: Settings, corpus_dir: Path, counting):
    from index.ingest import embedding_text

    settings = settings.model_copy(update={"chunk_size": 32, "chunk_overlap": 0})  # a chunk per section
    ingest([corpus_dir], settings, embedder=counting)
    layout = IndexLayout.open(settings)
    library = [c for c in layout.manifest.all_chunks() if c.source.endswith("library.md")]
    assert {c.section for c in library} == {"Eastbrook Public Library", "Eastbrook Public Library > Opening hours"}
    hours = next(c for c in library if c.section and c.section.endswith("Opening hours"))
    assert layout.manifest.chunks([hours.id])[hours.id].section == hours.section
    # the text that is embedded and BM25-indexed says where the chunk sits (title > section, no repeated title)
    assert embedding_text(hours, True).startswith("Eastbrook Public Library > Opening hours\n")
    bm25 = Bm25Index.load(layout.dir)
    assert bm25 is not None and hours.id in bm25.ids
    meta = layout.store._col.get(ids=[hours.id], include=["metadatas"])["metadatas"][0]
    assert meta["section"] == hours.section
    layout.close()
    consistent(settings)


def test_embedding_text_prefixes_title_and_section():
    from index.ingest import embedding_text
    from rag.types import Chunk

    base = Chunk(id="d:0000", doc_id="d", ordinal=0, text="Open 9 to 5.", start=0, end=12, source="/x.md",
                 title="Library")
    assert embedding_text(base, True) == "Library\nOpen 9 to 5."
    assert embedding_text(base, False) == "Open 9 to 5."
    with_section = base.model_copy(update={"section": "2 Visiting > 2.1 Hours"})
    assert embedding_text(with_section, True) == "Library > 2 Visiting > 2.1 Hours\nOpen 9 to 5."
    assert embedding_text(with_section, False) == "Open 9 to 5."
    repeated = base.model_copy(update={"section": "Library > Hours"})
    assert embedding_text(repeated, True) == "Library > Hours\nOpen 9 to 5."
    only_title = base.model_copy(update={"section": "library"})
    assert embedding_text(only_title, True) == "Library\nOpen 9 to 5."
    starts_with_it = base.model_copy(update={"text": "Library > Hours\nOpen.", "section": "Hours"})
    assert embedding_text(starts_with_it, True) == "Library > Hours\nOpen."


def test_old_manifest_gains_the_section_column(tmp_path: Path):
    import sqlite3

    from index.manifest import Manifest
    from rag.types import Chunk, Document

    path = tmp_path / "old" / "manifest.sqlite"
    path.parent.mkdir()
    db = sqlite3.connect(str(path))
    db.executescript(
        """CREATE TABLE chunks (chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
        text TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, page INTEGER, source TEXT NOT NULL,
        title TEXT NOT NULL, external_id TEXT);
        INSERT INTO chunks VALUES ('a:0000', 'a', 0, 'old text', 0, 8, NULL, '/a.txt', 'A', NULL);"""
    )
    db.commit()
    db.close()
    manifest = Manifest(path)
    assert manifest.chunks(["a:0000"])["a:0000"].section is None
    doc = Document(id="b", source="/b.txt", title="B", text="new text", content_hash="h")
    chunk = Chunk(id="b:0000", doc_id="b", ordinal=0, text="new text", start=0, end=8, source="/b.txt", title="B",
                  section="1 Intro")
    manifest.commit_documents([(doc, [chunk])])
    assert manifest.chunks(["b:0000"])["b:0000"] == chunk
    manifest.close()
    assert Manifest(path).all_chunks()[1].section == "1 Intro"  # opening it again is fine
