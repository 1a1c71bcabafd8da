"""Markdown reports with PNG plots for a run folder (see :mod:`eval.runs`).

Every function is given its data and a path; none reads results back from disk. Plots are drawn with matplotlib on
the non-interactive Agg canvas (no pyplot, so no global figure state and no display needed); matplotlib is imported
inside the plotting functions, so ``import eval.report`` stays light.

    ece = calibration_png(probs, labels, run.path / "calibration.png")
    write_report(run.path, "Groundedness", summary, [("Notes", "...")], [("Calibration", "calibration.png")])

Ready-made reports: :func:`groundedness_report` (``rag eval groundedness`` records) and :func:`suite_report`
(golden-suite records). Both write ``report.md`` plus their PNGs into the run folder and return the report's path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from eval.metrics import finite, percentile

REPORT_NAME = "report.md"
SUPPORTED_COLOR, UNSUPPORTED_COLOR = "#2a9d8f", "#e76f51"
_DPI = 110


# --------------------------------------------------------------------------- numbers


def calibration_bins(probabilities: Sequence[float], labels: Sequence[Any], bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width bins over [0, 1]: ``{lo, hi, count, mean_probability, frequency}`` per bin.

    A probability ``p`` falls in bin ``min(floor(p * bins), bins - 1)`` (so 1.0 is in the last bin); probabilities are
    clipped to [0, 1]. ``labels`` are truthy for the positive outcome. Empty bins have None means.
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    if len(probabilities) != len(labels):
        raise ValueError(f"{len(probabilities)} probabilities but {len(labels)} labels")
    sums = [[0, 0.0, 0.0] for _ in range(bins)]  # count, sum of p, sum of outcomes
    for p, y in zip(probabilities, labels, strict=True):
        if p is None or not math.isfinite(float(p)):
            continue
        p = min(1.0, max(0.0, float(p)))
        b = min(int(p * bins), bins - 1)
        sums[b][0] += 1
        sums[b][1] += p
        sums[b][2] += 1.0 if y else 0.0
    return [
        {"lo": i / bins, "hi": (i + 1) / bins, "count": n,
         "mean_probability": sp / n if n else None, "frequency": sy / n if n else None}
        for i, (n, sp, sy) in enumerate(sums)
    ]


def expected_calibration_error(probabilities: Sequence[float], labels: Sequence[Any], bins: int = 10) -> float | None:
    """ECE = sum over bins of (bin count / total) * |mean predicted probability - observed frequency|.

    None when there is no (finite) probability.
    """
    table = calibration_bins(probabilities, labels, bins)
    total = sum(b["count"] for b in table)
    if not total:
        return None
    return sum(b["count"] / total * abs(b["mean_probability"] - b["frequency"]) for b in table if b["count"])


# --------------------------------------------------------------------------- plots


def _figure(width: float = 7.0, height: float = 4.2) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _no_data(ax: Any, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4", fontsize=12)


def _integer_counts(ax: Any, headroom: float = 1.4, nbins: int | Literal["auto"] = "auto") -> None:
    """Whole-number ticks on the count axis, with room above the bars for the legend."""
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=nbins, integer=True))
    top = ax.get_ylim()[1]
    ax.set_ylim(0, max(1.0, top * headroom))


def _bin_edges(values: Sequence[float], bins: int, unit: bool) -> list[float]:
    if unit:
        return [i / bins for i in range(bins + 1)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return [lo + (hi - lo) * i / bins for i in range(bins + 1)]


def _histograms(groups: Sequence[tuple[str, Sequence[float], str]], path: str | Path, *, threshold: float | None,
                title: str, xlabel: str, bins: int = 20) -> Path:
    """Overlaid histograms of ``(label, values, colour)`` groups, with an optional threshold line."""
    clean = [(label, finite(values), color) for label, values, color in groups]
    everything = [v for _, vals, _ in clean for v in vals]
    unit = all(0.0 <= v <= 1.0 for v in everything)
    edges = _bin_edges(everything, bins, unit)
    fig = _figure()
    ax = fig.add_subplot()
    for label, vals, color in clean:
        if vals:
            mean = sum(vals) / len(vals)
            ax.hist(vals, bins=edges, alpha=0.55, color=color, edgecolor=color, linewidth=0.8,
                    label=f"{label} (n={len(vals)}, mean {mean:.2f})")
    if threshold is not None and math.isfinite(threshold):
        ax.axvline(threshold, color="0.15", linestyle="--", linewidth=1.4, label=f"threshold {threshold:.3f}")
    if not everything:
        _no_data(ax)
    if unit:
        ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.grid(axis="y", alpha=0.3)
    _integer_counts(ax)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", fontsize=9, framealpha=0.9)
    return _save(fig, path)


def score_distribution_png(scores_supported: Sequence[float], scores_unsupported: Sequence[float], path: str | Path,
                           threshold: float | None = None, title: str = "Support score by gold label",
                           bins: int = 20) -> Path:
    """Overlaid histograms of a checker's score for gold-supported vs gold-unsupported items, with the threshold
    as a dashed line. Scores in [0, 1] get bins over [0, 1]; otherwise over the data's range. Returns ``path``."""
    return _histograms(
        [("supported", scores_supported, SUPPORTED_COLOR), ("unsupported", scores_unsupported, UNSUPPORTED_COLOR)],
        path, threshold=threshold, title=title, xlabel="support score", bins=bins,
    )


