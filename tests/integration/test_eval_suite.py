"""The groundedness suite (`rag eval suite`, `pytest eval/`) on the small corpus, extractive mode, real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from eval.golden import GoldenError, GoldenItem, load_golden
from eval.suite import (
    STAGES,
    Judge,
    format_record,
    format_summary,
    is_wrong_supported,
    miss_stage,
    run_suite,
    score_item,
    summarize_suite,
)
from rag.cli import main
from rag.pipeline import Pipeline
from rag.settings import Settings
from rag.types import Answer, Chunk, Citation, Hit, Passage, SentenceSupport
from tests.conftest import REPO

ROWS = [
    {"id": "s1", "question": "How many panels does the solar array have?", "answerable": True,
     "answers": ["4,200"], "evidence": "The array has 4,200 panels"},
    {"id": "s2", "question": "How many panels does the solar array have?", "answerable": True,
     "answers": ["4,200"], "expected_sources": ["solar.txt"]},
    {"id": "u1", "question": "What is the boiling point of mercury in Kelvin?", "answerable": False},
    # deliberately wrong gold answer: this question must fail
    {"id": "bad", "question": "How many panels does the solar array have?", "answerable": True,
     "answers": ["9,999"], "evidence": "The array has 4,200 panels"},
]


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    path = tmp_path / "golden.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return path


def test_golden_format_accepts_sources_and_history(tmp_path: Path, golden: Path) -> None:
    items = load_golden(golden)
    assert items[1].expected_sources == ("solar.txt",) and items[1].evidence is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "question": "q", "answerable": False, "history": [{"role": "bot"}]}) + "\n")
    with pytest.raises(GoldenError, match="history"):
        load_golden(bad)


def test_suite_scores_each_question(settings: Settings, corpus_dir: Path, golden: Path, minilm, models) -> None:
    from index.ingest import ingest
    from rag.retrieve import Retriever

    ingest([corpus_dir], settings, embedder=minilm)
    pipe = Pipeline(settings, mode="extractive", retriever=Retriever(settings, embedder=minilm), models=models)
    records = {r.id: r for r in run_suite(load_golden(golden), pipe.ask, checker=models.checker,
                                          retriever=pipe.retriever, k=6)}
    s1 = records["s1"]
    assert s1.passed and s1.correct and s1.cited and s1.grounded == 1.0
    assert s1.citation_precision == 1.0 and s1.citation_recall == 1.0 and s1.sentence_scores == [1.0]
    assert s1.retrieval_hit and s1.reciprocal_rank == 1.0 and s1.f1 is not None and s1.f1 > 0
    assert records["s2"].retrieval_hit and records["s2"].passed
    assert records["u1"].passed and records["u1"].refused and records["u1"].retrieval_hit is None
    assert not records["bad"].passed and "no gold answer" in records["bad"].why
    # the stage depends on whether the pipeline reports its evidence passages (evidence, else wrong_span)
    assert records["bad"].stage in STAGES and all(records[i].stage is None for i in ("s1", "s2", "u1"))
    summary = summarize_suite(list(records.values()))
    assert summary["passed"] == 3 and summary["failed_ids"] == ["bad"] and summary["hit_at_k"] == 1.0
    assert sum(summary["miss_stages"].values()) == 1 and summary["wrong_supported"] <= 1
    assert summary["by_source"] == {"solar.txt": {"passed": 1, "total": 1}}


def test_cli_suite_writes_report_and_gates(tmp_path: Path, corpus_dir: Path, golden: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    args = ["eval", "suite", "--golden", str(golden), "--corpus", str(corpus_dir), "--mode", "extractive",
            "--runs-dir", str(runs), "--json"]
    assert main([*args, "--no-baseline"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["passed"] == 3 and out["questions"] == 4
    run = Path(out["run"])
    assert {"results.jsonl", "summary.json", "report.md"} <= {p.name for p in run.iterdir()}
    report = (run / "report.md").read_text()
    assert list(run.glob("*.png")) and "bad" in report and "## Misses by stage" in report
    assert sum(out["miss_stages"].values()) == 1 and "wrong_supported" in out
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({"suite": {"pass_rate": {"value": 1.0, "tolerance": 0.05,
                                                            "higher_is_better": True}}}))
    assert main([*args, "--baseline", str(baseline)]) == 1  # 0.75 < 1.0 - 0.05
    assert "pass_rate" in capsys.readouterr().err


def test_pytest_eval_runs_one_test_per_question(tmp_path: Path, corpus_dir: Path, golden: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env["RAG_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "eval/", "-q", "-p", "no:cacheprovider", "--golden", str(golden),
         "--corpus", str(corpus_dir), "--mode", "extractive"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "test_golden_question[bad]" in out and "1 failed, 3 passed" in out, out
    assert "no gold answer" in out


def test_cli_draft_then_suite(tmp_path: Path, corpus_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A drafted golden set is valid input for the suite."""
    out = tmp_path / "drafted.jsonl"
    assert main(["eval", "draft", "--corpus", str(corpus_dir), "--n", "5", "--out", str(out)]) == 0
    items = load_golden(out)
    assert items and all(i.answerable or not i.answers for i in items)


