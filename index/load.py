"""Load files into :class:`rag.types.Document` objects: clean, structured text with sections.

Formats: .txt/.rst/.md (hard-wrapped lines joined into paragraphs when the text is hard-wrapped, else as is),
.html/.htm (visible text, one line per block), .pdf (hard-wrapped lines joined into paragraphs, page numbers
kept), .docx, and BEIR-style .jsonl corpora (one document per line with ``_id``, ``title``, ``text``). A file that
cannot be read raises :class:`UnreadableDocumentError`; :func:`scan` turns those into report entries so ingest
goes on.

The stored document text is the normalised text: paragraphs are separated by ``"\\n\\n"``, lines kept on their own
(list items, table rows, code) by ``"\\n"``. Every document gets ``sections``: ``(start offset, heading path)``
pairs such as ``(1234, "4 Symmetric cryptography > 4.3 Cipher modes")``, from the PDF outline, HTML ``h1``-``h6``,
Markdown ``#`` lines, Word heading styles or, in plain text, numbered and capitalised heading lines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import PathNotFoundError, UnreadableDocumentError
from rag.types import Document

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
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
                  pages: list[tuple[int, int]] | None = None,
                  sections: list[tuple[int, str]] | None = None) -> Document:
    return Document(
        id=document_id(source, external_id),
        source=source,
        external_id=external_id,
        title=title,
        text=text,
        content_hash=_hash16(title, text),
        pages=pages or [],
        sections=sections or [],
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


# --------------------------------------------------------------------------- sections

_WS = re.compile(r"\s+")
_NUMBERING = re.compile(r"^(\d+(?:\.\d+)*)\.?(?:\s|$)")


def _collapse(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _numbering(title: str) -> tuple[int, ...] | None:
    m = _NUMBERING.match(title)
    return tuple(int(n) for n in m.group(1).split(".")) if m else None


def heading_paths(heads: Sequence[tuple[int, int, str]]) -> list[tuple[int, str]]:
    """``(offset, level, title)`` headings in document order -> ``(offset, "A > B > C")`` heading paths.

    A heading closes every open heading of its level or deeper, except that a numbered heading stays under a
    same-level heading whose number it extends ("7.1.1.1 SHA256" under "7.1.1 Recommended", as texinfo's HTML
    writes both with ``h4``).
    """
    stack: list[tuple[int, tuple[int, ...] | None, str]] = []
    out: list[tuple[int, str]] = []
    for offset, level, title in sorted(heads, key=lambda h: h[0]):
        title = _collapse(title)[:200]
        if not title:
            continue
        number = _numbering(title)
        while stack:
            top_level, top_number, _ = stack[-1]
            if top_level < level:
                break
            if (top_level == level and number and top_number and len(number) > len(top_number)
                    and number[: len(top_number)] == top_number):
                break
            stack.pop()
        stack.append((level, number, title))
        path = " > ".join(t for _, _, t in stack)
        if out and out[-1][0] == offset:
            out[-1] = (offset, path)
        else:
            out.append((offset, path))
    return out


# --------------------------------------------------------------------------- plain text and Markdown

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_UNDERLINE = re.compile(r"^ {0,3}([=\-~^\"'`#*+])\1{2,}[ \t]*$")
_MD_BLOCK_START = re.compile(r"^ {0,3}(?:[-*+>]|\d{1,9}[.)])(?:\s|$)")
_CAPS_HEADING = re.compile(r"^[A-Z][A-Z0-9 ,:;'&()/.\-]*[A-Z0-9):]$")
_NUMBERED_HEADING = re.compile(
    r"^(?:(?:section|article|chapter|part|appendix)\s+)?(\d+(?:\.\d+)*|[IVXLC]{1,6})[.):]?\s+(\S.*)$", re.I)
_KEYWORD_HEADING = re.compile(r"^(?:section|article|chapter|part|appendix)\s+[\dIVXLC]+[.:]?$", re.I)
_MINOR_WORDS = {"a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"}


def _lines_with_offsets(text: str) -> list[tuple[int, str]]:
    out, at = [], 0
    for line in text.split("\n"):
        out.append((at, line))
        at += len(line) + 1
    return out


def _title_case(words: list[str]) -> bool:
    caps = [w for w in words if w.lower() not in _MINOR_WORDS]
    return bool(caps) and all(w[0].isupper() or w[0] in "\"'“(" or w[0].isdigit() for w in caps)


def _plain_heading(line: str, alone: bool) -> tuple[int, str] | None:
    """``(level, title)`` if a plain-text line is clearly a heading, else None.

    ``alone``: the line stands alone (a blank line or the text's start before it, and a blank or more indented
    line after it). Run-in numbered headings ("2. Grant of Copyright License. Subject to ...") count too.
    """
    s = line.strip()
    if not s or len(s) > 200:
        return None
    if alone and len(s) <= 80:
        if _KEYWORD_HEADING.match(s):
            return 1, s.rstrip(".:")
        m = _NUMBERED_HEADING.match(s)
        if m:
            rest = m.group(2).strip()
            words = rest.split()
            if (len(words) <= 10 and rest[0] not in ".,;:" and not rest.endswith((",", ";", ":"))
                    and _title_case(words if rest.endswith(".") else words[:1])):
                return 1 + len(m.group(1).split(".")), s.rstrip(".")
        if (_CAPS_HEADING.match(s) and sum(c.isalpha() for c in s) >= 4 and len(s.split()) <= 12
                and not s.endswith(".")):
            return 1, s
    m = _NUMBERED_HEADING.match(s)
    if m:  # run-in heading at a paragraph start: "N. Title In Capitals. Body text ..."
        head, dot, _ = m.group(2).partition(". ")
        words = head.split()
        if dot and 1 <= len(words) <= 6 and _title_case(words) and len(words[0]) > 1:
            number = m.group(1)
            return 1 + len(number.split(".")), f"{s[: m.start(2)].strip()} {head}"
    return None


def text_sections(text: str) -> list[tuple[int, str]]:
    """Sections of plain text: underlined titles, numbered or ALL-CAPS lines standing alone, run-in numbered
    headings at a paragraph start. Conservative: a line is a heading only when it clearly looks like one."""
    lines = _lines_with_offsets(text)
    underline_levels: dict[str, int] = {}
    heads: list[tuple[int, int, str]] = []
    for i, (offset, line) in enumerate(lines):
        if not line.strip():
            continue
        prev_blank = i == 0 or not lines[i - 1][1].strip()
        nxt = lines[i + 1][1] if i + 1 < len(lines) else ""
        if _UNDERLINE.match(line):
            continue
        indent = len(line) - len(line.lstrip())
        if nxt.strip() and _UNDERLINE.match(nxt) and len(nxt.strip()) >= 0.6 * len(line.strip()) and prev_blank:
            level = underline_levels.setdefault(nxt.strip()[0], len(underline_levels) + 1)
            title = line.strip()
            number = _numbering(title)
            heads.append((offset + indent, 1 + len(number) if number else level, title.rstrip(".")))
            continue
        if not prev_blank:
            continue
        nxt_indent = len(nxt) - len(nxt.lstrip())
        alone = not nxt.strip() or (nxt_indent > indent and len(line.strip()) <= 60)
        found = _plain_heading(line, alone)
        if found:
            heads.append((offset + indent, found[0], found[1]))
    return heading_paths(heads)


def markdown_sections(text: str) -> list[tuple[int, str]]:
    """Sections of Markdown: ``#`` headings and setext (``===`` / ``---`` underlined) headings, outside code."""
    lines = _lines_with_offsets(text)
    heads: list[tuple[int, int, str]] = []
    fence: str | None = None
    for i, (offset, line) in enumerate(lines):
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        m = _ATX.match(line)
        if m:
            title = (m.group(2) or "").strip()
            if title:
                heads.append((offset + line.index("#"), len(m.group(1)), title))
            continue
        if i + 1 < len(lines) and line.strip() and not _MD_BLOCK_START.match(line) and not line.startswith("    "):
            under = lines[i + 1][1]
            um = re.match(r"^ {0,3}(=+|-+)[ \t]*$", under)
            if um and (i == 0 or not lines[i - 1][1].strip()):
                heads.append((offset + len(line) - len(line.lstrip()), 1 if um.group(1)[0] == "=" else 2,
                              line.strip()))
    return heading_paths(heads)


