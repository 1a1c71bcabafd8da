"""The one sentence segmenter (rag.text): Punkt inside lines, exact offsets."""

from __future__ import annotations

import pytest

from rag.text import collapse_whitespace, sentence_spans, split_sentences


def test_offsets_are_exact_and_stripped() -> None:
    text = "  First one here.  Second one, with 1.10.1 inside.\n\n- a list item\nA row | of | cells\n"
    spans = sentence_spans(text)
    pieces = [text[s:e] for s, e in spans]
    assert pieces == ["First one here.", "Second one, with 1.10.1 inside.", "- a list item", "A row | of | cells"]
    assert all(p == p.strip() for p in pieces)


@pytest.mark.parametrize(
    "text",
    [
        "Create the file /etc/gcrypt/hwf.deny and list each feature.",
        "Use e.g. AES or i.e. a block cipher with 128-bit blocks.",
        "Call gcry_md_open() first, then gcry_md_write().",
        "Dr. Smith met Mr. Jones in the U.S. on Jan. 5 at 3 p.m. for lunch.",
        "Version 3.4 of the manual covers Nettle 3.8.1 only partly.",
    ],
)
def test_technical_text_is_one_sentence(text: str) -> None:
    assert split_sentences(text) == [text]


def test_sentence_ends_split() -> None:
    text = "The default is 128 bits. Supported tag lengths are 128, 96, and 64 bits! Is it? Yes."
    assert split_sentences(text) == [
        "The default is 128 bits.", "Supported tag lengths are 128, 96, and 64 bits!", "Is it?", "Yes.",
    ]


def test_line_breaks_and_bullets_always_end_a_sentence() -> None:
    text = "Key Takeaways\n  • China has expressed concern • Israel struck sites\nThe end"
    assert split_sentences(text) == ["Key Takeaways", "China has expressed concern", "Israel struck sites", "The end"]


def test_empty_and_blank() -> None:
    assert sentence_spans("") == [] and sentence_spans(" \n\n \t") == []
    assert collapse_whitespace("  a \n\n b\tc ") == "a b c"
