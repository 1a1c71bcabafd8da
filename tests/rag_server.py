"""Pytest plugin: the product's own server (``python -m rag serve``) in a subprocess on 127.0.0.1.

    def test_something(rag_server: RagServer) -> None:
        httpx.post(rag_server.url + "/ask", json={...}, headers=rag_server.headers)

One server per test session: extractive mode (no LLM: fast), a fresh data dir indexed from ``seeds/`` at its first
start (the product's own start-up path), an API key (``rag_server.key``) so the auth path is exercised for real.
Its log is kept for assertions (``log_text()``): keys must never appear there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240.0


@dataclass
class RagServer:
    url: str
    key: str
    port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    seeds_dir: Path = field(default=REPO / "seeds")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(work: Path, *, env: dict[str, str] | None = None, mode: str = "extractive",
                 key: str | None = None, seeds: Path | None = None) -> RagServer:
    """Start ``rag serve`` with a fresh data dir under ``work`` and wait until /readyz says ready."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    data_dir = work / "data"
    seeds_dir = seeds or REPO / "seeds"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    full_env.update({
        "RAG_DATA_DIR": str(data_dir), "RAG_SEEDS_DIR": str(seeds_dir), "RAG_ANSWER_MODE": mode,
        "RAG_LOG_LEVEL": "INFO", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
    })
    if key:
        full_env["RAG_API_KEY"] = key
    full_env.update(env or {})
    log_path = work / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=work, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = RagServer(url=f"http://127.0.0.1:{port}", key=key or "", port=port, data_dir=data_dir,
                       log_path=log_path, process=proc, seeds_dir=seeds_dir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rag serve exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            r = httpx.get(server.url + "/readyz", timeout=2)
            if r.status_code == 200:
                return server
            if r.json().get("error"):
                raise RuntimeError(f"rag serve failed to start: {r.json()}\n{server.log_tail()}")
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"rag serve not ready after {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def stop_server(server: RagServer, timeout: float = 40.0) -> int | None:
    """SIGTERM (graceful shutdown), then SIGKILL if it hangs. Returns the exit code."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
    return server.process.returncode


@pytest.fixture(scope="session")
def rag_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagServer]:
    work = tmp_path_factory.mktemp("rag-server")
    server = start_server(work, key="test-key-" + os.urandom(6).hex())
    try:
        yield server
    finally:
        stop_server(server)
        shutil.rmtree(server.data_dir / "uploads", ignore_errors=True)
