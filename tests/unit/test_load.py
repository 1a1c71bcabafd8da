"""Loaders for every supported format, and clear errors for broken files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from index.load import discover, document_id, load_file
from rag.errors import PathNotFoundError, UnreadableDocumentError
from tests.conftest import FIXTURES


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
    pdf = make_pdf(tmp_path / "report.pdf",
                   ["Annual report of the ferry company.", "Page two says the ferry carried 91,000 passengers."],
                   title="Ferry Report")
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


# --------------------------------------------------------------------------- structured text: PDF

REALDOCS = Path(__file__).resolve().parents[3] / "shared" / "data" / "realdocs" / "docs"

MANUAL = [  # (kind, lines) per page; "h1"/"h2" are outline entries
    [("h1", ["1 Getting started"]),
     ("p", ["The field kit is packed in a single crate and must be kept dry at all times; the",
            "crate holds the tent, the stove and the water filter. Check the environ-",
            "ment before you unpack anything, and register the kit with the update-mime-",
            "database tool as described in the appendix."]),
     ("p", ["Every environment differs. The update-mime-database tool runs once per",
            "machine. Continu-",
            "ously check the seals of the crate."]),
     ("h2", ["1.1 Packing list"]),
     ("p", ["The crate holds these items:"]),
     ("list", ["• a two-person tent", "• a petrol stove", "• a ceramic water filter"]),
     ("list", ["(a) inspect the tent poles", "(b) count the pegs"])],
    [("h1", ["2 Configuration"]),
     ("p", ["Edit the configuration file before the first start. The minimum amount of",
            "reserved memory allocated is currently 16384 bytes; you may thus use a value",
            "of 1 to request that default size."]),
     ("code", ["int main(void) {", "    kit_init(16384);", "    return 0;", "}"]),
     ("p", ["The program above starts the kit with the default memory."])],
    [("h2", ["2.1 Limits"]),
     ("p", ["The stove burns for four hours on one tank of petrol when it is set to",
            "the middle flame and the air is still."])],
    [("h1", ["3 Repairs"]),
     ("p", ["Patch a torn tent wall with the repair tape from the lid of the crate."])],
]


def make_manual_pdf(path: Path, *, outline: bool = True) -> Path:
    """A 4-page typeset manual: running header and footer with page numbers, hard-wrapped paragraphs with an
    indented first line, line-end hyphenation, bulleted and lettered lists, a Courier code block, and (with
    ``outline``) PDF bookmarks for its numbered headings."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("Vera", "Vera.ttf"))  # shipped with reportlab; has a real bullet glyph
    c = canvas.Canvas(str(path), pagesize=A4)
    c.setTitle("Field Manual")
    n = 0
    for number, blocks in enumerate(MANUAL, start=1):
        c.setFont("Helvetica", 9)
        c.drawString(72, 800, f"Field Manual, chapter {min(number, 3)}")
        c.drawRightString(523, 800, str(10 + number))
        c.drawCentredString(297, 40, f"- {10 + number} -")
        y = 760
        for kind, lines in blocks:
            if kind in ("h1", "h2"):
                size = 16 if kind == "h1" else 13
                y -= 10
                c.setFont("Helvetica-Bold", size)
                c.drawString(72, y, lines[0])
                if outline:
                    c.bookmarkPage(f"s{n}", fit="XYZ", top=y + size)
                    c.addOutlineEntry(lines[0].split(" ", 1)[1], f"s{n}", level=0 if kind == "h1" else 1)
                    n += 1
                y -= 2 * size
                continue
            font, size, x0, step = {"code": ("Courier", 10, 100, 13), "list": ("Vera", 11, 84, 14)}.get(
                kind, ("Helvetica", 11, 72, 14))
            c.setFont(font, size)
            for i, line in enumerate(lines):
                c.drawString(x0 + (12 if kind == "p" and i == 0 else 0), y, line)
                y -= step
            y -= 10
        c.showPage()
    c.save()
    return path


