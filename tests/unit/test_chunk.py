"""Chunks keep exact offsets into their document."""

from __future__ import annotations

from pathlib import Path

from index.chunk import chunk_document
from index.load import load_file, make_document

SEED = Path(__file__).resolve().parents[2] / "seeds"


def test_seed_chunks_are_exact_spans_in_order():
    (doc,) = load_file(next(SEED.glob("*.txt")))
    chunks = chunk_document(doc, chunk_size=128, chunk_overlap=16)
    assert len(chunks) > 5
    for i, c in enumerate(chunks):
        assert doc.text[c.start : c.end] == c.text
        assert c.id == f"{doc.id}:{i:04d}" and c.ordinal == i
        assert c.source == doc.source and c.title == doc.title
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    # together the chunks cover the whole text but for whitespace between them
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(doc.text[i].isspace() for i in range(len(doc.text)) if i not in covered)


def test_overlap_and_size_settings_take_effect():
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(300))
    doc = make_document("/tmp/x.txt", "x", text)
    small = chunk_document(doc, chunk_size=64, chunk_overlap=0)
    large = chunk_document(doc, chunk_size=256, chunk_overlap=0)
    overlapped = chunk_document(doc, chunk_size=64, chunk_overlap=32)
    assert len(small) > len(large) >= 2
    assert len(overlapped) > len(small)
    assert any(b.start < a.end for a, b in zip(overlapped, overlapped[1:], strict=False))
    assert all(doc.text[c.start : c.end] == c.text for c in overlapped)


def test_odd_whitespace_keeps_offsets():
    text = "Title line\r\n\n\n\n   Indented  text\twith tabs.\n\n\n\nAnother   paragraph  here.   " * 20
    doc = make_document("/tmp/y.txt", "y", text)
    for c in chunk_document(doc, chunk_size=32, chunk_overlap=4):
        assert doc.text[c.start : c.end] == c.text
        assert c.text.strip() == c.text


def test_pages_follow_chunk_start():
    text = "First page text. " * 40 + "\n\n" + "Second page text. " * 40
    second = text.index("Second")
    doc = make_document("/tmp/z.pdf", "z", text, pages=[(1, 0), (2, second)])
    chunks = chunk_document(doc, chunk_size=64, chunk_overlap=0)
    assert chunks[0].page == 1 and chunks[-1].page == 2
    assert all(c.page == (2 if c.start >= second else 1) for c in chunks)


def test_sections_follow_chunk_start():
    text = "Intro words. " * 30 + "\n\n" + "Setup words. " * 30 + "\n\n" + "Sizes words. " * 30
    setup, sizes = text.index("Setup"), text.index("Sizes")
    doc = make_document("/tmp/s.txt", "s", text, sections=[(setup, "1 Setup"), (sizes, "1 Setup > 1.1 Sizes")])
    chunks = chunk_document(doc, chunk_size=32, chunk_overlap=0)
    assert chunks[0].section is None  # before any heading
    assert chunks[-1].section == "1 Setup > 1.1 Sizes"
    assert all(c.section == doc.section_at(c.start) and c.page is None for c in chunks)
    assert {c.section for c in chunks} == {None, "1 Setup", "1 Setup > 1.1 Sizes"}


def test_loaded_markdown_chunks_carry_sections():
    from tests.conftest import FIXTURES

    (doc,) = load_file(FIXTURES / "corpus" / "library.md")
    chunks = chunk_document(doc, chunk_size=32, chunk_overlap=0)
    assert all(c.section == doc.section_at(c.start) for c in chunks)
    assert chunks[0].section == "Eastbrook Public Library"
    assert any(c.section == "Eastbrook Public Library > Opening hours" for c in chunks)