# --- hard-wrapped plain text

_TEXT_MARKER = re.compile(  # a list item: "• x", "- x", "1. x", "1) x", "(a) x", "a) x", "(i) x", "A) x", "1.1. x"
    r"^(?:[•◦▪‣⁃●○■□∙·*+–-]|\(?(?:\d{1,3}|[a-z]|[ivx]{1,5})[.)]|\(?[A-Z]\)|\d{1,3}(?:\.\d{1,3})+\.?)"
    r"(?:\s+|$)")
_MD_RULE = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_TABLE_RULE = re.compile(r"^[-=+|: ]*[-=][-=+|: ]*\|[-=+|: ]*$|^\+[-=+]{3,}\+?$")
_GAP = re.compile(r" {2,}|\t")
_CODE_HINT = re.compile(r"[{}]\s*$|^(?:\$|>>>|#include|//|/\*)\s|\\$")
_URL = re.compile(r"<?\b(?:https?|ftp)://[^\s>]+>?")
_SENTENCE_END = ".!?:;"
_WRAP_MIN, _WRAP_MAX = 40, 120  # plausible wrap columns; longer lines are paragraphs, not wrapped lines


@dataclass
class _RawLine:
    raw: str
    indent: int
    body: str  # stripped
    role: str = "prose"  # prose, blank, fence, code, table, rule, heading, quote
    marker: re.Match[str] | None = None

    @property
    def end(self) -> int:
        """Column after the last character (tabs expanded)."""
        return self.indent + len(self.body)

    @property
    def item_col(self) -> int:
        """Where a list item's text starts (its wrapped lines may align there)."""
        return self.indent + self.marker.end() if self.marker else self.indent


def _caps(s: str) -> bool:
    letters = [c for c in s if c.isalpha()]
    return len(letters) >= 4 and not any(c.islower() for c in letters)


def _column_gaps(s: str) -> list[str]:
    """Runs of 2+ spaces (or tabs) inside ``s`` that are not the double space after a sentence."""
    gaps = []
    for m in _GAP.finditer(s):
        before = s[: m.start()].rstrip("\"')]’”")
        if m.start() and m.end() < len(s) and not (before and before[-1] in _SENTENCE_END and m.group() == "  "):
            gaps.append(m.group())
    return gaps


def _table_like(s: str, markdown: bool) -> bool:
    if ("|" in s and (markdown or s.count("|") >= 2)) or _TABLE_RULE.match(s):
        return True
    gaps = _column_gaps(s)
    return len(gaps) >= 2 or any(len(g) >= 3 or "\t" in g for g in gaps)


def _classify(text: str, markdown: bool) -> list[_RawLine]:
    """The lines of ``text`` with their role: only "prose" lines are ever joined."""
    lines = []
    for raw in text.split("\n"):
        wide = raw.expandtabs(8)
        body = wide.strip()
        lines.append(_RawLine(raw, len(wide) - len(wide.lstrip()), body, "prose" if body else "blank"))
    fence: str | None = None
    for ln in lines:
        m = _FENCE.match(ln.raw) if markdown else None
        if fence is not None:
            ln.role = "fence"
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if m:
            fence, ln.role = m.group(1), "fence"
            continue
        if ln.role == "blank":
            continue
        if _UNDERLINE.match(ln.raw) or (markdown and _MD_RULE.match(ln.raw)):
            ln.role = "rule"
        elif markdown and (_ATX.match(ln.raw) or ln.body.startswith(">")):
            ln.role = "heading" if ln.body.startswith("#") else "quote"
        elif _table_like(ln.body, markdown):
            ln.role = "table"
        elif _CODE_HINT.search(ln.body) or _symbol_share(_URL.sub("", ln.body)) >= 0.3:
            ln.role = "code"
        else:
            ln.marker = _TEXT_MARKER.match(ln.body)
    # preformatted blocks: a block (lines between blank lines) indented 4+ columns more than the usual text, or
    # indented after a paragraph that ends with "::" (reStructuredText), unless it starts with a list item
    indents = Counter(ln.indent for ln in lines if ln.role == "prose")
    usual = indents.most_common(1)[0][0] if indents else 0
    prev_end = ""
    prev_indent = 0
    i = 0
    while i < len(lines):
        if lines[i].role in ("blank", "fence"):
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j].role not in ("blank", "fence"):
            j += 1
        first = lines[i]
        literal = prev_end.endswith("::") and first.indent > prev_indent
        if first.marker is None and (first.indent >= usual + 4 or literal):
            for ln in lines[i:j]:
                ln.role = "code"
        else:
            prev_end, prev_indent = lines[j - 1].body, first.indent
        i = j
    return lines


def word_counts(lines: Iterable[str]) -> Counter[str]:
    """How often each word (hyphenated compounds as one word) occurs in ``lines``, leaving out the two halves of every
    word broken at a line end, so that they do not count as words of their own (plain-text and PDF unwrapping)."""
    words: Counter[str] = Counter()
    broken = False
    for text in lines:
        found = _WORD.findall(text)
        if broken and found and text.startswith(found[0]):
            found = found[1:]
        broken = text.endswith("-") and not text.endswith(" -")
        if broken and found and text[:-1].endswith(found[-1]):
            found = found[:-1]
        words.update(w.lower() for w in found)
    return words


