"""eval.report (PNG plots, Markdown tables and reports) and eval.baseline (CI gates): fast, no models."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eval.baseline import DEFAULT, Regression, compare, format_regressions, load_baseline
from eval.report import (
    calibration_bins,
    calibration_png,
    expected_calibration_error,
    groundedness_report,
    latency_png,
    markdown_table,
    percentile,
    score_distribution_png,
    suite_report,
    suite_verdict,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_bytes: int = 5_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} is only {len(data)} bytes"


# --------------------------------------------------------------------------- plots


def test_score_distribution_png(tmp_path: Path) -> None:
    out = score_distribution_png([0.9, 0.8, 0.95, 0.7], [0.1, 0.3, 0.55, 0.2], tmp_path / "sub" / "dist.png",
                                 threshold=0.5, title="t")
    assert out == tmp_path / "sub" / "dist.png"
    assert_png(out)
    assert_png(score_distribution_png([], [], tmp_path / "empty.png"), 2_000)  # "no data", not an error


def test_calibration_png_returns_ece(tmp_path: Path) -> None:
    probs = [0.1, 0.2, 0.8, 0.9, 0.85, 0.15]
    labels = [0, 0, 1, 1, 0, 1]
    ece = calibration_png(probs, labels, tmp_path / "cal.png", bins=5)
    assert_png(tmp_path / "cal.png")
    assert ece == pytest.approx(expected_calibration_error(probs, labels, bins=5))
    assert calibration_png([], [], tmp_path / "none.png") is None
    assert_png(tmp_path / "none.png", 2_000)


def test_ece_by_hand() -> None:
    # 2 bins: [0, .5) holds 0.2, 0.4 (mean .3, outcomes 0, 1 -> freq .5); [.5, 1] holds 0.6, 0.8, 1.0
    # (mean .8, outcomes 1, 1, 1 -> freq 1). ECE = 2/5 * |.3 - .5| + 3/5 * |.8 - 1| = .08 + .12 = .20
    probs, labels = [0.2, 0.4, 0.6, 0.8, 1.0], [False, True, True, True, True]
    assert expected_calibration_error(probs, labels, bins=2) == pytest.approx(0.20)
    table = calibration_bins(probs, labels, bins=2)
    assert [b["count"] for b in table] == [2, 3]
    assert table[0]["mean_probability"] == pytest.approx(0.3) and table[1]["frequency"] == pytest.approx(1.0)
    assert expected_calibration_error([0.0, 1.0], [0, 1], bins=10) == pytest.approx(0.0)  # perfect
    assert calibration_bins([0.5], [1], bins=4)[1]["count"] == 0 and calibration_bins([0.5], [1], 4)[2]["count"] == 1
    assert expected_calibration_error([], []) is None
    with pytest.raises(ValueError, match="labels"):
        expected_calibration_error([0.5], [1, 0])


def test_latency_png_and_percentile(tmp_path: Path) -> None:
    secs = [0.4, 0.5, 0.6, 0.7, 1.2, 3.5, 0.55, None, float("nan")]
    assert_png(latency_png(secs, tmp_path / "lat.png", title="Latency"))
    assert_png(latency_png([], tmp_path / "lat0.png"), 2_000)
    assert percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert percentile([5.0], 95) == 5.0 and percentile([], 50) is None


# --------------------------------------------------------------------------- markdown


def test_markdown_table_escapes_pipes_and_newlines() -> None:
    rows = [{"a": "x | y", "b": "line1\nline2\r\nline3", "c": 0.12345, "d": True},
            {"a": None, "b": "plain"}]
    table = markdown_table(rows, [("a", "A|1"), ("b", "B"), ("c", "C"), ("d", "D")])
    lines = table.splitlines()
    assert lines[0] == "| A\\|1 | B | C | D |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2] == "| x \\| y | line1<br>line2<br>line3 | 0.123 | yes |"
    assert lines[3] == "|  | plain |  |  |"  # missing keys and None: empty cells
    assert len(lines) == 4  # newlines never break a row


def test_markdown_table_max_rows_and_chars() -> None:
    rows = [{"t": "abcdefghij" * 3} for _ in range(5)]
    table = markdown_table(rows, [("t", "text")], max_rows=2, max_chars=10)
    assert table.count("\n| ") == 2 and "3 more rows not shown (5 in all)" in table
    assert "| abcdefghi… |" in table
    assert "more rows" not in markdown_table(rows, [("t", "text")], max_rows=None)


def test_write_report_embeds_images_relatively(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "20260101T000000Z"
    run.mkdir(parents=True)
    latency_png([0.1, 0.2, 0.3], run / "latency.png")
    summary = {"kind": "suite", "answer_accuracy": 0.8333333, "questions": 12, "latency": {"p50": 0.2}}
    out = write_report(run, "My run", summary, [("Notes", "some *text*")],
                       [("Latency [s]", "latency.png"), ("Absolute", run / "latency.png"), ("Gone", "nope.png")])
    assert out == run / "report.md"
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# My run\n")
    assert "](latency.png)" in text and str(tmp_path) not in text  # relative, never absolute
    assert text.count("](latency.png)") == 2
    assert "nope.png" in text and "](nope.png)" not in text  # a missing image is named, not embedded
    assert "| answer_accuracy | 0.8333 |" in text and "| questions | 12 |" in text and "| latency.p50 | 0.2 |" in text
    assert text.index("## Summary") < text.index("## Plots") < text.index("## Notes")
    assert "some *text*" in text
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (run / target).is_file()
    with pytest.raises(ValueError, match="not inside"):
        write_report(run, "x", {}, [], [("elsewhere", tmp_path / "other.png")])


def test_groundedness_report(tmp_path: Path) -> None:
    records = [
        {"id": f"r{i}", "label": label, "length_matched": i % 3 == 0, "score": score,
         "verdict": "supported" if score >= 0.5 else "unsupported", "correct": (label == "supported") == (score >= 0.5),
         "question": "Which | one?", "response": f"answer\n{i}"}
        for i, (label, score) in enumerate([("supported", 0.9), ("supported", 0.7), ("supported", 0.3),
                                            ("unsupported", 0.1), ("unsupported", 0.2), ("unsupported", 0.95)])
    ]
    summary = {"judge": "support-checker", "rows": 6, "balanced_accuracy": 0.6667, "threshold": 0.5}
    out = groundedness_report(tmp_path, summary, records)
    text = out.read_text(encoding="utf-8")
    for name in ("score_distribution.png", "score_distribution_length_matched.png", "calibration.png"):
        assert_png(tmp_path / name)
        assert f"]({name})" in text
    assert "| ece |" in text and "2 of 6 rows misjudged" in text
    misjudged = text[text.index("## Misjudged rows"):]
    assert misjudged.index("| r5 |") < misjudged.index("| r2 |")  # 0.95 is further from 0.5 than 0.3
    assert "Which \\| one?" in misjudged and "answer<br>5" in misjudged


def suite_records() -> list[dict]:
    cite = {"n": 1, "source": "/data/docs/report.pdf", "page": 3,
            "quote": "Revenue grew 12% in 2021 | driven by exports."}
    return [
        {"id": "g01", "question": "How much did revenue grow?", "answerable": True, "answer": "It grew 12% [1].",
         "citations": [cite], "correct": True, "refused": False, "grounded": 1.0, "sentence_scores": [0.91],
         "seconds": 1.4},
        {"id": "g02", "question": "Who is the CEO?", "answerable": True, "answer": "Bob [1].\nHe joined in 2019.",
         "citations": [cite], "correct": False, "refused": False, "grounded": 0.5, "sentence_scores": [0.8, 0.2],
         "seconds": 2.9, "answers": ["Alice"]},
        {"id": "g03", "question": "What is the moon made of?", "answerable": False, "answer": "I can't say.",
         "citations": [], "correct": True, "refused": True, "grounded": None, "sentence_scores": [],
         "seconds": 0.6},
        {"id": "g04", "question": "When?", "answerable": True, "answer": "", "citations": [], "correct": False,
         "refused": True, "refusal_reason": "no_evidence", "grounded": None, "sentence_scores": [],
         "seconds": 0.7},
    ]


def test_suite_verdicts() -> None:
    r = suite_records()
    assert suite_verdict(r[0]) == ("pass", "expected answer found")
    verdict, why = suite_verdict(r[1])
    assert verdict == "fail" and "expected answer missing (expected: Alice)" in why and "50% of sentences" in why
    assert suite_verdict(r[2]) == ("pass", "refused, as expected")
    assert suite_verdict(r[3]) == ("fail", "refused an answerable question (no_evidence)")
    assert suite_verdict({**r[0], "correct": None})[0] == "n/a"
    assert suite_verdict({"answerable": False, "refused": False, "correct": False, "citations": [1]})[1] == \
        "answered an unanswerable question"
    # eval.suite records: `passed` is the verdict (correct but not grounded fails) and `why` is taken as given
    suite_style = {**r[0], "passed": False, "why": "an unsupported sentence"}
    assert suite_verdict(suite_style) == ("fail", "an unsupported sentence")
    assert suite_verdict({**r[0], "passed": True, "why": "ok"}) == ("pass", "ok")
    assert suite_verdict({**r[0], "reasons": ["a", "b"]}) == ("pass", "a; b")


def test_suite_report(tmp_path: Path) -> None:
    out = suite_report(tmp_path, {"kind": "suite", "questions": 4, "support_threshold": 0.5}, suite_records())
    text = out.read_text(encoding="utf-8")
    assert_png(tmp_path / "latency.png")
    assert_png(tmp_path / "sentence_scores.png")
    assert "](latency.png)" in text and "](sentence_scores.png)" in text
    assert "2 pass, 2 fail, 0 not scored" in text
    assert "[1] report.pdf p.3: “Revenue grew 12% in 2021 \\| driven by exports.”" in text
    assert "Bob [1].<br>He joined in 2019." in text
    table = text[text.index("## Questions"):]
    assert len([line for line in table.splitlines() if line.startswith("| g0")]) == 4


def test_suite_report_explains_misses_by_stage_and_source(tmp_path: Path) -> None:
    records = suite_records()
    records[1].update(passed=False, why="no gold answer in the text", stage="wrong_span",
                      expected_sources=["report.pdf"])
    records[3].update(passed=False, why="refused (no_evidence)", stage="gate", expected_sources=["report.pdf"])
    records[0].update(passed=True, why="ok", stage=None, expected_sources=["report.pdf"])
    records[2].update(passed=True, why="ok", stage=None, expected_sources=["other.txt"])
    summary = {"questions": 4, "miss_stages": {"retrieval": 0, "gate": 1, "wrong_span": 1}, "wrong_supported": 1,
               "wrong_supported_ids": ["g02"]}
    text = suite_report(tmp_path, summary, records).read_text(encoding="utf-8")
    stages = text[text.index("## Misses by stage"):text.index("## By source")]
    assert "| gate | 1 | g04 |" in stages and "| wrong_span | 1 | g02 |" in stages and "| retrieval | 0 |  |" in stages
    assert stages.index("| retrieval |") < stages.index("| gate |") < stages.index("| wrong_span |")
    assert "Wrong answers shown as supported (every row, whatever its stage): **1** (g02)." in stages
    sources = text[text.index("## By source"):text.index("## Questions")]
    assert "| other.txt | 1 | 1 |  |" in sources and "| report.pdf | 1 | 3 | g02, g04 |" in sources
    failures = text[text.index("## Failures"):text.index("## Misses by stage")]
    assert "| stage |" in failures and "| wrong_span |" in failures
    # records without stages (older runs) get neither table
    plain = suite_report(tmp_path / "plain", {"questions": 4}, suite_records()).read_text(encoding="utf-8")
    assert "## Misses by stage" not in plain and "## By source" not in plain


def test_import_is_light() -> None:
    code = "import sys, eval.report, eval.baseline; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- baseline


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    p = tmp_path / "baseline.json"
    p.write_text(json.dumps({
        "_about": "test",
        "groundedness": {"auroc": {"value": 0.9, "tolerance": 0.02, "higher_is_better": True},
                         "balanced_accuracy": {"value": 0.91, "tolerance": 0.02, "higher_is_better": True}},
        "suite": {"_about": "note", "p95_seconds": {"value": 4.0, "tolerance": 0.5, "higher_is_better": False}},
        "qa": {},
    }))
    return p


def test_compare_within_tolerance(baseline: Path) -> None:
    assert compare("groundedness", {"auroc": 0.885, "balanced_accuracy": 0.89, "extra": 1}, baseline) == []
    assert compare("groundedness", {"auroc": 0.99, "balanced_accuracy": 0.95}, baseline) == []  # better is fine


def test_compare_below_is_regression(baseline: Path) -> None:
    regs = compare("groundedness", {"auroc": 0.87, "balanced_accuracy": 0.91}, baseline)
    assert len(regs) == 1
    r = regs[0]
    assert isinstance(r, Regression)
    assert (r.metric, r.baseline, r.value, r.tolerance) == ("auroc", 0.9, 0.87, 0.02)
    assert "auroc" in r.message and "below" in r.message and "0.9" in r.message


def test_compare_lower_is_better(baseline: Path) -> None:
    assert compare("suite", {"p95_seconds": 4.5}, baseline) == []
    assert compare("suite", {"p95_seconds": 1.0}, baseline) == []
    regs = compare("suite", {"p95_seconds": 4.6}, baseline)
    assert [r.metric for r in regs] == ["p95_seconds"] and "above" in regs[0].message
    assert compare("suite", {"latency": {"p95_seconds": 9}}, baseline) != []  # (dotted lookup needs a dotted name)


def test_compare_missing_metric_is_regression(baseline: Path) -> None:
    regs = compare("groundedness", {"auroc": 0.9}, baseline)
    assert [(r.metric, r.value) for r in regs] == [("balanced_accuracy", None)]
    assert "missing from the summary" in regs[0].message
    regs = compare("groundedness", {"auroc": None, "balanced_accuracy": float("nan")}, baseline)
    assert len(regs) == 2 and all("not a number" in r.message for r in regs)


def test_compare_unknown_or_empty_kind(baseline: Path) -> None:
    assert compare("retrieval", {"ndcg@10": 0.1}, baseline) == []
    assert compare("qa", {}, baseline) == []


def test_dotted_metric(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"qa": {"latency.p95": {"value": 2.0, "tolerance": 0.0, "higher_is_better": False}}}))
    assert compare("qa", {"latency": {"p95": 2.0}}, p) == []
    assert len(compare("qa", {"latency": {"p95": 2.1}}, p)) == 1


def test_format_regressions(baseline: Path) -> None:
    assert format_regressions([], "suite") == "suite baseline: no regression"
    text = format_regressions(compare("groundedness", {"auroc": 0.5}, baseline), "groundedness")
    assert text.splitlines()[0] == "groundedness baseline: 2 regressions"
    assert len(text.splitlines()) == 3


def test_malformed_baseline(tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    for bad, msg in (({"k": {"m": {"tolerance": 0.1}}}, "value"),
                     ({"k": {"m": {"value": 1, "tolerance": -1}}}, "tolerance"),
                     ({"k": {"m": {"value": 1, "higher_is_better": "yes"}}}, "higher_is_better"),
                     ({"k": []}, "object")):
        p.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=msg):
            compare("k", {}, p)


def test_shipped_baseline() -> None:
    data = json.loads(DEFAULT.read_text(encoding="utf-8"))
    assert isinstance(data["_about"], str) and data["_about"]
    g = load_baseline()["groundedness"]
    assert {m: (t.value, t.tolerance, t.higher_is_better) for m, t in g.items()} == {
        "balanced_accuracy": (0.922, 0.02, True),
        "balanced_accuracy_length_matched": (0.908, 0.02, True),
        "auroc": (0.930, 0.02, True),
    }
    assert compare("groundedness", {"balanced_accuracy": 0.922, "balanced_accuracy_length_matched": 0.908,
                                    "auroc": 0.930}) == []
    assert compare("groundedness", {"balanced_accuracy": 0.80, "balanced_accuracy_length_matched": 0.908,
                                    "auroc": 0.930}) != []
