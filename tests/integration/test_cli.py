"""The `rag` command line, called in-process through main([...])."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.cli import main
from tests.conftest import REPO


def last_json(out: str):
    return json.loads(out.strip().splitlines()[-1])


def test_index_search_status(corpus_dir: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["index", str(corpus_dir), "--json"]) == 0
    out = capsys.readouterr().out
    assert "documents: 3 added, 0 updated, 0 unchanged, 0 removed, 0 failed" in out
    assert "seconds:" in out
    report = last_json(out)
    assert report["added"] == 3 and report["chunks_total"] >= 3

    assert main(["index", str(corpus_dir)]) == 0
    assert "0 added, 0 updated, 3 unchanged" in capsys.readouterr().out

    assert main(["search", "who is the head librarian", "-k", "2", "--mode", "hybrid", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[1] ")
    hits = last_json(out)
    assert len(hits) == 2 and hits[0]["chunk"]["source"].endswith("library.md")

    assert main(["search", "ferry", "--source", str(corpus_dir / "nested" / "harbor.html"), "--mode", "bm25"]) == 0
    assert "harbor.html" in capsys.readouterr().out

    assert main(["status", "--json"]) == 0
    status = last_json(capsys.readouterr().out)
    assert status["documents"] == 3 and status["chunks"] == status["vectors"] > 0
    assert status["embed_model"] == "all-MiniLM-L6-v2" and status["store_kind"] == "chroma-embedded"


def test_index_defaults_to_seeds(capsys: pytest.CaptureFixture[str]):
    shutil.copytree(REPO / "seeds", Path.cwd() / "seeds")
    assert main(["index"]) == 0
    assert "1 added" in capsys.readouterr().out


def test_errors_exit_non_zero_with_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["index", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "error: no such file or folder" in err and "hint:" in err
    assert main(["search", "   "]) == 1
    assert "error: the query is empty" in capsys.readouterr().err
    assert main(["search", "x", "--mode", "fuzzy"]) == 2
    assert "mode must be dense, bm25 or hybrid" in capsys.readouterr().err


def test_eval_retrieval_json(beir_set: dict[str, Path], capsys: pytest.CaptureFixture[str]):
    args = ["eval", "retrieval", "--corpus", str(beir_set["corpus"]), "--queries", str(beir_set["queries"]),
            "--qrels", str(beir_set["qrels"]), "--json"]
    assert main([*args, "--mode", "hybrid"]) == 0
    m = last_json(capsys.readouterr().out)
    assert m["queries"] == 3 and m["mode"] == "hybrid"
    assert m["ndcg@10"] == pytest.approx(1.0) and m["mrr@10"] == 1.0 and m["recall@100"] == 1.0
    # a second mode reuses the same index: nothing is embedded again
    assert main([*args, "--mode", "bm25"]) == 0
    assert last_json(capsys.readouterr().out)["recall@10"] == 1.0


def test_invalid_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("RAG_CHUNK_SIZE", "-5")
    assert main(["status"]) == 1
    assert "invalid setting chunk_size (env RAG_CHUNK_SIZE)" in capsys.readouterr().err


def test_run_indexes_seeds_and_chats(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    shutil.copytree(REPO / "seeds", Path.cwd() / "seeds")
    answers = iter(["Which country is China's partner in the 25-year cooperation agreement?",
                    "When was it signed?", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    assert main(["run", "--mode", "extractive"]) == 0
    out = capsys.readouterr().out
    assert "indexed 1 documents" in out
    assert out.count("bot> ") == 2 and "seeds/china_iran_ties.txt" in out
    assert "2021" in out.split("bot> ")[2]  # the follow-up, answered from the same agreement
    assert "understood as:" in out
