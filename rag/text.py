"""Sentences of a text, with exact offsets: the one segmenter of the product.

Evidence selection (:mod:`rag.pipeline`), verification (:mod:`rag.support`) and the evaluation harness all cut text
with :func:`sentence_spans`, so a sentence means the same thing everywhere.

The loaders (:mod:`index.load`) give normalised text: hard-wrapped lines are joined into paragraphs, and the line
breaks that remain are real (paragraphs, list items, table rows, code lines). So a line break always ends a sentence,
and inside a line the sentences come from NLTK's Punkt model for English, the ``punkt_tab`` data that llama-index
ships (no download). Punkt learned abbreviations, initials and ordinal dots from a corpus; the few technical
abbreviations it lacks (``e.g.``, ``i.e.``, ``cf.``, ``approx.``) are added, and a period inside a token
(``1.10.1``, ``hwf.deny``, ``gcry_md_open.``) never ends a sentence there.

Example:
    >>> text = "Set it in /etc/gcrypt/hwf.deny, e.g. for AES. Version 1.10.1 added it.\\n- a list item"
    >>> [text[s:e] for s, e in sentence_spans(text)]
    ['Set it in /etc/gcrypt/hwf.deny, e.g. for AES.', 'Version 1.10.1 added it.', '- a list item']
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path
from typing import Any

__all__ = ["collapse_whitespace", "sentence_spans", "split_sentences"]

_BLOCK = re.compile(r"[^\n•▪●◦]+")  # lines and bullet items: a sentence never crosses them
_EXTRA_ABBREVIATIONS = ("e.g", "i.e", "cf", "approx", "etc", "vs", "fig", "sec", "ch", "no", "vol", "resp", "incl")

_lock = threading.Lock()
_tokenizer: Any = None


def _punkt_dir() -> Path:
    """The English ``punkt_tab`` folder shipped inside llama-index-core (found without importing llama-index)."""
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llama-index-core is not installed; it ships the sentence segmenter's data")
    for root in spec.submodule_search_locations:
        path = Path(root) / "_static" / "nltk_cache" / "tokenizers" / "punkt_tab" / "english"
        if path.is_dir():
            return path
    raise RuntimeError("llama-index-core has no bundled punkt_tab data (tokenizers/punkt_tab/english)")


def _punkt() -> Any:
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                import nltk.data
                from nltk.tokenize.punkt import PunktTokenizer

                root = str(_punkt_dir().parents[2])  # .../nltk_cache, the root llama-index itself adds
                if root not in nltk.data.path:
                    nltk.data.path.append(root)
                tokenizer = PunktTokenizer("english")
                tokenizer._params.abbrev_types.update(_EXTRA_ABBREVIATIONS)
                _tokenizer = tokenizer
    return _tokenizer


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of ``text``, in order, each stripped of surrounding whitespace.

    Lines and bullet items are split first; Punkt splits sentences inside them.
    """
    tokenizer = _punkt()
    spans: list[tuple[int, int]] = []
    for block in _BLOCK.finditer(text):
        body = block.group()
        if not body.strip():
            continue
        base = block.start()
        for s, e in tokenizer.span_tokenize(body):
            piece = body[s:e]
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece) - len(piece.rstrip())
            if e - trail > s + lead:
                spans.append((base + s + lead, base + e - trail))
    return spans


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see :func:`sentence_spans`)."""
    return [text[s:e] for s, e in sentence_spans(text)]


def collapse_whitespace(text: str) -> str:
    """Every run of whitespace as one space, stripped."""
    return " ".join(text.split())