def calibration_png(probabilities: Sequence[float], labels: Sequence[Any], path: str | Path, bins: int = 10,
                    title: str = "Reliability diagram") -> float | None:
    """Reliability diagram: per equal-width bin, the mean predicted probability against the observed frequency of
    the positive outcome (truthy ``labels``), with the diagonal of perfect calibration and the gap shaded; a lower
    panel shows each bin's count as a labelled bar. Writes ``path``; returns the ECE (None without data)."""
    table = calibration_bins(probabilities, labels, bins)
    ece = expected_calibration_error(probabilities, labels, bins)
    fig = _figure(6.0, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], color="0.55", linestyle="--", linewidth=1, label="perfect calibration")
    full = [b for b in table if b["count"]]
    if full:
        xs = [b["mean_probability"] for b in full]
        ys = [b["frequency"] for b in full]
        for b in full:  # the gap between confidence and accuracy
            top.plot([b["mean_probability"]] * 2, [b["mean_probability"], b["frequency"]], color=UNSUPPORTED_COLOR,
                     alpha=0.45, linewidth=3, solid_capstyle="butt")
        top.plot(xs, ys, marker="o", color=SUPPORTED_COLOR, linewidth=1.8, label="observed")
    else:
        _no_data(top)
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.08)
    top.set_ylabel("observed frequency")
    top.set_title(title + (f" — ECE {ece:.3f}" if ece is not None else ""))
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=9)
    width = 1 / bins
    bars = bottom.bar([b["lo"] + width / 2 for b in table], [b["count"] for b in table], width=width * 0.9,
                      color="0.6", edgecolor="0.4")
    bottom.bar_label(bars, labels=[str(b["count"]) if b["count"] else "" for b in table], fontsize=7, padding=1)
    bottom.set_xlabel("mean predicted probability")
    bottom.set_ylabel("items")
    _integer_counts(bottom, 1.3, nbins=3)
    bottom.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return ece


def latency_png(seconds: Sequence[float | None], path: str | Path, title: str = "Latency", bins: int = 30) -> Path:
    """Histogram of latencies (seconds) with the p50 and p95 as vertical lines. Returns ``path``."""
    vals = finite(seconds)
    fig = _figure()
    ax = fig.add_subplot()
    if vals:
        hi = max(vals)
        bins = min(bins, max(5, math.ceil(2 * math.sqrt(len(vals)))))
        edges = _bin_edges([0.0, hi if hi > 0 else 1.0], bins, unit=False)
        ax.hist(vals, bins=edges, color="#457b9d", alpha=0.8, edgecolor="white", linewidth=0.5,
                label=f"n={len(vals)}, mean {sum(vals) / len(vals):.2f} s, max {hi:.2f} s")
        for q, style in ((50, "-"), (95, "--")):
            v = percentile(vals, q)
            ax.axvline(v, color="#1d3557", linestyle=style, linewidth=1.5, label=f"p{q} {v:.2f} s")
        ax.set_xlim(left=0)
        _integer_counts(ax)
        ax.legend(loc="upper right", fontsize=9, framealpha=0.9)
    else:
        _no_data(ax)
    ax.set_title(title)
    ax.set_xlabel("seconds")
    ax.set_ylabel("items")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# --------------------------------------------------------------------------- markdown