def test_pdf_paragraphs_are_joined_and_running_lines_dropped(tmp_path: Path):
    (doc,) = load_file(make_manual_pdf(tmp_path / "manual.pdf"))
    text = doc.text
    assert doc.title == "Field Manual"
    # hard-wrapped lines joined with one space: a paragraph is one line
    assert ("The field kit is packed in a single crate and must be kept dry at all times; the crate holds the "
            "tent, the stove and the water filter.") in text
    sentence = "The minimum amount of reserved memory allocated is currently 16384 bytes"
    assert sentence in text
    assert doc.page_at(text.index(sentence)) == 2
    # running header, footer and page numbers are gone
    assert "Field Manual, chapter" not in text
    for number in range(11, 15):
        assert str(number) not in text.split()
        assert f"- {number} -" not in text
    assert [p for p, _ in doc.pages] == [1, 2, 3, 4]
    assert doc.page_at(text.index("Patch a torn tent")) == 4
    # paragraphs are separated by a blank line
    assert "at all times" in text.split("\n\n")[1]
    assert "\n\nEvery environment differs." in text


def test_pdf_hyphenation_undone_only_where_the_word_is_joined(tmp_path: Path):
    (doc,) = load_file(make_manual_pdf(tmp_path / "manual.pdf"))
    text = doc.text
    assert "Check the environment before you unpack anything" in text  # "environment" occurs elsewhere
    assert "with the update-mime-database tool" in text  # a real compound: the hyphen stays
    assert "Continuously check the seals" in text  # neither form elsewhere: an ordinary word break
    assert "environ-" not in text and "update-mime- database" not in text


def test_pdf_keeps_lists_and_code_on_their_own_lines(tmp_path: Path):
    (doc,) = load_file(make_manual_pdf(tmp_path / "manual.pdf"))
    lines = doc.text.split("\n")
    for item in ("• a two-person tent", "• a petrol stove", "• a ceramic water filter",
                 "(a) inspect the tent poles", "(b) count the pegs"):
        assert item in lines
    at = lines.index("int main(void) {")
    assert lines[at : at + 4] == ["int main(void) {", "    kit_init(16384);", "    return 0;", "}"]
    assert "The program above starts the kit with the default memory." in lines


def test_pdf_outline_gives_sections(tmp_path: Path):
    (doc,) = load_file(make_manual_pdf(tmp_path / "manual.pdf"))
    text = doc.text
    paths = [path for _, path in doc.sections]
    assert paths == ["1 Getting started", "1 Getting started > 1.1 Packing list", "2 Configuration",
                     "2 Configuration > 2.1 Limits", "3 Repairs"]
    for start, path in doc.sections:  # each section starts at its heading, which stands on its own line
        heading = path.rsplit(" > ", 1)[-1]
        assert text[start : start + len(heading)] == heading
        assert start == 0 or text[start - 2 : start] == "\n\n"
    assert doc.section_at(text.index("16384 bytes")) == "2 Configuration"
    assert doc.section_at(text.index("four hours")) == "2 Configuration > 2.1 Limits"
    assert doc.section_at(text.index("• a petrol stove")) == "1 Getting started > 1.1 Packing list"


def test_pdf_without_outline_finds_numbered_headings(tmp_path: Path):
    (doc,) = load_file(make_manual_pdf(tmp_path / "plain.pdf", outline=False))
    assert [path for _, path in doc.sections] == [
        "1 Getting started", "1 Getting started > 1.1 Packing list", "2 Configuration",
        "2 Configuration > 2.1 Limits", "3 Repairs"]


def test_pdf_chunks_are_exact_spans_with_sections(tmp_path: Path):
    from index.chunk import chunk_document

    (doc,) = load_file(make_manual_pdf(tmp_path / "manual.pdf"))
    chunks = chunk_document(doc, chunk_size=32, chunk_overlap=4)
    assert len(chunks) > 4
    for c in chunks:
        assert c.text == doc.text[c.start : c.end]
        assert c.page == doc.page_at(c.start) and c.section == doc.section_at(c.start)
    assert {c.section for c in chunks} >= {"1 Getting started", "3 Repairs"}


