"""kill -9 in the middle of indexing, then the same command again: complete, no duplicates, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index.layout import IndexLayout
from index.lexical import Bm25Index
from rag.settings import Settings

N_DOCS = 400


def write_corpus(path: Path) -> None:
    with path.open("w") as fh:
        for i in range(N_DOCS):
            text = " ".join(f"Document {i} sentence {j} mentions topic {(i * 7 + j) % 97} and value {i * j}."
                            for j in range(6))
            fh.write(json.dumps({"_id": f"doc{i}", "title": f"Title {i}", "text": text}) + "\n")


def committed_docs(data_dir: Path) -> int:
    for db in data_dir.glob("indexes/*/manifest.sqlite"):
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            n = con.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            con.close()
            return int(n)
        except sqlite3.Error:
            return 0
    return 0


@pytest.mark.slow
def test_kill_9_mid_indexing_then_rerun_repairs(tmp_path: Path):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus)
    data = tmp_path / "data"
    env = {**os.environ, "RAG_DATA_DIR": str(data), "RAG_INGEST_GROUP_CHUNKS": "16"}
    cmd = [sys.executable, "-m", "rag", "index", str(corpus)]

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while committed_docs(data) < 30 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "indexing finished before it could be killed: make the corpus larger"
    before_kill = committed_docs(data)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < before_kill < N_DOCS

    rerun = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert report["documents_total"] == N_DOCS
    assert report["added"] + report["unchanged"] == N_DOCS
    assert report["unchanged"] >= before_kill

    settings = Settings(data_dir=data)
    layout = IndexLayout.open(settings)
    ids = layout.manifest.chunk_ids()
    assert layout.store.ids() == ids and layout.store.count() == len(ids)
    assert {c.external_id for c in layout.manifest.all_chunks()} == {f"doc{i}" for i in range(N_DOCS)}
    bm25 = Bm25Index.load(layout.dir)
    assert bm25 is not None and sorted(bm25.ids) == sorted(ids)

    third = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert json.loads(third.stdout.strip().splitlines()[-1])["unchanged"] == N_DOCS
