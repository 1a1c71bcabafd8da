"""Index files: discover -> load -> chunk -> embed -> store, incremental, idempotent and crash-safe.

Order of writes for every group of documents: delete their chunks from the vector store (old versions
and strays of an interrupted run), upsert the new vectors, then commit the documents and their chunks
to the manifest in one transaction. File records are written last. After a crash the manifest still
holds the previous state, so the next run redoes exactly the unfinished documents; chunk ids are
deterministic, so nothing is ever duplicated.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from index.chunk import chunk_document
from index.embed import Embedder, make_embedder
from index.layout import IndexLayout, WriteLock
from index.lexical import Bm25Index
from index.load import discover, file_digest, load_file
from index.manifest import DocRow, DocState, FileState
from rag.errors import UnreadableDocumentError
from rag.settings import Settings
from rag.types import Chunk, Document, FailedDocument, IngestReport

logger = logging.getLogger(__name__)

ProgressFactory = Callable[[int], "Progress"]


class Progress:
    """A minimal progress sink; :func:`tqdm_progress` gives a real bar."""

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def tqdm_progress(total: int) -> Progress:
    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", desc="embedding", file=sys.stderr, dynamic_ncols=True)


def embedding_text(chunk: Chunk, with_title: bool) -> str:
    """What gets embedded for a chunk (the same text BM25 indexes).

    With ``with_title``, the chunk is prefixed with where it sits: "title > section path" when it has a section
    (the path's first heading is left out when it repeats the title), else the title alone.
    """
    if not with_title:
        return chunk.text
    head = chunk.heading
    if head and not chunk.text.startswith(head):
        return f"{head}\n{chunk.text}"
    return chunk.text


def _under(source: str, roots: Sequence[Path]) -> bool:
    p = Path(source)
    return any(p == r or r in p.parents for r in roots)


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now


def ingest(
    paths: Iterable[str | Path],
    settings: Settings,
    *,
    index_name: str | None = None,
    embedder: Embedder | None = None,
    progress: ProgressFactory | None = None,
) -> IngestReport:
    """Bring the index up to date with ``paths`` (files or folders).

    Args:
        paths: what to index; documents previously indexed from under these paths but gone now are removed.
        settings: the product settings.
        index_name: the logical index (default ``settings.index_name``).
        embedder: override the embedding model (tests); default from settings.
        progress: factory of a progress sink given the number of chunks to embed.

    Returns:
        The report: documents added / updated / unchanged / removed / failed, chunks, seconds per stage.

    Raises:
        PathNotFoundError: a path does not exist.
        IndexLockedError: another process is writing this index.
    """
    clock = _Clock()
    t = time.perf_counter()
    layout = IndexLayout.open(settings, index_name)
    roots = [Path(p).expanduser().resolve() for p in paths]
    files, skipped = discover(roots)
    report = IngestReport(skipped=[FailedDocument(source=str(p), reason=r) for p, r in skipped])
    t = clock.add("discover", t)

    with WriteLock(layout.dir / "write.lock", layout.name):
        manifest, store = layout.manifest, layout.store
        force_docs = _repair(layout, report)
        t = clock.add("check", t)

        known_files = manifest.files()
        known_docs = manifest.documents()
        docs_of_source: dict[str, list[str]] = defaultdict(list)
        for d in known_docs.values():
            docs_of_source[d.source].append(d.doc_id)
        force_sources = {known_docs[d].source for d in force_docs if d in known_docs}

        seen: set[str] = set()
        failed_sources: set[str] = set()
        to_index: list[Document] = []
        pending_files: list[FileState] = []
        touched_files: list[FileState] = []
        max_bytes = int(settings.max_file_mb * 1e6)
        for f in files:
            source = str(f.path)
            old = known_files.get(source)
            if old and source not in force_sources and (old.size, old.mtime_ns) == (f.size, f.mtime_ns):
                seen.update(docs_of_source[source])
                report.unchanged += len(docs_of_source[source])
                continue
            try:
                digest = file_digest(f.path)
                if old and source not in force_sources and old.digest == digest:
                    seen.update(docs_of_source[source])
                    report.unchanged += len(docs_of_source[source])
                    touched_files.append(FileState(source, f.size, f.mtime_ns, digest))
                    continue
                docs = load_file(f.path, max_bytes=max_bytes)
            except (UnreadableDocumentError, OSError) as exc:
                reason = exc.message if isinstance(exc, UnreadableDocumentError) else f"{source}: {exc}"
                logger.warning("skipped %s", reason)
                report.failed.append(FailedDocument(source=source, reason=reason))
                failed_sources.add(source)  # keep what was indexed from it before: lose nothing
                seen.update(docs_of_source[source])
                continue
            for doc in docs:
                seen.add(doc.id)
                prev = known_docs.get(doc.id)
                if prev and prev.content_hash == doc.content_hash and doc.id not in force_docs:
                    report.unchanged += 1
                else:
                    to_index.append(doc)
                    if prev:
                        report.updated += 1
                    else:
                        report.added += 1
            pending_files.append(FileState(source, f.size, f.mtime_ns, digest))
        t = clock.add("load", t)

        # removed: not seen under the indexed paths, or their file is gone wherever it was (a moved folder)
        vanished = {src for src in docs_of_source if not Path(src).exists()}
        gone = [d for d in known_docs.values()
                if d.doc_id not in seen and (_under(d.source, roots) or d.source in vanished)]
        if gone:
            gone_ids = [d.doc_id for d in gone]
            store.delete_documents(gone_ids)
            manifest.remove_documents(gone_ids)
            manifest.forget_files({d.source for d in gone} - {f.source for f in pending_files})
            report.removed = len(gone)
            report.chunks_removed += sum(d.n_chunks for d in gone)
        t = clock.add("store", t)

        chunked = [(doc, chunk_document(doc, settings.chunk_size, settings.chunk_overlap)) for doc in to_index]
        t = clock.add("chunk", t)
        report.chunks_removed += sum(known_docs[d.id].n_chunks for d, _ in chunked if d.id in known_docs)

        if chunked:
            model = embedder or make_embedder(settings.embed_model, batch_size=settings.embed_batch_size)
            bar = progress(sum(len(c) for _, c in chunked)) if progress else Progress()
            try:
                for group in _groups(chunked, settings.ingest_group_chunks):
                    t = time.perf_counter()
                    chunks = [c for _, cs in group for c in cs]
                    vectors = model.embed_documents([embedding_text(c, settings.embed_title) for c in chunks])
                    t = clock.add("embed", t)
                    store.delete_documents([doc.id for doc, _ in group])
                    store.upsert(chunks, vectors)
                    manifest.commit_documents(group)
                    t = clock.add("store", t)
                    report.chunks_added += len(chunks)
                    bar.update(len(chunks))
            finally:
                bar.close()

        t = time.perf_counter()
        if pending_files or touched_files:
            manifest.record_files([*pending_files, *touched_files])
        rebuild_bm25(layout)
        clock.add("bm25", t)
        report.documents_total, report.chunks_total = manifest.counts()
    report.seconds = {k: round(v, 3) for k, v in clock.seconds.items()}
    report.seconds["total"] = round(sum(clock.seconds.values()), 3)
    layout.close()
    return report


def remove_documents(doc_ids: Sequence[str], settings: Settings, *, index_name: str | None = None) -> list[DocState]:
    """Remove documents (their vectors, chunks and BM25 entries) by id; return the ones that were there.

    A file whose last document is removed is forgotten too, so indexing it again adds it back.

    Raises:
        IndexLockedError: another process is writing this index.
    """
    layout = IndexLayout.open(settings, index_name)
    try:
        with WriteLock(layout.dir / "write.lock", layout.name):
            manifest = layout.manifest
            known = manifest.documents()
            found = [known[d] for d in dict.fromkeys(doc_ids) if d in known]
            if not found:
                return []
            ids = [d.doc_id for d in found]
            layout.store.delete_documents(ids)
            manifest.remove_documents(ids)
            remaining = {d.source for d in manifest.documents().values()}
            manifest.forget_files({d.source for d in found} - remaining)
            rebuild_bm25(layout)
            return found
    finally:
        layout.close()


def list_documents(settings: Settings, *, index_name: str | None = None) -> list[DocRow]:
    """The documents of an index, newest first (no lock: readers never wait)."""
    layout = IndexLayout.open(settings, index_name)
    try:
        return layout.manifest.document_rows()
    finally:
        layout.close()


def _groups(chunked: list[tuple[Document, list[Chunk]]], size: int) -> Iterable[list[tuple[Document, list[Chunk]]]]:
    group: list[tuple[Document, list[Chunk]]] = []
    n = 0
    for item in chunked:
        group.append(item)
        n += len(item[1])
        if n >= size:
            yield group
            group, n = [], 0
    if group:
        yield group


def _repair(layout: IndexLayout, report: IngestReport) -> set[str]:
    """Make the vector store and the manifest agree; return documents whose vectors must be redone."""
    manifest, store = layout.manifest, layout.store
    _, manifest_chunks = manifest.counts()
    if store.count() == manifest_chunks:
        return set()
    store_ids = store.ids()
    manifest_ids = manifest.chunk_ids()
    strays = sorted(store_ids - manifest_ids)
    if strays:
        logger.info("removing %d stray chunks left by an interrupted run", len(strays))
        store.delete_ids(strays)
    missing = manifest_ids - store_ids
    docs = {cid.rsplit(":", 1)[0] for cid in missing}
    if docs:
        logger.warning("%d documents lost their vectors; they will be re-embedded", len(docs))
    report.repaired = len(docs)
    return docs


def rebuild_bm25(layout: IndexLayout, *, force: bool = False) -> bool:
    """Rebuild the BM25 index if the manifest changed since it was built. Returns whether it rebuilt."""
    manifest = layout.manifest
    generation = manifest.generation
    if not force and Bm25Index.published_generation(layout.dir) == generation:
        return False
    chunks = manifest.all_chunks()
    ids = [c.id for c in chunks]
    texts = [embedding_text(c, layout.settings.embed_title) for c in chunks]
    Bm25Index.build(ids, texts, generation, k1=layout.settings.bm25_k1, b=layout.settings.bm25_b).save(layout.dir)
    return True