# --------------------------------------------------------------------------- structured text: HTML

PAGE = """<!doctype html><html><head><title>Kit Guide</title><style>p { color: red }</style></head><body>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
<div role="navigation"><a href="#a">Skip to content</a></div>
<div class="header"><p>Next: <a href="#b" rel="next">Setup</a>, Previous: <a href="#z" rel="prev">Intro</a>,
Up: <a href="#top" rel="up">Top</a> &nbsp; [<a href="#toc">Contents</a>][<a href="#idx">Index</a>]</p></div>
<h1>Kit Guide</h1>
<p>Call <code>kit_init</code> with the
   size in <em>bytes</em>, then read <a href="#ref">the reference</a> for   details.</p>
<h2>1 Setup</h2>
<p>Line one<br>Line two</p>
<ul><li>first <b>item</b></li><li>second item</li></ul>
<pre>int main(void) {
    return 0;
}</pre>
<h3>1.1 Sizes</h3>
<table><tr><th>Model</th><th>Bytes</th></tr><tr><td>small</td><td>16384</td></tr></table>
<h2>2 Repairs</h2>
<p>Use <kbd>Ctrl</kbd>+<kbd>C</kbd> to stop; see <var>size</var><sub>max</sub>.</p>
<script>var hidden = "not text";</script>
</body></html>"""


def test_html_inline_elements_keep_sentences_on_one_line(tmp_path: Path):
    path = tmp_path / "guide.html"
    path.write_text(PAGE)
    (doc,) = load_file(path)
    lines = doc.text.split("\n")
    assert "Call kit_init with the size in bytes, then read the reference for details." in lines
    assert "Use Ctrl+C to stop; see sizemax." in lines
    assert doc.title == "Kit Guide"


def test_html_blocks_lines_pre_and_tables(tmp_path: Path):
    path = tmp_path / "guide.html"
    path.write_text(PAGE)
    (doc,) = load_file(path)
    text = doc.text
    assert "Line one\nLine two" in text
    assert "first item\nsecond item" in text
    assert "int main(void) {\n    return 0;\n}" in text
    assert "Model | Bytes\nsmall | 16384" in text
    assert "\n\nKit Guide\n\n" in "\n\n" + text


def test_html_navigation_and_scripts_are_dropped(tmp_path: Path):
    path = tmp_path / "guide.html"
    path.write_text(PAGE)
    (doc,) = load_file(path)
    for gone in ("Home", "Docs", "Skip to content", "Next:", "Previous:", "Contents", "Index", "not text",
                 "color: red"):
        assert gone not in doc.text
    assert doc.text.startswith("Kit Guide")


def test_html_headings_give_section_paths(tmp_path: Path):
    path = tmp_path / "guide.html"
    path.write_text(PAGE)
    (doc,) = load_file(path)
    assert [p for _, p in doc.sections] == ["Kit Guide", "Kit Guide > 1 Setup", "Kit Guide > 1 Setup > 1.1 Sizes",
                                           "Kit Guide > 2 Repairs"]
    assert doc.section_at(doc.text.index("small | 16384")) == "Kit Guide > 1 Setup > 1.1 Sizes"
    assert doc.section_at(doc.text.index("Use Ctrl")) == "Kit Guide > 2 Repairs"
    for start, p in doc.sections:
        assert doc.text[start:].startswith(p.rsplit(" > ", 1)[-1])


def test_html_numbered_headings_nest_at_the_same_tag_level(tmp_path: Path):
    path = tmp_path / "manual.html"
    path.write_text("<h2>7 Reference</h2><h4>7.1.1 Hashes</h4><h4>7.1.1.1 SHA256</h4><p>a</p>"
                    "<h4>7.1.2 Others</h4><p>b</p>")
    (doc,) = load_file(path)
    assert [p for _, p in doc.sections] == ["7 Reference", "7 Reference > 7.1.1 Hashes",
                                           "7 Reference > 7.1.1 Hashes > 7.1.1.1 SHA256",
                                           "7 Reference > 7.1.2 Others"]