@pytest.mark.slow
def test_seeds_suite_in_local_mode_holds_its_baseline(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The CI gate: the golden suite on seeds/ with the real local LLM must not fall below eval/baseline.json."""
    from rag.errors import ModelUnavailableError
    from rag.llm_model import resolve_model_path
    from tests.llama_server import model_cache_dir

    try:
        gguf = resolve_model_path("qwen2.5-coder-1.5b", model_cache_dir())
    except ModelUnavailableError as exc:
        pytest.fail(f"{exc.message} ({exc.hint})")
    monkeypatch.setenv("RAG_LLM_MODEL", str(gguf))
    monkeypatch.setenv("RAG_SEEDS_DIR", str(REPO / "seeds"))
    from rag.settings import get_settings

    get_settings.cache_clear()
    code = main(["eval", "suite", "--mode", "local", "--baseline", str(REPO / "eval" / "baseline.json"), "--json"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 0, captured.err
    assert summary["questions"] == 36 and summary["regressions"] == 0  # eval/baseline.json: pass rate, refusals, ...


# --------------------------------------------------------------------------- miss attribution (no models)

GC = "/docs/gcrypt.pdf"
EVIDENCE = "The minimum amount of secure memory allocated is currently 16384 bytes"
GOLD_TEXT = "The minimum amount of secure memory allocated is currently 16384 bytes; you may ask for less."
OTHER_TEXT = "Secure memory is locked into RAM so that it is never swapped to disk."
ITEM = GoldenItem(id="g-gc01", question="What is the smallest secure memory pool?", answerable=True,
                  answers=("16384 bytes", "16384"), evidence=EVIDENCE, expected_sources=("gcrypt.pdf",), page=18)
UNANSWERABLE = GoldenItem(id="u01", question="Which release added Kyber?", answerable=False,
                          expected_sources=("gcrypt.pdf",), why="no Kyber in this version")


def _hit(text: str, source: str = GC, rank: int = 1) -> Hit:
    chunk = Chunk(id=f"d:{rank:04d}", doc_id="d", ordinal=rank, text=text, start=0, end=len(text), source=source,
                  title="Libgcrypt")
    return Hit(chunk=chunk, score=1.0 / rank, stage="hybrid", rank=rank)


def _passage(text: str, n: int = 1, source: str = GC) -> Passage:
    return Passage(n=n, chunk_id=f"d:{n:04d}", source=source, title="Libgcrypt", text=text, start=0, end=len(text),
                   score=2.0)


def _sentence(text: str, cites: list[int], supported: bool = True) -> SentenceSupport:
    return SentenceSupport(text=text, citations=cites, score=1.0 if supported else 0.1, supported=supported,
                           method="verbatim" if supported else "checker")


def _ans(text: str = "", *, quote: str | None = None, evidence: tuple[str, ...] = (GOLD_TEXT,),
         refusal: str | None = None, fallback: bool = False, dropped: tuple[str, ...] = (),
         supported: bool = True) -> Answer:
    """An Answer as the pipeline builds it: shown text, one citation of ``quote``, the evidence it was shown."""
    cites = [] if quote is None else [Citation(n=1, chunk_id="d:0001", source=GC, title="Libgcrypt", quote=quote,
                                               start=0, end=len(quote), score=0.9)]
    refused = refusal is not None
    return Answer(
        question=ITEM.question, standalone_question=ITEM.question, mode="local", refused=refused,
        refusal_reason=refusal, text="I could not find that in the documents." if refused else text,
        citations=[] if refused else cites,
        sentences=[] if refused else [_sentence(text, [1] if cites else [], supported)],
        dropped=[_sentence(d, [1], False) for d in dropped], fallback=fallback,
        evidence=[_passage(t, n) for n, t in enumerate(evidence, start=1)],
    )


RETRIEVED = [_hit(OTHER_TEXT, rank=1), _hit(GOLD_TEXT, rank=2)]


@pytest.mark.parametrize(
    "item, answer, retrieved, passed, stage",
    [
        # a "16384" in another document is not the answer: retrieval lost it
        (ITEM, _ans(refusal="no_evidence"), [_hit(OTHER_TEXT), _hit("pools of 16384 entries", "/d/nettle.html", 2)],
         False, "retrieval"),
        (ITEM, _ans(refusal="no_evidence", evidence=(OTHER_TEXT,)), RETRIEVED, False, "evidence"),
        (ITEM, _ans(refusal="no_evidence", evidence=()), RETRIEVED, False, "evidence"),
        (ITEM, _ans(refusal="no_evidence"), RETRIEVED, False, "gate"),
        (ITEM, _ans(refusal="not_found"), RETRIEVED, False, "not_found"),
        (ITEM, _ans("It is 4096 bytes [1].", quote=GOLD_TEXT), RETRIEVED, False, "wrong_span"),
        (ITEM, _ans(refusal="not_supported", dropped=("The pool is 16384 bytes [1].",)), RETRIEVED, False,
         "verification"),
        (ITEM, _ans("Secure memory is locked into RAM [1].", quote=OTHER_TEXT, fallback=True), RETRIEVED, False,
         "verification"),
        (ITEM, _ans("It is 4096 bytes [1].", quote=GOLD_TEXT, dropped=("At least 16384 bytes [1].",)), RETRIEVED,
         False, "verification"),
        (ITEM, _ans("It is 16384 bytes [1].", quote=OTHER_TEXT), RETRIEVED, False, "citation"),
        (ITEM, _ans("It is 16384 bytes [1].", quote=GOLD_TEXT, supported=False), RETRIEVED, False, "citation"),
        (UNANSWERABLE, _ans("Kyber came in 1.9 [1].", quote=OTHER_TEXT), RETRIEVED, False, "wrong_answer_passed"),
        (UNANSWERABLE, _ans("Secure memory is locked [1].", quote=OTHER_TEXT, fallback=True), RETRIEVED, False,
         "verification"),
        # without a retriever the retrieval check is skipped
        (ITEM, _ans(refusal="no_evidence"), None, False, "gate"),
        (ITEM, _ans("It is 16384 bytes [1].", quote=GOLD_TEXT), RETRIEVED, True, None),
    ],
)
def test_miss_stage(item: GoldenItem, answer: Answer, retrieved: list[Hit] | None, passed: bool,
                    stage: str | None) -> None:
    assert miss_stage(item, answer, retrieved, passed=passed) == stage
    assert stage is None or stage in STAGES


def test_miss_stage_matches_hyphenated_evidence() -> None:
    """realdocs evidence keeps PDF hyphenation ("en- abled"); the product's chunks are dehyphenated."""
    item = GoldenItem(id="g-gc05", question="Default RNG?", answerable=True, answers=("CSPRNG",),
                      evidence="The default is GCRY_RNG_TYPE_STANDARD unless FIPS mode as been en- abled",
                      expected_sources=("gcrypt.pdf",))
    text = "The default is GCRY_RNG_TYPE_STANDARD unless FIPS mode as\nbeen enabled; in which case FIPS is used."
    answer = _ans(refusal="no_evidence", evidence=(text,))
    assert miss_stage(item, answer, [_hit(text)], passed=False) == "gate"


def test_wrong_supported() -> None:
    assert is_wrong_supported(UNANSWERABLE, _ans("Kyber came in 1.9 [1].", quote=OTHER_TEXT))
    # answerable and wrong, every sentence marked supported: its stage is wrong_span, and it is still counted here
    wrong = _ans("It is 4096 bytes [1].", quote=GOLD_TEXT)
    assert is_wrong_supported(ITEM, wrong) and miss_stage(ITEM, wrong, RETRIEVED, passed=False) == "wrong_span"
    assert not is_wrong_supported(ITEM, _ans("It is 4096 bytes [1].", quote=GOLD_TEXT, supported=False))
    assert not is_wrong_supported(ITEM, _ans("It is 16384 bytes [1].", quote=GOLD_TEXT))
    assert not is_wrong_supported(UNANSWERABLE, _ans(refusal="no_evidence"))


@dataclass(frozen=True)
class _Verdict:
    supported: bool
    score: float


class _NeverSupports:
    """A support checker that supports nothing (only non-verbatim sentences reach it)."""

    def check(self, premise: str, claim: str, *, question: str | None = None) -> _Verdict:
        return _Verdict(False, 0.0)


def test_summary_counts_stages_wrong_supported_and_sources() -> None:
    nettle = GoldenItem(id="g-ne01", question="Blowfish keys?", answerable=True, answers=("64 bits",),
                        evidence="Blowfish keys are 64 bits at least", expected_sources=("nettle.html",))
    cases = [
        (ITEM, _ans("The minimum amount of secure memory allocated is currently 16384 bytes [1].",
                    quote=GOLD_TEXT)),                                            # pass
        (ITEM, _ans(refusal="no_evidence")),                                      # gate
        (ITEM, _ans("It is 4096 bytes [1].", quote=GOLD_TEXT)),                   # wrong_span, wrong_supported
        (UNANSWERABLE, _ans(refusal="no_evidence")),                              # pass
        (UNANSWERABLE, _ans("Kyber came in 1.9 [1].", quote=OTHER_TEXT)),         # wrong_answer_passed, wrong_supp.
        (nettle, _ans(refusal="no_evidence", evidence=())),                       # retrieval (nothing retrieved)
    ]
    judge = Judge(_NeverSupports())
    records = []
    for n, (item, answer) in enumerate(cases):
        item = replace(item, id=f"{item.id}-{n}")
        records.append(score_item(item, answer, judge=judge, hits=RETRIEVED, k=6, candidates=6))
    assert [r.stage for r in records] == [None, "gate", "wrong_span", None, "wrong_answer_passed", "retrieval"]
    s = summarize_suite(records)
    assert s["passed"] == 2 and s["questions"] == 6
    assert s["miss_stages"] == {**dict.fromkeys(STAGES, 0), "gate": 1, "wrong_span": 1, "wrong_answer_passed": 1,
                                "retrieval": 1}
    assert list(s["miss_stages"]) == list(STAGES)
    assert s["wrong_supported"] == 2 and s["wrong_supported_ids"] == ["g-gc01-2", "u01-4"]
    assert s["by_source"] == {"gcrypt.pdf": {"passed": 2, "total": 5}, "nettle.html": {"passed": 0, "total": 1}}
    # hit@k only on answerable rows: the nettle row misses, the gcrypt rows hit at rank 1
    assert s["hit_at_k"] == 0.75 and records[4].retrieval_hit is None
    text = format_summary(s)
    assert "misses by stage: retrieval 1, gate 1, wrong_span 1, wrong_answer_passed 1" in text
    assert "wrong answers shown as supported: 2 (g-gc01-2, u01-4)" in text
    assert "by source: gcrypt.pdf 2/5, nettle.html 0/1" in text
    assert "[gate]" in format_record(records[1]) and records[1].why.startswith("refused (no_evidence)")
    json.dumps(s)
