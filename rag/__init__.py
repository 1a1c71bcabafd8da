"""Retrieval-augmented question answering with verified citations.

``import rag`` stays light (no torch, no chromadb); heavy parts load on first use.
"""

from __future__ import annotations

import os

# The one home of the offline settings: every module of rag/, index/, ui/ and eval/ imports ``rag`` first, so these
# defaults are set before any model or UI library is imported (nothing here may reach a model hub or phone home).
# An explicit environment value wins.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}
for _name, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_name, _value)

from rag.errors import RagError  # noqa: E402 - after the environment defaults, by design
from rag.settings import Settings, get_settings  # noqa: E402
from rag.types import Chunk, Document, Hit, IngestReport  # noqa: E402

__all__ = ["OFFLINE_ENV", "Chunk", "Document", "Hit", "IngestReport", "RagError", "Settings", "get_settings"]
__version__ = "0.1.0"