# --------------------------------------------------------------------------- structured text: others


def test_markdown_sections(tmp_path: Path):
    path = tmp_path / "notes.md"
    text = ("# Kit\n\nIntro.\n\n## Setup\n\nSteps.\n\n```sh\n# not a heading\n```\n\n### Sizes\n\n"
            "Sizes here.\n\nRepairs\n-------\n\nTape.\n")
    path.write_text(text)
    (doc,) = load_file(path)
    assert doc.text == text
    assert [p for _, p in doc.sections] == ["Kit", "Kit > Setup", "Kit > Setup > Sizes", "Kit > Repairs"]
    assert doc.section_at(text.index("Tape.")) == "Kit > Repairs"
    assert doc.section_at(text.index("# not a heading")) == "Kit > Setup"


def test_plain_text_sections_are_conservative(tmp_path: Path):
    path = tmp_path / "licence.txt"
    text = ("                    KIT LICENSE\n\n  Preamble text that is not a heading.\n\n"
            "  TERMS AND CONDITIONS\n\n  0. Definitions.\n\n  \"Kit\" means the kit.\n\n"
            "  1. Source Code.\n\n  The source is the code.\n\n"
            "  2. Grant of Licence. Subject to the terms, you may use the kit.\n\n"
            "  3. use it carefully, and do not lose it.\n")
    path.write_text(text)
    (doc,) = load_file(path)
    assert doc.text == text
    assert [p for _, p in doc.sections] == [
        "KIT LICENSE", "TERMS AND CONDITIONS", "TERMS AND CONDITIONS > 0. Definitions",
        "TERMS AND CONDITIONS > 1. Source Code", "TERMS AND CONDITIONS > 2. Grant of Licence"]


def test_docx_heading_styles_give_sections(tmp_path: Path):
    import docx

    d = docx.Document()
    d.add_heading("Kit Manual", level=0)
    d.add_heading("Setup", level=1)
    d.add_paragraph("Unpack the crate.")
    t = d.add_table(rows=2, cols=2)
    for i, row in enumerate([["Part", "Count"], ["pegs", "12"]]):
        for j, cell in enumerate(row):
            t.cell(i, j).text = cell
    d.add_heading("Sizes", level=2)
    d.add_paragraph("The tent is small.")
    path = tmp_path / "kit.docx"
    d.save(str(path))
    (doc,) = load_file(path)
    assert [p for _, p in doc.sections] == ["Kit Manual", "Kit Manual > Setup", "Kit Manual > Setup > Sizes"]
    assert "Unpack the crate.\n\nPart | Count\npegs | 12\n\nSizes" in doc.text  # tables stay in place
    assert doc.section_at(doc.text.index("small")) == "Kit Manual > Setup > Sizes"


# --------------------------------------------------------------------------- the real documents

needs_realdocs = pytest.mark.skipif(not REALDOCS.is_dir(), reason=f"{REALDOCS} is not here")


@needs_realdocs
def test_real_pdf_manual_is_clean_text():
    import re

    (doc,) = load_file(REALDOCS / "gcrypt.pdf")
    text = doc.text
    sentence = "The minimum amount of secure memory allocated is currently 16384 bytes"
    at = text.find(sentence)
    assert at >= 0  # on one line: no "\n" (nor a hyphen or a header) inside it
    assert doc.page_at(at) == 18
    # no running header or footer, no bare page number: the printed number is the PDF page minus 8
    lines = text.split("\n")
    assert not [ln for ln in lines if re.fullmatch(r"\d+ The Libgcrypt Reference Manual", ln)]
    assert not [ln for ln in lines if re.fullmatch(r"Chapter \d+: .* \d+", ln)]
    starts = dict(doc.pages)
    for page, start in starts.items():
        first = text[start:].split("\n", 1)[0]
        assert first not in {str(page - 8), "Chapter"}, (page, first)
    # line-end hyphenation undone ("en-" / "abled"), real hyphens kept
    assert "unless FIPS mode as been enabled; in which case GCRY_RNG_TYPE_FIPS is used" in text
    assert "(multi-precision-integers)" in text
    assert "en- abled" not in text and "en-\nabled" not in text
    # sections from the outline
    assert doc.section_at(at) == "3 Generalities > 3.1 Controlling the library"
    assert len(doc.sections) > 50


