"""Load files into :class:`rag.types.Document` objects.

Formats: .txt, .md, .html/.htm (visible text), .pdf (page numbers kept), .docx, and BEIR-style .jsonl
corpora (one document per line with ``_id``, ``title``, ``text``). A file that cannot be read raises
:class:`UnreadableDocumentError`; :func:`scan` turns those into report entries so ingest goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.errors import PathNotFoundError, UnreadableDocumentError
from rag.types import Document

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx", ".jsonl"}


def _hash16(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def document_id(source: str, external_id: str | None = None) -> str:
    """Stable id of a document: the same file (and line id) always gets the same id."""
    return _hash16(source, external_id or "")


def make_document(source: str, title: str, text: str, *, external_id: str | None = None,
                  pages: list[tuple[int, int]] | None = None) -> Document:
    return Document(
        id=document_id(source, external_id),
        source=source,
        external_id=external_id,
        title=title,
        text=text,
        content_hash=_hash16(title, text),
        pages=pages or [],
    )


@dataclass(frozen=True)
class SourceFile:
    """A file found under the indexed paths, with the cheap facts used to skip unchanged files."""

    path: Path
    size: int
    mtime_ns: int


def discover(paths: Iterable[Path]) -> tuple[list[SourceFile], list[tuple[Path, str]]]:
    """Files to index under ``paths`` (files or folders), and files skipped with the reason.

    Hidden files and folders are ignored. A path that does not exist raises :class:`PathNotFoundError`.
    """
    found: dict[Path, SourceFile] = {}
    skipped: list[tuple[Path, str]] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise PathNotFoundError(f"no such file or folder: {raw}", hint="check the path you passed to `rag index`")
        p = p.resolve()
        if p.is_file():
            candidates: Iterable[Path] = [p]
        else:
            candidates = (
                Path(dirpath) / name
                for dirpath, dirnames, filenames in os.walk(p)
                for name in sorted(filenames)
                if not name.startswith(".")
                and not any(part.startswith(".") for part in Path(dirpath).relative_to(p).parts)
            )
        for f in candidates:
            if f.suffix.lower() not in SUPPORTED_SUFFIXES:
                skipped.append((f, f"unsupported file type {f.suffix or '(none)'}"))
                continue
            try:
                st = f.stat()
            except OSError as exc:
                skipped.append((f, f"cannot stat: {exc.strerror}"))
                continue
            found[f] = SourceFile(f, st.st_size, st.st_mtime_ns)
    return sorted(found.values(), key=lambda s: str(s.path)), skipped


def file_digest(path: Path) -> str:
    """sha256 (16 hex) of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise UnreadableDocumentError(f"{path}: binary file (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocumentError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _title_from_text(text: str, fallback: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:200]
    return fallback


def _load_text(path: Path) -> list[Document]:
    text = _read_text(path)
    return [make_document(str(path), _title_from_text(text, path.stem), text)]


def _load_html(path: Path) -> list[Document]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_read_text(path), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head", "svg"]):
        tag.decompose()
    lines = [ln.strip() for ln in soup.get_text("\n").splitlines()]
    text = "\n".join(ln for ln in lines if ln)
    return [make_document(str(path), title or _title_from_text(text, path.stem), text)]


def _load_pdf(path: Path) -> list[Document]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise UnreadableDocumentError(f"{path}: encrypted PDF")
        parts: list[str] = []
        pages: list[tuple[int, int]] = []
        offset = 0
        for number, page in enumerate(reader.pages, start=1):
            page_text = (page.extract_text() or "").replace("\r\n", "\n").strip()
            if not page_text:
                continue
            if parts:
                parts.append("\n\n")
                offset += 2
            pages.append((number, offset))
            parts.append(page_text)
            offset += len(page_text)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except UnreadableDocumentError:
        raise
    except Exception as exc:  # pypdf raises many types on corrupt input; all mean "unreadable"
        raise UnreadableDocumentError(f"{path}: corrupt PDF ({type(exc).__name__}: {exc})") from None
    text = "".join(parts)
    return [make_document(str(path), meta_title.strip() or _title_from_text(text, path.stem), text, pages=pages)]


def _load_docx(path: Path) -> list[Document]:
    import docx

    try:
        d = docx.Document(str(path))
    except Exception as exc:  # python-docx raises many types on corrupt input; all mean "unreadable"
        raise UnreadableDocumentError(f"{path}: corrupt DOCX ({type(exc).__name__}: {exc})") from None
    blocks = [p.text.strip() for p in d.paragraphs if p.text.strip()]
    for table in d.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells if c.text.strip()]
            if cells:
                blocks.append(" | ".join(cells))
    text = "\n\n".join(blocks)
    title = (d.core_properties.title or "").strip()
    return [make_document(str(path), title or _title_from_text(text, path.stem), text)]


def iter_jsonl(path: Path) -> Iterator[Document]:
    """Documents of a BEIR-style corpus: one JSON object per line with ``_id``, ``title``, ``text``.

    A malformed line raises :class:`UnreadableDocumentError` naming the line.
    """
    seen: set[str] = set()
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                ext = str(row["_id"])
                text = str(row.get("text") or "")
                title = str(row.get("title") or "")
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                raise UnreadableDocumentError(
                    f"{path}:{lineno}: not a corpus line with _id/title/text ({type(exc).__name__})"
                ) from None
            if ext in seen:
                raise UnreadableDocumentError(f"{path}:{lineno}: duplicate _id {ext!r}")
            seen.add(ext)
            if not text.strip() and not title.strip():
                continue
            yield make_document(str(path), title or ext, text or title, external_id=ext)


def load_file(path: Path, *, max_bytes: int | None = None) -> list[Document]:
    """All documents in one file.

    Raises:
        UnreadableDocumentError: binary, corrupt, empty, too large or unsupported.
    """
    suffix = path.suffix.lower()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnreadableDocumentError(f"{path}: cannot read ({exc.strerror})") from None
    if max_bytes is not None and size > max_bytes:
        raise UnreadableDocumentError(f"{path}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.1f} MB limit")
    if size == 0:
        raise UnreadableDocumentError(f"{path}: empty file")
    try:
        if suffix in TEXT_SUFFIXES:
            docs = _load_text(path)
        elif suffix in HTML_SUFFIXES:
            docs = _load_html(path)
        elif suffix == ".pdf":
            docs = _load_pdf(path)
        elif suffix == ".docx":
            docs = _load_docx(path)
        elif suffix == ".jsonl":
            docs = list(iter_jsonl(path))
        else:
            raise UnreadableDocumentError(f"{path}: unsupported file type {suffix or '(none)'}")
    except PermissionError:
        raise UnreadableDocumentError(f"{path}: permission denied") from None
    except UnicodeDecodeError as exc:
        raise UnreadableDocumentError(f"{path}: not UTF-8 text ({exc.reason})") from None
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise UnreadableDocumentError(f"{path}: no text found (empty, or a scanned/image-only file)")
    return docs
