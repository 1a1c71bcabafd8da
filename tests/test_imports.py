"""`import rag` stays light: no torch, chromadb or llama-index until they are needed."""

from __future__ import annotations

import subprocess
import sys


def test_import_rag_is_light():
    code = (
        "import sys, rag, rag.settings, rag.types, rag.errors; "
        "heavy = [m for m in ('torch', 'chromadb', 'llama_index', 'sentence_transformers') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