def escape_cell(value: Any, max_chars: int | None = None) -> str:
    """A table cell: None -> empty, floats to 3 decimals, bools yes/no, ``|`` escaped, line breaks -> ``<br>``,
    optionally cut to ``max_chars`` characters (with an ellipsis)."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = "n/a" if math.isnan(value) else f"{value:.3f}"
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    if max_chars is not None and len(text) > max_chars:
        text = text[: max(1, max_chars - 1)].rstrip() + "…"
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("|", "\\|").replace("\n", "<br>")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], max_rows: int | None = 50,
                   max_chars: int | None = None) -> str:
    """A GitHub-flavoured Markdown table of ``rows`` with ``columns`` = ``[(key, header), ...]``.

    Cells go through :func:`escape_cell` (``|`` escaped, newlines as ``<br>``); a missing key is an empty cell. At
    most ``max_rows`` rows are shown (None: all), followed by a line saying how many were left out.
    """
    if not columns:
        raise ValueError("no columns")
    lines = ["| " + " | ".join(escape_cell(h) for _, h in columns) + " |", "|" + "---|" * len(columns)]
    shown = rows if max_rows is None else rows[:max_rows]
    for r in shown:
        lines.append("| " + " | ".join(escape_cell(r.get(k), max_chars) for k, _ in columns) + " |")
    table = "\n".join(lines)
    if len(rows) > len(shown):
        table += f"\n\n_{len(rows) - len(shown)} more rows not shown ({len(rows)} in all)._"
    return table


def _flatten(summary: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out


def _summary_value(v: Any) -> Any:
    if isinstance(v, float) and math.isfinite(v):
        return str(round(v, 4))
    return v


def _image_target(run_path: Path, filename: str | Path) -> str:
    p = Path(filename)
    if p.is_absolute():
        try:
            p = p.relative_to(run_path)
        except ValueError:
            raise ValueError(f"image {filename} is not inside the run folder {run_path}") from None
    target = p.as_posix()
    return f"<{target}>" if any(c in target for c in " ()<>") else target


def write_report(run_path: str | Path, title: str, summary: dict[str, Any],
                 sections: Sequence[tuple[str, str]] = (), images: Sequence[tuple[str, str | Path]] = ()) -> Path:
    """Write ``<run_path>/report.md``: the title, the summary as a Metric | Value table (nested dicts flattened to
    dotted keys), the images embedded by path relative to the run folder (each with its caption; a missing file is
    named instead of embedded), then the sections as ``## heading`` + markdown. Returns the report's path."""
    run_path = Path(run_path)
    run_path.mkdir(parents=True, exist_ok=True)
    rows = [{"metric": k, "value": _summary_value(v)} for k, v in _flatten(summary)]
    parts = [f"# {title.strip()}", "", "## Summary", "",
             markdown_table(rows, [("metric", "Metric"), ("value", "Value")], max_rows=None) if rows else "_empty_"]
    if images:
        parts += ["", "## Plots"]
        for caption, filename in images:
            target = _image_target(run_path, filename)
            cap = " ".join(str(caption).split())
            if (run_path / Path(target.strip("<>"))).is_file():
                alt = cap.replace("[", "(").replace("]", ")")
                parts += ["", f"![{alt}]({target})", "", f"*{cap}*"]
            else:
                parts += ["", f"*{cap}: plot missing ({target}).*"]
    for heading, body in sections:
        parts += ["", f"## {' '.join(str(heading).split())}", "", body.strip()]
    out = run_path / REPORT_NAME
    out.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return out


# --------------------------------------------------------------------------- ready-made reports