@needs_realdocs
def test_real_html_manual_sentences_with_inline_code_are_one_line():
    (doc,) = load_file(REALDOCS / "nettle.html")
    lines = doc.text.split("\n")
    assert ("SHA256 is a member of the SHA2 family. It outputs hash values of 256 bits, or 32 octets. Nettle "
            "defines SHA256 in <nettle/sha2.h>.") in lines
    assert ("Performs final processing and extracts the message digest, writing it to digest. length may be "
            "smaller than SHA256_DIGEST_SIZE, in which case only the first length octets of the digest are "
            "written.") in lines  # <var>, <code> and a hard-wrapped source line inside one <p>
    assert "Next:" not in doc.text and "Previous:" not in doc.text
    assert any(path.endswith("7.1.1.1 SHA256") for _, path in doc.sections)


# --------------------------------------------------------------------------- hard-wrapped plain text

WRAPPED_LICENCE = """\
                             KIT LICENCE
                        Version 1, 1 May 2024

  TERMS AND CONDITIONS

  0. Definitions.

  "The Kit" means the tent, the stove and the water filter that are
packed together in one crate, with the manual and every spare part
that comes with them.  "You" means the person who holds the licence.

  1. Use of the Kit.

  You may use the Kit for any purpose, provided that you check the
environment of the site first and that you meet all of these
conditions:

    (a) You must keep the crate dry and check the seals before every
        trip, and you must register the kit with the update-mime-
        database tool described in the appendix; and

    (b) You must return broken parts to the maker within thirty days
        after the damage, unless the maker tells you otherwise.

  2. Configuration.

  Edit the configuration file before the first start of the kit.  The
minimum amount of reserved memory is currently 16384 bytes, and the
following commands set it and check every part of the kit's environ-
ment before the first trip:

        kit-config --memory 16384 --tent two-person --stove petrol --quiet
        kit-check --all

  The parts of the kit weigh as follows, listed by the crate that each
of them is packed in when the kit leaves the maker's workshop:

  Part     Weight    Crate    Notes
  tent     3.2 kg    A        packed together with the poles and the pegs
  stove    1.1 kg    B        packed with the fuel bottle and the spare jets

  3. Termination.

  Your licence ends if you break these terms, unless you cure the
violation prior to 30 days after the maker first tells you about it.
"""