def _text_word_counts(lines: Sequence[_RawLine]) -> Counter[str]:
    return word_counts(ln.body for ln in lines)


def _text_joiner(a: str, b: str, words: Counter[str]) -> str:
    """What joins line ``a`` to its continuation ``b``: " ", "" (after a hyphen that stays) or "-" (drop the
    line-end hyphen: the document writes the word joined more often than hyphenated)."""
    if a.endswith("-") and len(a) >= 2 and b[0].isalnum():
        m1, m2 = _TRAILING_WORD.search(a), _LEADING_WORD.match(b)
        if m1 and m2 and a[-2].isalpha():
            left, right = m1.group(1), m2.group(1)
            if words[(left + right).lower()] > words[f"{left}-{right}".lower()]:
                return "-"
            return ""
        if a[-2].isalnum() or a.endswith("--"):
            return ""
    return " "


def _continues(a: _RawLine, b: _RawLine, after: _RawLine | None, head: _RawLine, a_first: bool,
               markdown: bool) -> bool:
    """Whether, by layout alone, line ``b`` may carry on the paragraph or list item of line ``a``: both prose,
    ``b`` no heading, and ``b`` indented like a continuation (``head``: the paragraph's first line)."""
    if a.role != "prose" or b.role != "prose" or (after is not None and after.role == "rule"):
        return False
    if markdown and a.raw.endswith("  "):  # a Markdown hard line break
        return False
    if _KEYWORD_HEADING.match(b.body) or (_caps(b.body) and not _caps(a.body)):
        return False
    if a_first:
        if _caps(a.body) and not _caps(b.body):  # a capitalised heading over its text
            return False
        return b.indent <= (head.item_col if head.marker else a.indent) + 1
    return abs(b.indent - a.indent) <= 1


def _numbered_on(marker: re.Match[str]) -> bool:
    """Whether a list marker is a number that cannot start a list ("7.", "2.1"): after a line broken mid-sentence
    it is a reference ("... under section" / "7. This requirement ...")."""
    token = marker.group().strip().strip("()").rstrip(".)")
    return token.replace(".", "").isdigit() and ("." in token or int(token) > 1)


def unwrap_text(text: str, *, markdown: bool = False) -> tuple[str, Callable[[int], int]] | None:
    """Join the hard-wrapped lines of plain text (or Markdown) into one line per paragraph or list item.

    The wrap column is the 90th percentile of the line lengths (40-120 columns, with hardly a line beyond it). A
    line is a wrapped line when it ends within 15% of that column and the next line's first word would not have
    fitted; the text counts as hard-wrapped when most lines followed by a continuation line are wrapped lines that
    stop mid-sentence (and not lines of a log: ending in numbers, or starting alike). Each wrapped line is then
    joined to the next with one space (a line-end hyphen stays unless the document writes the word joined more
    often). Blank lines, list items (their own aligned continuation lines join them), headings, underlines,
    tables, code (indented blocks, Markdown fences) and lines indented unlike their paragraph are kept as they are.

    Returns:
        ``(text, move)``, where ``move`` maps an offset in the given text to the same place in the new text, or
        None when the text is not hard-wrapped (it stays as it is).
    """
    lines = _classify(text, markdown)
    lengths = sorted(ln.end for ln in lines if ln.role == "prose")
    if len(lengths) < 4:
        return None
    wrap = lengths[int(0.9 * (len(lengths) - 1))]
    full, limit = 0.85 * wrap, 1.15 * wrap  # a wrapped line ends between the two
    if not _WRAP_MIN <= wrap <= _WRAP_MAX or sum(n > limit for n in lengths) > 0.05 * len(lengths):
        return None
    words = _text_word_counts([ln for ln in lines if ln.role == "prose"])
    out: list[str] = []
    starts: list[int] = []  # per line: where its kept text starts in the new text
    drops: list[int] = []  # per line: leading characters not kept (the indentation of a joined line)
    pos = eligible = wrapped = records = joins = 0
    head, a_first = lines[0], True
    for i, b in enumerate(lines):
        sep: str | None = None
        if i and _continues(lines[i - 1], b, lines[i + 1] if i + 1 < len(lines) else None, head, a_first, markdown):
            a = lines[i - 1]
            first = b.body.split()[0]
            # the next word would not have fitted, and neither line runs past the wrap column
            breaks = a.end + 1 + len(first) > full and max(a.end, b.end) <= limit
            if b.marker is None:
                eligible += 1
                if breaks and a.body[-1] not in _SENTENCE_END:
                    wrapped += 1
                    # lines of a log or report: each ends in a number, or starts like the one before
                    records += a.body[-1].isdigit() or a.body.split()[0].lower() == first.lower()
                if breaks:
                    sep = _text_joiner(a.body, b.body, words)
            elif breaks and a.body[-1].isalnum() and _numbered_on(b.marker):
                sep = " "
        if sep is None:
            if i:
                out.append("\n")
                pos += 1
            starts.append(pos)
            drops.append(0)
            out.append(b.raw)
            head = b
        else:
            joins += 1
            kept = out[-1].rstrip()
            if sep == "-":
                kept, sep = kept[:-1], ""
            pos -= len(out[-1]) - len(kept)
            out[-1] = kept
            out.append(sep)
            pos += len(sep)
            starts.append(pos)
            drops.append(len(b.raw) - len(b.raw.lstrip()))
            out.append(b.raw.strip())
        pos += len(out[-1])
        a_first = sep is None
    if not joins or wrapped < 3 or wrapped < 0.6 * eligible or records > 0.3 * wrapped:
        return None
    origin = [0]
    for ln in lines[:-1]:
        origin.append(origin[-1] + len(ln.raw) + 1)

    def move(offset: int) -> int:
        i = bisect_right(origin, offset) - 1
        return starts[i] + max(0, offset - origin[i] - drops[i])

    return "".join(out), move


def _load_text(path: Path) -> list[Document]:
    text = _read_text(path)
    markdown = path.suffix.lower() in MARKDOWN_SUFFIXES
    sections = markdown_sections(text) if markdown else text_sections(text)
    title = _title_from_text(text, path.stem)
    unwrapped = unwrap_text(text, markdown=markdown)
    if unwrapped is not None:  # headings are found on the lines as written, then moved onto the joined text
        text, move = unwrapped
        sections = [(move(offset), heading) for offset, heading in sections]
    return [make_document(str(path), title, text, sections=sections)]


# --------------------------------------------------------------------------- HTML