def groundedness_report(run_path: str | Path, summary: dict[str, Any], records: Sequence[dict[str, Any]],
                        title: str | None = None, max_rows: int = 50) -> Path:
    """The report of ``rag eval groundedness``: score distributions (all rows, and the length-matched ones when
    there are any), the reliability diagram of the support score with its ECE, and the misjudged rows, most
    confidently wrong first. ``records`` are the command's (``id, label, score, verdict, correct, question,
    response, length_matched``). Writes the PNGs and ``report.md`` into ``run_path``; returns the report's path."""
    run_path = Path(run_path)
    threshold = summary.get("threshold")
    threshold = float(threshold) if isinstance(threshold, int | float) and math.isfinite(threshold) else None

    def scores(label: str, only_lm: bool = False) -> list[float]:
        return [r["score"] for r in records if r.get("label") == label and (not only_lm or r.get("length_matched"))]

    images: list[tuple[str, str]] = []
    score_distribution_png(scores("supported"), scores("unsupported"), run_path / "score_distribution.png",
                           threshold=threshold, title=f"Support score by gold label (all {len(records)} rows)")
    images.append(("Support score of gold-supported vs gold-unsupported responses; dashed: the decision threshold.",
                   "score_distribution.png"))
    lm = [r for r in records if r.get("length_matched")]
    if lm:
        score_distribution_png(scores("supported", True), scores("unsupported", True),
                               run_path / "score_distribution_length_matched.png", threshold=threshold,
                               title=f"Support score, length-matched rows ({len(lm)})")
        images.append(("The same on the length-matched rows, where length alone cannot separate the labels.",
                       "score_distribution_length_matched.png"))
    labelled = [r for r in records if r.get("label") in ("supported", "unsupported") and r.get("score") is not None]
    ece = calibration_png([r["score"] for r in labelled], [r["label"] == "supported" for r in labelled],
                          run_path / "calibration.png", title="Support score calibration")
    images.append((("Reliability diagram: support score (as the probability of 'supported') against the observed "
                    "share of supported rows per bin."), "calibration.png"))

    wrong = [r for r in records if r.get("correct") is False]
    if threshold is not None:
        wrong.sort(key=lambda r: -abs(float(r.get("score") or 0.0) - threshold))
    cols = [("id", "id"), ("label", "gold"), ("verdict", "verdict"), ("score", "score"), ("question", "question"),
            ("response", "response")]
    false_sup = sum(1 for r in wrong if r.get("label") == "unsupported")
    intro = (f"{len(wrong)} of {len(records)} rows misjudged: {false_sup} unsupported responses passed as supported, "
             f"{len(wrong) - false_sup} supported responses flagged as unsupported"
             + ("; most confidently wrong (farthest from the threshold) first." if threshold is not None else "."))
    calib = "No scores to calibrate."
    if ece is not None:
        bins = [{"bin": f"{b['lo']:.1f}–{b['hi']:.1f}", **b} for b in calibration_bins(
            [r["score"] for r in labelled], [r["label"] == "supported" for r in labelled]) if b["count"]]
        calib = ("Expected calibration error (10 equal-width bins) of the support score read as the probability "
                 f"that the response is supported: **{ece:.3f}**.\n\n" + markdown_table(
                     bins, [("bin", "score bin"), ("count", "rows"), ("mean_probability", "mean score"),
                            ("frequency", "share supported")], max_rows=None))
    sections = [("Calibration", calib),
                ("Misjudged rows", intro + "\n\n" + (markdown_table(wrong, cols, max_rows, max_chars=160)
                                                      if wrong else "_none_"))]
    name = summary.get("pairs") or summary.get("judge") or ""
    return write_report(run_path, title or f"Groundedness{': ' + str(name) if name else ''}",
                        {**summary, "ece": None if ece is None else round(ece, 4)}, sections, images)


def _citations_cell(citations: Any, quote_chars: int = 60) -> str:
    parts = []
    for i, c in enumerate(citations or (), start=1):
        if not isinstance(c, dict):
            parts.append(str(c))
            continue
        quote = " ".join(str(c.get("quote") or "").split())
        if len(quote) > quote_chars:
            quote = quote[: quote_chars - 1].rstrip() + "…"
        source = Path(str(c["source"])).name if c.get("source") else ""
        if source and c.get("page") is not None:
            source += f" p.{c['page']}"
        parts.append(f"[{c.get('n', i)}] {source}{': ' if source else ''}“{quote}”")
    return "\n".join(parts)


def _outcome(record: dict[str, Any]) -> bool | None:
    """The record's overall verdict: ``passed`` when it has one (eval.suite), else ``correct``."""
    passed = record.get("passed")
    return passed if isinstance(passed, bool) else record.get("correct")


