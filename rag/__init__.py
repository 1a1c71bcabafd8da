"""Retrieval-augmented question answering with verified citations.

``import rag`` stays light (no torch, no chromadb); heavy parts load on first use.
"""

from __future__ import annotations

from rag.errors import RagError
from rag.settings import Settings, get_settings
from rag.types import Chunk, Document, Hit, IngestReport

__all__ = ["Chunk", "Document", "Hit", "IngestReport", "RagError", "Settings", "get_settings"]
__version__ = "0.1.0"