_DROP_TAGS = {
    "script", "style", "noscript", "template", "head", "svg", "nav", "iframe", "object", "embed", "canvas",
    "button", "select", "input", "textarea", "map", "audio", "video", "math",
}
_PARA_TAGS = {
    "address", "article", "aside", "blockquote", "body", "center", "details", "dialog", "dir", "div", "dl",
    "fieldset", "figure", "footer", "form", "frameset", "header", "hgroup", "hr", "html", "legend", "listing",
    "main", "menu", "ol", "p", "plaintext", "section", "table", "ul", "xmp", "noframes",
}
_LINE_TAGS = {"li", "dt", "dd", "tr", "caption", "figcaption", "summary", "option", "thead", "tbody", "tfoot"}
_HEADING_LEVEL = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_NAV_CLASSES = {"nav", "navbar", "navigation", "navlinks", "breadcrumb", "breadcrumbs", "pagination", "skiplink",
                "menubar", "sidebar-nav", "site-nav", "main-nav", "topnav", "sidenav"}
_TOC_CLASSES = {"toc", "contents", "tableofcontents", "table-of-contents", "toctree-wrapper"}
_NAV_WORDS = {"next", "previous", "prev", "up", "top", "home", "contents", "index", "back", "forward", "toc",
              "table", "of", "go", "to", "page", "first", "last", "main", "menu", "skip", "content", "section",
              "chapter"}
_TOC_HEADING = re.compile(r"^(?:table of )?contents:?$", re.I)
_NAV_STRONG = {"next", "previous", "prev", "up", "home", "contents", "index", "back"}
_NAV_CHECK_TAGS = {"div", "p", "table", "td", "ul", "header", "footer", "center"}
_BREAKING_TAGS = _PARA_TAGS | _LINE_TAGS | {"br", "td", "th"}


def _tag_tokens(tag: Any) -> set[str]:
    """The lower-cased class names and id of ``tag``."""
    classes = tag.get("class") or []
    if isinstance(classes, str):
        classes = classes.split()
    return set(" ".join([*classes, str(tag.get("id") or "")]).lower().split())


def _link_split(tag: Any, limit: int | None) -> tuple[list[str], list[str]] | None:
    """The text of ``tag`` outside links and inside links; None when longer than ``limit`` characters."""
    from bs4.element import PreformattedString

    outside: list[str] = []
    inside: list[str] = []
    total = 0
    for s in tag.descendants:
        if not isinstance(s, str) or isinstance(s, PreformattedString):
            continue
        total += len(s)
        if limit is not None and total > limit:
            return None
        parent, in_link = s.parent, False  # type: ignore[attr-defined]  # bs4 NavigableString: str subclass
        while parent is not None and parent is not tag:
            if parent.name == "a":
                in_link = True
                break
            parent = parent.parent
        (inside if in_link else outside).append(s)
    return outside, inside


def _is_navigation(tag: Any) -> bool:
    """Navigation, not content: <nav>, role=navigation, nav-classed blocks, a link-dense table of contents, and
    navigation bars made of links and words such as "Next:", "Previous:", "Up:", "Contents", "Index"."""
    role = str(tag.get("role") or "").lower()
    if "navigation" in role or role == "doc-toc":
        return True
    if tag.find("a") is None:
        return False
    tokens = _tag_tokens(tag)
    nav_class = bool(tokens & _NAV_CLASSES) or any(t.startswith(("nav-", "nav_")) for t in tokens)
    toc_class = bool(tokens & _TOC_CLASSES)
    if nav_class or toc_class or tag.name in ("header", "footer"):
        # named as navigation (or a page header / footer): dropped when it is mostly links
        split = _link_split(tag, None)
        if split is not None:
            outside = len(_collapse(" ".join(split[0])))
            inside = len(_collapse(" ".join(split[1])))
            if inside and inside >= (0.8 if toc_class else 0.5) * (inside + outside):
                return True
    if tag.name not in _NAV_CHECK_TAGS:
        return False
    split = _link_split(tag, 400)
    if split is None:
        return False
    outside_words = re.findall(r"[^\W\d_]+", " ".join(split[0]).lower())
    link_words = re.findall(r"[^\W\d_]+", " ".join(split[1]).lower())
    if not link_words or any(w not in _NAV_WORDS for w in outside_words):
        return False
    return any(w in _NAV_STRONG for w in outside_words) or all(w in _NAV_WORDS for w in link_words)


def _is_hidden(tag: Any) -> bool:
    if tag.has_attr("hidden"):
        return True
    style = str(tag.get("style") or "").replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