def suite_verdict(record: dict[str, Any]) -> tuple[str, str]:
    """``(verdict, why)`` for a golden-suite record. verdict: pass / fail from ``passed`` when the record has it
    (eval.suite's SuiteRecord), else from ``correct``; n/a when that is None. why: the record's own ``why`` string or
    ``reasons`` list when present; otherwise explained from ``answerable``, ``refused``, ``refusal_reason``,
    ``correct``, ``answers``, ``cited``, ``grounded`` and ``citations``."""
    ok = _outcome(record)
    verdict = "n/a" if ok is None else ("pass" if ok else "fail")
    own = record.get("why") or record.get("reasons")
    if own:
        return verdict, own if isinstance(own, str) else "; ".join(str(x) for x in own)
    correct, refused, answerable = record.get("correct"), bool(record.get("refused")), record.get("answerable")
    reasons: list[str] = []
    if answerable is False:
        reasons.append("refused, as expected" if refused else "answered an unanswerable question")
    elif refused:
        reason = record.get("refusal_reason")
        reasons.append("refused an answerable question" + (f" ({reason})" if reason else ""))
    elif correct is True:
        reasons.append("expected answer found")
    elif correct is False:
        gold = record.get("answers") or record.get("expected")
        reasons.append("expected answer missing" + (f" (expected: {' / '.join(map(str, gold))})"
                                                     if isinstance(gold, list | tuple) and gold else ""))
    if not refused:
        if not record.get("citations"):
            reasons.append("no citations")
        elif record.get("cited") is False:
            reasons.append("no citation quotes the evidence")
        grounded = record.get("grounded")
        if isinstance(grounded, int | float) and not isinstance(grounded, bool) and grounded < 1:
            reasons.append(f"{grounded:.0%} of sentences supported")
    return verdict, "; ".join(dict.fromkeys(reasons))


def suite_report(run_path: str | Path, summary: dict[str, Any], records: Sequence[dict[str, Any]],
                 title: str = "Golden suite", max_rows: int | None = None, answer_chars: int = 300) -> Path:
    """The report of a golden-suite run: latency histogram (p50/p95), the distribution of the shown sentences'
    support scores (split by whether the answer passed), and a per-question table: answer, citations (number,
    source, page and a short quote) and verdict with the reason (see :func:`suite_verdict`). Records need ``id,
    question, answerable, answer, citations, correct, refused, grounded, sentence_scores, seconds``; ``passed``,
    ``why``, ``cited``, ``refusal_reason`` are used when present (eval.suite's SuiteRecord.to_dict() fits). The
    support threshold line comes from ``summary["support_threshold"]`` or ``summary["threshold"]`` when present.
    Failures are listed first in a section of their own too, with the pipeline stage each was lost at (``stage``), then
    a table of misses per stage (from ``summary["miss_stages"]``, or counted from the records) and, when records
    name their ``expected_sources``, passed / total per source file. Writes the PNGs and ``report.md`` into
    ``run_path``; returns the report's path."""
    run_path = Path(run_path)
    latency_png([r.get("seconds") for r in records], run_path / "latency.png",
                title=f"Answer latency ({len(records)} questions)")
    threshold = next((summary[k] for k in ("support_threshold", "threshold")
                      if isinstance(summary.get(k), int | float) and not isinstance(summary.get(k), bool)), None)
    passed = [s for r in records if _outcome(r) is True for s in finite(r.get("sentence_scores"))]
    failed = [s for r in records if _outcome(r) is not True for s in finite(r.get("sentence_scores"))]
    _histograms([("sentences of passed answers", passed, SUPPORTED_COLOR),
                 ("sentences of failed / unscored answers", failed, UNSUPPORTED_COLOR)],
                run_path / "sentence_scores.png", threshold=threshold,
                title=f"Support score of shown sentences ({len(passed) + len(failed)})", xlabel="support score")
    images = [("Latency per question; solid: p50, dashed: p95.", "latency.png"),
              ("Support scores of the sentences shown in the answers" +
               ("; dashed: the support threshold." if threshold is not None else "."), "sentence_scores.png")]

    rows = []
    for r in records:
        verdict, why = suite_verdict(r)
        grounded = r.get("grounded")
        rows.append({
            "id": r.get("id"), "question": r.get("question"),
            "answerable": r.get("answerable"),
            "answer": ("_(refused)_ " + str(r.get("answer") or "")).strip() if r.get("refused") else r.get("answer"),
            "citations": _citations_cell(r.get("citations")),
            "grounded": None if grounded is None else f"{grounded:.0%}",
            "seconds": f"{r['seconds']:.2f}" if finite([r.get("seconds")]) else None,
            "verdict": f"**{verdict}**" if verdict == "fail" else verdict, "why": why, "stage": r.get("stage"),
        })
    cols = [("id", "id"), ("question", "question"), ("answerable", "answerable"), ("answer", "answer"),
            ("citations", "citations"), ("grounded", "grounded"), ("seconds", "s"), ("verdict", "verdict"),
            ("why", "why")]
    fail_cols = [c for c in cols if c[0] != "citations"]
    if any(row["stage"] for row in rows):
        fail_cols.insert(-1, ("stage", "stage"))
    fails = [row for row in rows if row["verdict"] == "**fail**"]
    counts = {v: sum(1 for row in rows if str(row["verdict"]).strip("*") == v) for v in ("pass", "fail", "n/a")}
    sections = [
        ("Failures", f"{counts['fail']} of {len(rows)} failed." + (
            "\n\n" + markdown_table(fails, fail_cols, None, answer_chars) if fails else "")),
    ]
    stage_table = _miss_stage_table(summary, records)
    if stage_table:
        sections.append(("Misses by stage", stage_table))
    source_table = _source_table(records)
    if source_table:
        sections.append(("By source", source_table))
    sections += [
        ("Questions", f"{counts['pass']} pass, {counts['fail']} fail, {counts['n/a']} not scored.\n\n"
                      + markdown_table(rows, cols, max_rows, answer_chars) if rows else "_no questions_"),
    ]
    return write_report(run_path, title, summary, sections, images)


