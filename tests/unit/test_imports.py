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


def test_layers_contract_is_kept():
    """The import contract of pyproject.toml: core <- index <- answer pipeline <- ui | eval <- command line."""
    from pathlib import Path

    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe)], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


def test_layers_contribute_their_commands_through_entry_points():
    from rag.cli import PLUGINS, app

    assert PLUGINS == ["eval", "ui"]
    names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert {"index", "search", "ask", "chat", "status", "run", "serve", "eval"} <= names
    code = "import sys, rag.cli; print(sorted(m for m in ('ui.api', 'gradio', 'eval.suite') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # the plugins register their commands without loading the server or the harness
