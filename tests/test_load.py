"""Loaders for every supported format, and clear errors for broken files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from index.load import discover, document_id, load_file
from rag.errors import PathNotFoundError, UnreadableDocumentError

from .conftest import FIXTURES


def make_pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    if title:
        c.setTitle(title)
    for text in pages:
        y = 800
        for line in text.splitlines():
            c.drawString(72, y, line)
            y -= 16
        c.showPage()
    c.save()
    return path


def make_docx(path: Path, paragraphs: list[str], table: list[list[str]] | None = None) -> Path:
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for i, row in enumerate(table):
            for j, cell in enumerate(row):
                t.cell(i, j).text = cell
    d.save(str(path))
    return path


def test_txt_title_and_exact_text():
    (doc,) = load_file(FIXTURES / "corpus" / "solar.txt")
    assert doc.title == "The Solar Array Project"
    assert "4,200 panels" in doc.text
    assert doc.text == (FIXTURES / "corpus" / "solar.txt").read_text()
    assert doc.id == document_id(doc.source) and len(doc.id) == 16
    assert doc.source == str(FIXTURES / "corpus" / "solar.txt")


def test_markdown_title_from_heading():
    (doc,) = load_file(FIXTURES / "corpus" / "library.md")
    assert doc.title == "Eastbrook Public Library"
    assert "Maria Okafor" in doc.text


def test_html_visible_text_only():
    (doc,) = load_file(FIXTURES / "corpus" / "nested" / "harbor.html")
    assert doc.title == "Eastbrook Harbor"
    assert "dredged in\n1996" in doc.text or "dredged in 1996" in doc.text
    assert "<p>" not in doc.text and "<b>" not in doc.text
    assert "secret" not in doc.text and "color: red" not in doc.text


def test_pdf_keeps_page_numbers(tmp_path: Path):
    pdf = make_pdf(tmp_path / "report.pdf", ["Annual report of the ferry company.", "Page two says the ferry carried 91,000 passengers."], title="Ferry Report")
    (doc,) = load_file(pdf)
    assert doc.title == "Ferry Report"
    assert [p for p, _ in doc.pages] == [1, 2]
    at = doc.text.index("91,000")
    assert doc.page_at(at) == 2
    assert doc.page_at(doc.text.index("Annual")) == 1


def test_docx_paragraphs_and_tables(tmp_path: Path):
    path = make_docx(tmp_path / "memo.docx", ["Memo on parking", "Parking permits cost 40 dollars a year."],
                     table=[["Zone", "Price"], ["A", "40"]])
    (doc,) = load_file(path)
    assert "Parking permits cost 40 dollars a year." in doc.text
    assert "Zone | Price" in doc.text
    assert doc.title == "Memo on parking"


def test_jsonl_corpus_documents(tmp_path: Path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        json.dumps({"_id": "a1", "title": "Alpha", "text": "First text."}) + "\n\n"
        + json.dumps({"_id": 7, "title": "", "text": "Second text."}) + "\n"
    )
    docs = load_file(path)
    assert [d.external_id for d in docs] == ["a1", "7"]
    assert docs[0].title == "Alpha" and docs[0].text == "First text."
    assert docs[1].title == "7"
    assert docs[0].id != docs[1].id
    assert [d.id for d in load_file(path)] == [d.id for d in docs]  # stable


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"", "empty file"),
        ("binary.txt", b"\x00\x01\x02binary\x00", "binary"),
        ("latin1.md", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf", "corrupt PDF"),
        ("broken.docx", b"PK this is not a zip", "corrupt DOCX"),
        ("bad.jsonl", b'{"_id": "1", "text": "ok"}\n{not json}\n', "bad.jsonl:2"),
        ("dup.jsonl", b'{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n', "duplicate _id"),
        ("blank.txt", b"   \n\n  ", "no text found"),
    ],
)
def test_broken_files_raise_clear_errors(tmp_path: Path, name: str, content: bytes, message: str):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnreadableDocumentError) as err:
        load_file(path)
    assert message in err.value.message
    assert name in err.value.message


def test_truncated_docx_zip(tmp_path: Path):
    good = make_docx(tmp_path / "ok.docx", ["hello"])
    bad = tmp_path / "truncated.docx"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UnreadableDocumentError, match="corrupt DOCX"):
        load_file(bad)
    # a valid zip that is not a Word document
    other = tmp_path / "other.docx"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(UnreadableDocumentError, match="corrupt DOCX"):
        load_file(other)


def test_size_limit(tmp_path: Path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(UnreadableDocumentError, match="over the"):
        load_file(path, max_bytes=100)


def test_discover_skips_hidden_and_reports_unsupported():
    files, skipped = discover([FIXTURES / "corpus"])
    names = sorted(f.path.name for f in files)
    assert names == ["harbor.html", "library.md", "solar.txt"]
    assert [(p.name, "unsupported" in r) for p, r in skipped] == [("notes.xyz", True)]


def test_discover_missing_path_is_an_error(tmp_path: Path):
    with pytest.raises(PathNotFoundError, match="no such file or folder"):
        discover([tmp_path / "missing"])