def test_hard_wrapped_text_is_joined_into_paragraphs(tmp_path: Path):
    import re

    path = tmp_path / "kit-licence.txt"
    path.write_text(WRAPPED_LICENCE)
    (doc,) = load_file(path)
    text = doc.text
    lines = [ln.strip() for ln in text.split("\n")]
    assert ('"The Kit" means the tent, the stove and the water filter that are packed together in one crate, with '
            'the manual and every spare part that comes with them.  "You" means the person who holds the licence.'
            ) in lines
    assert ("You may use the Kit for any purpose, provided that you check the environment of the site first and "
            "that you meet all of these conditions:") in lines
    # list items joined with their aligned continuation lines; a hyphen stays unless the joined word is used
    assert ("(a) You must keep the crate dry and check the seals before every trip, and you must register the kit "
            "with the update-mime-database tool described in the appendix; and") in lines
    assert ("(b) You must return broken parts to the maker within thirty days after the damage, unless the maker "
            "tells you otherwise.") in lines
    assert "check every part of the kit's environment before the first trip:" in text
    assert ("Your licence ends if you break these terms, unless you cure the violation prior to 30 days after the "
            "maker first tells you about it.") in lines
    # headings, the code block and the table stay as written; no blank line is crossed, nothing else is lost
    for kept in ["                             KIT LICENCE\n                        Version 1, 1 May 2024\n\n"
                 "  TERMS AND CONDITIONS\n\n  0. Definitions.\n\n",
                 "\n\n        kit-config --memory 16384 --tent two-person --stove petrol --quiet\n"
                 "        kit-check --all\n\n",
                 "\n\n  Part     Weight    Crate    Notes\n"
                 "  tent     3.2 kg    A        packed together with the poles and the pegs\n"
                 "  stove    1.1 kg    B        packed with the fuel bottle and the spare jets\n\n",
                 "\n\n  3. Termination.\n\n"]:
        assert kept in text
    assert text.count("\n\n") == WRAPPED_LICENCE.count("\n\n")
    assert re.sub(r"\s", "", text) == re.sub(r"\s", "", WRAPPED_LICENCE).replace("environ-ment", "environment")
    # sections are found as before and point into the joined text
    assert [p for _, p in doc.sections] == [
        "TERMS AND CONDITIONS", "TERMS AND CONDITIONS > 0. Definitions",
        "TERMS AND CONDITIONS > 1. Use of the Kit", "TERMS AND CONDITIONS > 2. Configuration",
        "TERMS AND CONDITIONS > 3. Termination"]
    for offset, heading in doc.sections:
        assert text.startswith(heading.split(" > ")[-1], offset)
    assert doc.section_at(text.index("thirty days")) == "TERMS AND CONDITIONS > 1. Use of the Kit"


ONE_PARAGRAPH_PER_LINE = (
    "Ferry Service Expands to the Outer Islands\n\nA photo of the ferry at the pier\n\n"
    "The Eastbrook ferry company has announced a new daily route to the outer islands, starting in May, after "
    "two years of talks with the island councils and a grant of 1.2 million dollars from the regional transport "
    "fund, which also pays for a new pier on the largest island.\n\nKey Takeaways\n\n"
    "  • The new route runs once a day in both directions and takes about ninety minutes each way, weather "
    "permitting\n"
    "  • Tickets cost the same as on the existing routes, and island residents travel at half price all year\n"
    "  • The company expects about 40,000 passengers in the first year, most of them in the summer months\n\n"
    "Councillors welcomed the plan. “This is the link the islands have asked for since the old boat was "
    "retired,” said the chair of the island council, adding that shops and the school would benefit most.\n\n"
    "The ferry company said it would review the timetable after the first summer and could add a second "
    "sailing on weekends if demand is as high as expected.\n"
)
SENTENCE_PER_LINE = (
    "The Solar Array Project\n\n"
    "The town of Eastbrook finished building its community solar array in March 2021.\n"
    "The array has 4,200 panels and produces about 1.8 megawatts at peak.\n"
    "It was paid for by a municipal bond of 3.2 million dollars, approved by voters in 2019.\n"
    "The panels sit on the roof of the old bus depot and on two fields next to it.\n"
    "Maintenance is done by a local company under a ten-year contract with the town.\n"
    "In its first year the array covered about a third of the power used by town buildings.\n"
)


REPORT_LINES = "calibration on 160 questions (80 answerable, 80 unanswerable)\nbest threshold 0.9558\n" + "".join(
    f"  threshold 0.{t}0: unanswerable refused 0.{500 + 3 * t}, answerable kept 0.{825 - 2 * t}, bacc 0.{669 + t}\n"
    for t in range(1, 10))


@pytest.mark.parametrize("text", [ONE_PARAGRAPH_PER_LINE, SENTENCE_PER_LINE, REPORT_LINES],
                         ids=["paragraphs", "sentences", "report"])
def test_text_that_is_not_hard_wrapped_is_unchanged(tmp_path: Path, text: str):
    path = tmp_path / "news.txt"
    path.write_bytes(text.encode())
    (doc,) = load_file(path)
    assert doc.text == text