class _TextWriter:
    """Builds normalised text: blocks separated by blank lines, lines by newlines, exact offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.pending = 0
        self.line: list[str] = []

    def inline(self, text: str) -> None:
        self.line.append(text)

    def brk(self, level: int) -> None:
        self.flush()
        self.pending = max(self.pending, level)

    def flush(self) -> None:
        if self.line:
            text = _collapse("".join(self.line))
            self.line = []
            if text:
                self.emit(text)

    def emit(self, text: str) -> int:
        """Write ``text`` as it is after the pending break; return its start offset."""
        if self.size:
            sep = "\n" * max(self.pending, 1)
            self.parts.append(sep)
            self.size += len(sep)
        self.pending = 0
        start = self.size
        self.parts.append(text)
        self.size += len(text)
        return start

    def text(self) -> str:
        self.flush()
        return "".join(self.parts)


def _inline_text(tag: Any) -> str:
    """The visible text of ``tag`` on one line (cells, headings): inline elements add no spaces."""
    from bs4.element import PreformattedString

    parts: list[str] = []
    for s in tag.descendants:
        if isinstance(s, str) and not isinstance(s, PreformattedString):
            parent = s.parent  # type: ignore[attr-defined]  # bs4 NavigableString: str subclass with .parent
            if parent is not None and parent.name in _DROP_TAGS:
                continue
            parts.append(s)
        elif getattr(s, "name", None) in _BREAKING_TAGS:
            parts.append(" ")
    return _collapse("".join(parts))


def _pre_text(tag: Any) -> str:
    from bs4.element import PreformattedString

    parts: list[str] = []
    for s in tag.descendants:
        if isinstance(s, str) and not isinstance(s, PreformattedString):
            parts.append(s)
        elif getattr(s, "name", None) == "br":
            parts.append("\n")
    lines = [ln.rstrip().replace("\xa0", " ") for ln in "".join(parts).expandtabs(8).split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def html_text(markup: str) -> tuple[str, str, list[tuple[int, str]]]:
    """``(title, text, sections)`` of an HTML page: visible text, one line per block, no navigation."""
    from bs4 import BeautifulSoup
    from bs4.element import PreformattedString, Tag

    soup = BeautifulSoup(markup, "html.parser")
    title = _collapse(soup.title.get_text(" ")) if soup.title else ""
    root = soup.body or soup
    w = _TextWriter()
    heads: list[tuple[int, int, str]] = []
    stack: list[tuple[Any, int]] = [(root, -1)]  # (node, break level to write when it closes; -1 = open it)
    while stack:
        node, closing = stack.pop()
        if closing >= 0:
            w.brk(closing)
            continue
        if not isinstance(node, Tag):
            if isinstance(node, str) and not isinstance(node, PreformattedString):
                w.inline(str(node))
            continue
        name = node.name
        if name in _DROP_TAGS or _is_hidden(node):
            continue
        if name in _HEADING_LEVEL:
            text = _inline_text(node)
            if text and not _TOC_HEADING.match(text):  # a table of contents is navigation: its title too
                w.brk(2)
                heads.append((w.emit(text), _HEADING_LEVEL[name], text))
                w.brk(2)
            continue
        if name == "br":
            w.brk(1)
            continue
        if name == "hr":
            w.brk(2)
            continue
        if name == "pre":
            text = _pre_text(node)
            if text:
                w.brk(2)
                w.emit(text)
                w.brk(2)
            continue
        block = 2 if name in _PARA_TAGS else 1 if name in _LINE_TAGS else 0
        if block and name not in ("html", "body") and _is_navigation(node):
            continue
        if name == "tr":
            cells = node.find_all(["td", "th"], recursive=False)
            texts = [_inline_text(c) for c in cells if not _is_hidden(c)]
            texts = [t for t in texts if t]
            if len(texts) > 1 or (texts and not any(c.find(list(_PARA_TAGS | {"pre"})) for c in cells)):
                w.brk(1)
                w.emit(" | ".join(texts))
                w.brk(1)
                continue
            # a layout row with one cell of blocks: read its blocks as blocks
        if block:
            w.brk(block)
            stack.append((node, block))
        stack.extend((child, -1) for child in reversed(node.contents))
    text = w.text()
    return title, text, heading_paths(heads)


def _load_html(path: Path) -> list[Document]:
    title, text, sections = html_text(_read_text(path))
    return [make_document(str(path), title or _title_from_text(text, path.stem), text, sections=sections)]


# --------------------------------------------------------------------------- PDF

_MONO_FONT = re.compile(r"mono|courier|typewriter|consol|menlo|inconsolata|fixed|cmtt|sftt|lmtt|tt\d|code", re.I)
_BOLD_FONT = re.compile(r"bold|black|heavy|semibold|demi|cmbx|cmb\d|\bbx", re.I)
_LIST_MARKER = re.compile(
    r"^(?:[•◦▪▫●○■□‣⁃∙·*–-]\s|\(?(?:\d{1,3}|[a-z]|[ivxlcdm]{1,6})[.)]\s|\(?[A-Z]\)\s)")
_CODE_LINE = re.compile(
    r"^\s*(?:#\s*(?:include|define|if|ifdef|ifndef|endif|else|elif|pragma|undef)\b|//|/\*|\*/|[{}]\s*;?\s*$)"
    r"|[{]\s*$|\)\s*;\s*$|^\s*\w[\w.]*\s*\([^)]*\)\s*;\s*$|^\s*(?:return|if|for|while)\b.*[;{]\s*$")
_LEADER = re.compile(r"(?:\.\s?){4,}\s*\S{1,6}$|(?:\.\s?){8,}")  # a table of contents line: "Title . . . . 12"
_BARE_PAGE = re.compile(
    r"^(?:page\s*)?[-–—(\[]?\s*(?:\d{1,4}|[ivxlcdm]{1,7})\s*[-–—)\]]?(?:\s*(?:/|of)\s*\d{1,4})?$", re.I)
_EDGE_NUMBER = re.compile(r"^(\d{1,4})\s+\S|\S\s+(\d{1,4})$")
_WORD = re.compile(r"[^\W_][\w]*(?:-[^\W_][\w]*)*")
_TRAILING_WORD = re.compile(r"([^\W_][\w]*(?:-[^\W_][\w]*)*)-$")
_LEADING_WORD = re.compile(r"^([^\W_][\w]*(?:-[^\W_][\w]*)*)")
_OUTLINE_PREFIX = re.compile(r"(?:chapter|appendix|section|part)?[a-z]?\d{0,8}")
_MONO_SHARE = 0.9
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")
_UNMAPPED_BULLET = re.compile(r"^[\x00-\x08\x0b-\x1f\x7f\ufffd]\s+")  # a glyph with no text, then a space


@dataclass(slots=True)
class _Line:
    """One extracted PDF line with what the layout says about it (internal to the PDF normaliser)."""

    text: str
    page: int  # 0-based page index
    x: float
    y: float
    size: float
    mono: float  # share of its characters set in a monospaced font
    bold: float
    geometry: bool  # x, y and size are known
    role: str = "body"  # body | drop | heading | heading_cont
    level: int = 0
    title: str = ""


def _font_flags(font: Any, cache: dict[int, tuple[bool, bool]]) -> tuple[bool, bool]:
    if font is None:
        return False, False
    key = id(font)
    flags = cache.get(key)
    if flags is None:
        try:
            name = str(font.get("/BaseFont") or "")
            descriptor = font.get("/FontDescriptor")
            fixed = False
            if descriptor is not None:
                fixed = bool(int(descriptor.get_object().get("/Flags", 0)) & 1)
        except Exception:  # noqa: BLE001 - a damaged font dictionary: read its text as proportional
            name, fixed = "", False
        flags = (fixed or bool(_MONO_FONT.search(name)), bool(_BOLD_FONT.search(name)))
        cache[key] = flags
    return flags


def _page_lines(page: Any, index: int) -> list[_Line]:
    """The lines of one page as pypdf extracts them, each with its start position, font size and fonts."""
    lines: list[_Line] = []
    buf: list[str] = []
    # (x, y, size, geometry) of the line, its characters, mono characters, bold characters, x of the last piece
    state: list[Any] = [None, 0, 0, 0, 0.0]
    fonts: dict[int, tuple[bool, bool]] = {}

    def close() -> None:
        info, chars, mono, bold = state[:4]
        text = "".join(buf).rstrip()
        buf.clear()
        # code keeps its indentation; other lines do not
        text = text.expandtabs(8) if chars and mono >= _MONO_SHARE * chars else text.lstrip()
        if _CONTROL.search(text):
            text = _CONTROL.sub("", _UNMAPPED_BULLET.sub("• ", text.lstrip())).rstrip()
        if text.strip():
            x, y, size, geometry, _ = info or (0.0, 0.0, 0.0, False, 0)
            lines.append(_Line(text, index, x, y, size, mono / chars if chars else 0.0,
                               bold / chars if chars else 0.0, geometry))
        state[0], state[1], state[2], state[3], state[4] = None, 0, 0, 0, 0.0

    def visit(text: str, cm: Any, tm: Any, font: Any, font_size: Any) -> None:
        if not text:
            return
        is_mono, is_bold = _font_flags(font, fonts)
        pieces = text.replace("\r", "\n").split("\n")
        for k, piece in enumerate(pieces):
            if k:
                close()
            if not piece:
                continue
            n = len(piece) - piece.count(" ")
            if n:
                try:
                    a = tm[0] * cm[0] + tm[1] * cm[2]
                    b = tm[0] * cm[1] + tm[1] * cm[3]
                    c = tm[2] * cm[0] + tm[3] * cm[2]
                    d = tm[2] * cm[1] + tm[3] * cm[3]
                    x = float(tm[4] * cm[0] + tm[5] * cm[2] + cm[4])
                    y = float(tm[4] * cm[1] + tm[5] * cm[3] + cm[5])
                    upright = a > 0 and d > 0 and abs(b) < 1e-3 * a and abs(c) < 1e-3 * d
                    size = abs(float(font_size)) * (c * c + d * d) ** 0.5
                except (TypeError, ValueError, IndexError):
                    x, y, size, upright = 0.0, 0.0, 0.0, False
                info = state[0]
                if info is None:
                    state[0] = (x, y, size, upright and size > 0, n)
                else:
                    if k == 0 and x < state[4] - 1 and buf and not buf[-1][-1:].isspace() and piece[0] != " ":
                        buf.append(" ")  # the text went back left on the same line: a separate piece
                    # the line starts at its leftmost piece; its size and baseline are those of its longest piece
                    lx, ly, lsize, lgeometry, longest = info
                    if n > longest:
                        ly, lsize, lgeometry, longest = y, size, upright and size > 0, n
                    state[0] = (min(lx, x) if upright else lx, ly, lsize, lgeometry, longest)
                state[4] = x
                state[1] += n
                if is_mono:
                    state[2] += n
                if is_bold:
                    state[3] += n
            buf.append(piece)

    page.extract_text(visitor_text=visit)
    close()
    return lines


def _outline(reader: Any) -> list[tuple[int, int, str]]:
    """``(page index, depth, title)`` of every PDF outline entry (bookmark), in outline order."""
    out: list[tuple[int, int, str]] = []

    def walk(items: Any, depth: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, depth + 1)
                continue
            try:
                page = reader.get_destination_page_number(item)
                title = _collapse(str(item.title or ""))
            except Exception:  # noqa: BLE001 - a broken bookmark: skip it
                continue
            if title and page is not None and page >= 0:
                out.append((page, depth, title))

    try:
        walk(reader.outline, 0)
    except Exception:  # pypdf raises many types on a damaged outline; the text is still fine
        logger.debug("unreadable PDF outline", exc_info=True)
        return []
    return out


def _norm_key(text: str) -> str:
    return re.sub(r"\W+", "", text.casefold())


class _PdfText:
    """Turns pypdf's per-page lines into clean text: paragraphs joined, hyphenation undone where the joined form
    is a word, running headers, footers and page numbers dropped, list items, code and table rows kept as lines.
    """

    def __init__(self, pages: list[list[_Line]], outline: list[tuple[int, int, str]]) -> None:
        self.pages = pages
        lines = [ln for page in pages for ln in page]
        sizes: Counter[float] = Counter()
        for ln in lines:
            if ln.geometry:
                sizes[round(ln.size * 2) / 2] += len(ln.text)
        self.body_size = sizes.most_common(1)[0][0] if sizes else 0.0
        self._drop_running_lines()
        body = [ln for ln in lines if ln.role == "body"]
        self.has_mono = any(ln.mono >= _MONO_SHARE for ln in body)
        lengths = sorted(len(ln.text) for ln in body if ln.mono < 0.5)
        self.full = lengths[int(0.9 * (len(lengths) - 1))] if len(lengths) >= 10 else 80
        self.gaps = self._line_gaps()
        self.words = self._word_counts(body)
        self.anchors: list[tuple[int, int, str]] = []  # (page, level, title) of outline entries not found
        if outline:
            self._mark_outline(outline)
        else:
            self._mark_headings()

    @staticmethod
    def _word_counts(lines: list[_Line]) -> Counter[str]:
        return word_counts(ln.text for ln in lines)

    # --- running headers and footers
    def _drop_running_lines(self) -> None:
        # candidates: the lines at a page's top or foot (by position; by order when the layout is unknown), and
        # whether each is the very first or last line there (a page number sits at the very edge)
        candidates: list[tuple[int, _Line, bool]] = []
        for p, lines in enumerate(self.pages):
            placed = [ln.y for ln in lines if ln.geometry]
            if len(placed) < len(lines) or not lines:
                picks = sorted({i for i in (0, 1, len(lines) - 2, len(lines) - 1) if 0 <= i < len(lines)})
                candidates.extend((p, lines[i], i in (0, len(lines) - 1)) for i in picks)
                continue
            top, bottom = max(placed), min(placed)
            zone = max(3 * self.body_size, 0.05 * (top - bottom))
            for ln in lines:
                if ln.y >= top - zone or ln.y <= bottom + zone:
                    candidates.append((p, ln, ln.y >= top - 1 or ln.y <= bottom + 1))
        keys: dict[str, set[int]] = {}
        offsets: dict[int, set[int]] = {}
        for p, ln, _ in candidates:
            keys.setdefault(re.sub(r"\d+", "#", ln.text.lower()), set()).add(p)
            m = _EDGE_NUMBER.search(ln.text)
            if m:
                offsets.setdefault(p - int(m.group(1) or m.group(2)), set()).add(p)
        with_text = sum(1 for lines in self.pages if lines)
        best: tuple[int | None, set[int]] = max(offsets.items(), key=lambda kv: len(kv[1]), default=(None, set()))
        offset = best[0] if len(best[1]) >= max(3, 0.25 * with_text) else None
        for p, ln, edge in candidates:
            text = ln.text
            if len(text) > 120 or (ln.geometry and self.body_size and ln.size > 1.15 * self.body_size):
                continue
            if _BARE_PAGE.match(text):
                ln.role = "drop"
                continue
            key = re.sub(r"\d+", "#", text.lower())
            if len(keys[key]) >= 3 and sum(c.isalpha() for c in key) >= 2:
                ln.role = "drop"
                continue
            m = _EDGE_NUMBER.search(text)
            if (m and edge and offset is not None and p - int(m.group(1) or m.group(2)) == offset
                    and len(text.split()) <= 12):
                ln.role = "drop"

    # --- layout statistics
    def _line_gaps(self) -> dict[float, float]:
        """The usual baseline distance between two lines of one paragraph, per font size."""
        seen: dict[float, Counter[float]] = {}
        for lines in self.pages:
            prev = None
            for ln in lines:
                if ln.role == "drop" or not ln.geometry:
                    continue
                if prev is not None and abs(prev.size - ln.size) < 0.1 * ln.size:
                    gap = prev.y - ln.y
                    if 0.6 * ln.size < gap < 2.5 * ln.size:
                        seen.setdefault(round(ln.size * 2) / 2, Counter())[round(gap * 4) / 4] += 1
                prev = ln
        return {size: c.most_common(1)[0][0] for size, c in seen.items()}

    def _usual_gap(self, size: float) -> float:
        return self.gaps.get(round(size * 2) / 2) or 1.2 * size

    # --- headings
    def _mark_outline(self, outline: list[tuple[int, int, str]]) -> None:
        """Find each outline entry's title on its destination page (or the next), largest text first."""
        cursor: dict[int, int] = {}
        for page, depth, title in outline:
            want = _norm_key(title)
            found = False
            for p in (page, page + 1):
                if p >= len(self.pages) or not want:
                    continue
                lines = self.pages[p]
                matches: list[tuple[float, int, int]] = []  # (-size, line index, lines spanned)
                for i in range(cursor.get(p, 0), len(lines)):
                    ln = lines[i]
                    if ln.role != "body" or len(ln.text) > 2 * len(title) + 40:
                        continue
                    have = _norm_key(ln.text)
                    span = 1
                    if not have.endswith(want) and i + 1 < len(lines) and lines[i + 1].role == "body":
                        have += _norm_key(lines[i + 1].text)  # a heading wrapped onto two lines
                        span = 2
                    if have.endswith(want) and _OUTLINE_PREFIX.fullmatch(have[: len(have) - len(want)]):
                        matches.append((-ln.size, i, span))
                if matches:
                    _, i, span = min(matches)
                    ln = lines[i]
                    ln.role, ln.level = "heading", depth
                    ln.title = _collapse(" ".join(x.text for x in lines[i : i + span]))
                    if span == 2:
                        lines[i + 1].role = "heading_cont"
                    cursor[p] = i + span
                    found = True
                    break
            if not found:
                self.anchors.append((page, depth, title))

    def _mark_headings(self) -> None:
        """Headings from the text when the PDF has no outline: short lines standing alone that are numbered
        ("4.3 DER functions") or set larger than the body text."""
        if not self.body_size:
            return
        large = sorted({round(ln.size * 2) / 2 for page in self.pages for ln in page
                        if ln.geometry and ln.size >= 1.15 * self.body_size}, reverse=True)
        for lines in self.pages:
            body = [ln for ln in lines if ln.role == "body"]
            for i, ln in enumerate(body):
                text = ln.text
                words = text.split()
                if (not ln.geometry or len(text) > 80 or len(words) > 12 or ln.mono >= 0.5
                        or text.endswith((".", ",", ";", ":")) or not (text[0].isupper() or text[0].isdigit())):
                    continue
                before = body[i - 1] if i else None
                after = body[i + 1] if i + 1 < len(body) else None
                if not (self._apart(before, ln) and self._apart(ln, after)):
                    continue
                number = _numbering(text)
                bigger = ln.size >= 1.15 * self.body_size
                if number and len(words) >= 2 and words[1][0].isupper():
                    ln.role, ln.level, ln.title = "heading", len(number), text
                elif bigger and (ln.bold >= 0.5 or ln.size >= 1.3 * self.body_size):
                    ln.role, ln.level, ln.title = "heading", large.index(round(ln.size * 2) / 2) + 1, text

    def _apart(self, a: _Line | None, b: _Line | None) -> bool:
        """Whether a paragraph gap (or the page edge) separates two lines of a page."""
        if a is None or b is None:
            return True
        gap = a.y - b.y
        return gap > self._usual_gap(max(a.size, b.size)) + 0.15 * max(a.size, b.size) or gap < 0

    # --- joining lines
    def _mono(self, ln: _Line) -> bool:
        if self.has_mono:
            return ln.mono >= _MONO_SHARE
        return bool(_CODE_LINE.search(ln.text)) or _symbol_share(ln.text) >= 0.3

    def separator(self, a: _Line, b: _Line, a_first: bool, block_prose: bool) -> str:
        """What goes between line ``a`` and the next line ``b``: "\\n\\n", "\\n", " ", "" or "-" (drop the
        hyphen that ends ``a``)."""
        if b.role == "heading_cont":
            return " "
        if a.role != "body" or b.role != "body":
            return "\n\n"
        ta, tb = a.text, b.text
        a_mono, b_mono = self._mono(a), self._mono(b)
        if a.geometry and b.geometry and abs(a.size - b.size) > 0.15 * max(a.size, b.size):
            return "\n\n"
        if b.page != a.page:
            if a_mono and not block_prose and b_mono:
                return "\n"
            if (a_mono and not block_prose) or b_mono or _LIST_MARKER.match(tb):
                return "\n\n"
            if ta[-1] in "-_,(/\xad" or (ta[-1] not in ".!?:;" and tb[0].islower()):
                return self._joiner(ta, tb)
            return "\n\n"
        if a.geometry and b.geometry:
            size = max(a.size, b.size)
            gap = a.y - b.y
            if gap < -0.5 * size or gap > 3 * size:
                return "\n\n"
            if gap > self._usual_gap(size) + 0.15 * size:
                return "\n\n"
            if gap <= 0.5 * size:  # the same visual line, split by the extractor
                return "\n" if (a_mono or b_mono) else " "
        if a_mono and not block_prose and b_mono:  # lines of code
            return "\n"
        if a_mono and not block_prose:
            return "\n"
        if b_mono and (ta[-1] in ".!?:;" or not block_prose):
            return "\n"
        if _LIST_MARKER.match(tb) or _LEADER.search(ta) or _LEADER.search(tb):
            return "\n"
        if a.geometry and b.geometry:
            dx = b.x - a.x
            tol = 0.35 * max(a.size, b.size)
            if abs(dx) <= tol:
                pass
            elif dx < 0 and a_first and -dx <= 4 * a.size:  # a paragraph's indented first line
                pass
            elif (dx > 0 and a_first and dx <= 6 * a.size  # hanging indent: a list item, a term and its text
                  and (_LIST_MARKER.match(ta) or ta[-1] in "-_,"
                       or (ta[-1] not in ".!?:;" and (tb[0].islower() or len(ta) <= 0.5 * self.full)))):
                pass
            else:
                return "\n"
        if len(ta) < 0.6 * self.full and ta[-1] in ".!?:" and not tb[0].islower():
            return "\n"
        return self._joiner(ta, tb)

    def _joiner(self, a: str, b: str) -> str:
        last = a[-1]
        if last == "\xad":
            return "-"
        if last == "-" and len(a) >= 2 and a[-2].isalpha() and b[0].isalpha():
            return self._dehyphenate(a, b)
        if last == "-" and len(a) >= 2 and a[-2].isalnum() and b[0].isalnum():
            return ""
        if last == "_" and len(a) >= 2 and (a[-2].isalnum() or a[-2] == "_") and (b[0].isalnum() or b[0] == "_"):
            return ""
        if last == "/" and not b[0].isspace():
            token = a.rsplit(" ", 1)[-1]
            if "://" in token or token.count("/") >= 2:
                return ""
        return " "

    def _dehyphenate(self, a: str, b: str) -> str:
        """"-" to drop a line-end hyphen (typesetting: "en-"/"abled"), "" to keep it ("update-mime-"/"database").

        The forms the document uses elsewhere decide; when it uses neither, a hyphen after a compound, before a
        capital or digit, or between two words the document knows, stays.
        """
        m1, m2 = _TRAILING_WORD.search(a), _LEADING_WORD.match(b)
        if not m1 or not m2:
            return "-"
        left, right = m1.group(1), m2.group(1)
        joined = self.words[(left + right).lower()]
        hyphenated = self.words[f"{left}-{right}".lower()]
        if joined != hyphenated:
            return "-" if joined > hyphenated else ""
        if "-" in left or right[0].isupper() or any(c.isdigit() or c == "_" for c in left + right):
            return ""
        first = left.rsplit("-", 1)[-1].lower()
        second = right.split("-", 1)[0].lower()
        if self.words[first] >= 2 and self.words[second] >= 2 and len(first) > 2 and len(second) > 2:
            return ""
        return "-"

    # --- the text
    def build(self) -> tuple[str, list[tuple[int, int]], list[tuple[int, str]]]:
        """``(text, pages, sections)``: the normalised text, ``(page number, start offset)`` for every page
        with text, and ``(start offset, heading path)``."""
        out: list[str] = []
        pos = 0
        pages: list[tuple[int, int]] = []
        heads: list[tuple[int, int, str]] = []
        prev: _Line | None = None
        prev_first = True
        block_prose = True
        code_x: float | None = None  # where the code lines in a row start: deeper ones get indented
        for p, lines in enumerate(self.pages):
            first_on_page = True
            for ln in lines:
                if ln.role == "drop":
                    continue
                code = self._mono(ln)
                text = ln.text if code else _collapse(ln.text)
                sep = self.separator(prev, ln, prev_first, block_prose) if prev is not None else ""
                if code and ln.geometry and sep not in ("", " ", "-"):
                    flows = (prev is not None and prev.geometry and prev.page == ln.page
                             and 0 < prev.y - ln.y <= 3 * ln.size)  # the next line down, not a jump
                    if code_x is None or not flows or ln.x < code_x - 1:
                        code_x = ln.x
                    text = " " * round((ln.x - code_x) / (0.55 * ln.size)) + text
                elif not code:
                    code_x = None
                if sep == "-":
                    out[-1] = out[-1][:-1]
                    pos -= 1
                    sep = ""
                joined = prev is not None and sep in ("", " ")
                out.append(sep)
                pos += len(sep)
                if first_on_page:
                    pages.append((p + 1, pos))
                    first_on_page = False
                if ln.role == "heading":
                    heads.append((pos, ln.level, ln.title))
                out.append(text)
                pos += len(text)
                if not joined:
                    block_prose = not code
                prev_first = not joined
                prev = ln
        text = "".join(out)
        if self.anchors:
            starts = dict(pages)
            numbers = sorted(starts)
            for page, level, title in self.anchors:
                later = [n for n in numbers if n >= page + 1]
                heads.append((starts[later[0]] if later else len(text), level, title))
        return text, pages, heading_paths(heads)