def _miss_stage_table(summary: dict[str, Any], records: Sequence[dict[str, Any]]) -> str:
    """Stage | misses | ids | meaning, in pipeline order (eval.suite's STAGES); empty when nothing names a stage."""
    from eval.suite import STAGE_MEANING, STAGES  # light: eval.suite imports no model

    counts = summary.get("miss_stages")
    staged = [r for r in records if r.get("stage")]
    if not isinstance(counts, dict) and not staged:
        return ""
    if not isinstance(counts, dict):
        counts = {st: sum(r.get("stage") == st for r in staged) for st in STAGES}
    order = [*STAGES, *(st for st in counts if st not in STAGES)]
    rows = [{"stage": st, "misses": counts.get(st, 0),
             "ids": ", ".join(str(r.get("id")) for r in staged if r.get("stage") == st),
             "meaning": STAGE_MEANING.get(st, "")} for st in order]
    wrong = summary.get("wrong_supported")
    note = (f"\n\nWrong answers shown as supported (every row, whatever its stage): **{wrong}**"
            + (f" ({', '.join(summary.get('wrong_supported_ids') or [])})" if summary.get("wrong_supported_ids")
               else "") + "." if wrong is not None else "")
    return ("Each miss is put down to the first pipeline stage that lost the answer (eval.suite.miss_stage).\n\n"
            + markdown_table(rows, [("stage", "stage"), ("misses", "misses"), ("ids", "ids"),
                                    ("meaning", "meaning")], max_rows=None) + note)


def _source_table(records: Sequence[dict[str, Any]]) -> str:
    """Source | passed | total | failed ids, per expected source file; empty when no record names one."""
    by: dict[str, dict[str, Any]] = {}
    for r in records:
        for name in dict.fromkeys(r.get("expected_sources") or ()):
            entry = by.setdefault(str(name), {"source": str(name), "passed": 0, "total": 0, "failed": []})
            entry["total"] += 1
            if _outcome(r) is True:
                entry["passed"] += 1
            else:
                entry["failed"].append(str(r.get("id")))
    rows = [{**e, "failed": ", ".join(e["failed"])} for _, e in sorted(by.items())]
    return markdown_table(rows, [("source", "source"), ("passed", "passed"), ("total", "total"),
                                 ("failed", "failed ids")], max_rows=None) if rows else ""