WRAPPED_MARKDOWN = """\
# Field Kit

The field kit is packed in a single crate and must be kept dry at all
times; the crate holds the tent, the stove and the water filter, and
every part is listed in the table below.

## Setup

- Unpack the crate on dry ground and lay out every part next to the
  tent, so that nothing is lost in the grass.
- Check the seals.

```text
This block is preformatted text that is wrapped at the same width as
the prose around it, and it must stay exactly as it is written here.
kit-config --memory 16384 --tent two-person --stove petrol --quiet --log
kit-check --all
```

| Part  | Weight | Notes                                                       |
|-------|--------|-------------------------------------------------------------|
| tent  | 3.2 kg | packed in crate A together with the poles and the pegs      |
| stove | 1.1 kg | packed in crate B                                           |

Setup takes about twenty minutes for two people who have done it once
before, and about an hour for anyone who is new to the kit.
"""


def test_markdown_joins_paragraphs_but_not_code_tables_or_headings(tmp_path: Path):
    from index.load import markdown_sections

    path = tmp_path / "kit.md"
    path.write_text(WRAPPED_MARKDOWN)
    (doc,) = load_file(path)
    text = doc.text
    lines = text.split("\n")
    assert ("The field kit is packed in a single crate and must be kept dry at all times; the crate holds the tent, "
            "the stove and the water filter, and every part is listed in the table below.") in lines
    assert ("- Unpack the crate on dry ground and lay out every part next to the tent, so that nothing is lost in "
            "the grass.") in lines
    assert "- Check the seals." in lines
    fence = WRAPPED_MARKDOWN[WRAPPED_MARKDOWN.index("```text"):WRAPPED_MARKDOWN.index("```\n\n") + 4]
    table = WRAPPED_MARKDOWN[WRAPPED_MARKDOWN.index("| Part"):WRAPPED_MARKDOWN.index("\n\nSetup takes") + 1]
    assert fence in text and table in text
    assert "# Field Kit\n\nThe field kit" in text and "\n\n## Setup\n\n- Unpack" in text
    assert [p for _, p in doc.sections] == ["Field Kit", "Field Kit > Setup"]
    assert doc.sections == markdown_sections(text)  # the offsets refer to the joined text


@needs_realdocs
def test_real_hard_wrapped_licences_have_one_line_per_paragraph():
    (gpl,) = load_file(REALDOCS / "GPL-3.txt")
    (line,) = [ln for ln in gpl.text.split("\n") if "you cure the violation prior to 30 days after" in ln]
    assert line.strip() == (
        "Moreover, your license from a particular copyright holder is reinstated permanently if the copyright "
        "holder notifies you of the violation by some reasonable means, this is the first time you have received "
        "notice of violation of this License (for any work) from that copyright holder, and you cure the violation "
        "prior to 30 days after your receipt of the notice.")
    assert "\n    This program is free software: you can redistribute it and/or modify\n    it under" in gpl.text
    (apache,) = load_file(REALDOCS / "Apache-2.0.txt")
    assert ("      (b) You must cause any modified files to carry prominent notices stating that You changed the "
            "files; and\n") in apache.text
    (mpl,) = load_file(REALDOCS / "MPL-2.0.txt")
    assert any("non-compliance by some reasonable means prior to 60 days after You have come back into compliance"
               in ln for ln in mpl.text.split("\n"))
    for doc in (gpl, apache, mpl):
        for offset, heading in doc.sections:
            assert doc.text.startswith(heading.split(" > ")[-1], offset), (doc.source, heading)
    # a run-in heading at the start of a joined paragraph is still a section
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION > 2. Grant of Copyright License" in [
        p for _, p in apache.sections]


def test_seed_with_one_paragraph_per_line_is_unchanged():
    path = Path(__file__).resolve().parents[2] / "seeds" / "china_iran_ties.txt"
    (doc,) = load_file(path)
    assert doc.text == path.read_text(encoding="utf-8")
