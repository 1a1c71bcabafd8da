"""The same code path against a real Chroma server started with `chroma run`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from index.ingest import ingest
from rag.cli import main
from rag.retrieve import Retriever
from rag.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path):
    port = free_port()
    exe = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen(
        [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(tmp_path / "server")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_index_and_search_through_chroma_server(chroma_server: str, tmp_path: Path, corpus_dir: Path, minilm,
                                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    settings = Settings(data_dir=tmp_path / "data", chroma_url=chroma_server)
    report = ingest([corpus_dir], settings, embedder=minilm)
    assert report.added == 3
    hits = Retriever(settings, embedder=minilm).search("head librarian", k=1, mode="dense")
    assert hits[0].chunk.source.endswith("library.md")
    assert ingest([corpus_dir], settings, embedder=minilm).unchanged == 3

    # nothing was written to an embedded store
    assert not (tmp_path / "data" / "chroma").exists()
    # the vectors really live on the server
    import chromadb

    host, port = chroma_server.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port))
    assert client.get_collection(settings.collection_name()).count() == report.chunks_total

    monkeypatch.setenv("RAG_CHROMA_URL", chroma_server)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    assert main(["status"]) == 0
    assert "chroma-server" in capsys.readouterr().out


def test_unreachable_server_is_a_clear_error(tmp_path: Path, corpus_dir: Path, minilm):
    settings = Settings(data_dir=tmp_path / "data", chroma_url=f"http://127.0.0.1:{free_port()}")
    from rag.errors import StoreError

    with pytest.raises(StoreError, match="cannot open Chroma"):
        ingest([corpus_dir], settings, embedder=minilm)