def _symbol_share(text: str) -> float:
    s = text.replace(" ", "")
    if len(s) < 4:
        return 0.0
    return sum(1 for c in s if not c.isalnum()) / len(s)


def _load_pdf(path: Path) -> list[Document]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise UnreadableDocumentError(f"{path}: encrypted PDF")
        pages = [_page_lines(page, i) for i, page in enumerate(reader.pages)]
        outline = _outline(reader)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except UnreadableDocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on corrupt input; all mean "unreadable"
        raise UnreadableDocumentError(f"{path}: corrupt PDF ({type(exc).__name__}: {exc})") from None
    text, page_starts, sections = _PdfText(pages, outline).build()
    title = _collapse(str(meta_title))
    return [make_document(str(path), title or _title_from_text(text, path.stem), text, pages=page_starts,
                          sections=sections)]


# --------------------------------------------------------------------------- DOCX


def _load_docx(path: Path) -> list[Document]:
    import docx
    from docx.table import Table

    try:
        d = docx.Document(str(path))
        items = list(d.iter_inner_content())
    except Exception as exc:  # noqa: BLE001 - python-docx raises many types on corrupt input; all mean "unreadable"
        raise UnreadableDocumentError(f"{path}: corrupt DOCX ({type(exc).__name__}: {exc})") from None
    parts: list[str] = []
    heads: list[tuple[int, int, str]] = []
    pos = 0
    for item in items:
        if isinstance(item, Table):
            rows = []
            for row in item.rows:
                cells = [c.text.strip() for c in row.cells if c.text.strip()]
                cells = [c for i, c in enumerate(cells) if i == 0 or c != cells[i - 1]]  # merged cells repeat
                if cells:
                    rows.append(" | ".join(_collapse(c) for c in cells))
            block = "\n".join(rows)
            level = None
        else:
            block = item.text.strip()
            try:
                style = (item.style.name if item.style is not None else "") or ""
            except (KeyError, AttributeError, ValueError):  # a style the document does not define
                style = ""
            m = re.fullmatch(r"heading\s*(\d)", style.strip().lower())
            level = 0 if style.strip().lower() == "title" else int(m.group(1)) if m else None
        if not block:
            continue
        if parts:
            parts.append("\n\n")
            pos += 2
        if level is not None:
            heads.append((pos, level, block))
        parts.append(block)
        pos += len(block)
    text = "".join(parts)
    title = (d.core_properties.title or "").strip()
    return [make_document(str(path), title or _title_from_text(text, path.stem), text,
                          sections=heading_paths(heads))]


# --------------------------------------------------------------------------- BEIR corpora and dispatch


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
