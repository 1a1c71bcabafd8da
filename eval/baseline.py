"""Baselines that let an evaluation run gate CI: compare a run's summary with the figures in ``baseline.json``.

    regressions = compare("groundedness", summary)
    if regressions:
        print(format_regressions(regressions, "groundedness")); sys.exit(1)

``baseline.json`` maps a run kind (the ``kind`` of :class:`eval.runs.RunFolder`: "groundedness", "suite",
"condense", "qa", "retrieval", ...) to ``{metric: {"value": float, "tolerance": float, "higher_is_better": bool}}``;
keys starting with ``_`` are notes (the top-level ``"_about"`` says when and how the values were measured; a kind may
carry its own ``"_about"`` too). A metric name is a summary key; a dotted name (``"latency.p95"``) reaches into
nested dicts when the summary has no such flat key.

Rules:
- higher_is_better: a regression when ``value < baseline - tolerance``; otherwise when ``value > baseline +
  tolerance`` (latencies, error rates). Exactly at the edge of the tolerance is not a regression.
- a metric of the baseline that the summary lacks, or has as None, NaN or a non-number, is a regression (so a
  renamed or silently dropped figure cannot pass the gate).
- a kind missing from the file, or present with an empty object, has no baseline yet: ``compare`` returns ``[]``.
  The file lists every known kind, with an empty object for those not yet measured, so what is and is not gated
  is visible in one place; fill a kind's metrics to start gating it.
- extra metrics in the summary are ignored.

A malformed baseline file (an entry without a numeric ``value``, a negative ``tolerance``, a non-boolean
``higher_is_better``) raises :class:`BaselineError` (a ValueError) naming the kind and metric.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.data import DataFileError

DEFAULT = Path(__file__).resolve().parent / "baseline.json"
_SLACK = 1e-9  # float noise at the edge of the tolerance (0.91 - 0.02 != 0.89 exactly)


class BaselineError(DataFileError):
    """A malformed baseline file (the message names the file, kind and metric)."""


@dataclass(frozen=True)
class Regression:
    metric: str
    baseline: float
    value: float | None  # None: missing from the summary (or not a number)
    tolerance: float
    higher_is_better: bool
    message: str


@dataclass(frozen=True)
class Target:
    value: float
    tolerance: float
    higher_is_better: bool


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def load_baseline(path: str | Path = DEFAULT) -> dict[str, dict[str, Target]]:
    """The baseline file as ``{kind: {metric: Target}}`` (notes, i.e. keys starting with ``_``, dropped)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise BaselineError(f"{path}: expected an object of run kinds")
    out: dict[str, dict[str, Target]] = {}
    for kind, metrics in data.items():
        if kind.startswith("_"):
            continue
        if not isinstance(metrics, dict):
            raise BaselineError(f"{path}: {kind!r} must be an object of metrics")
        targets: dict[str, Target] = {}
        for metric, spec in metrics.items():
            if metric.startswith("_"):
                continue
            where = f"{path}: {kind}.{metric}"
            if not isinstance(spec, dict):
                raise BaselineError(f"{where}: expected {{value, tolerance, higher_is_better}}")
            value, tol, hib = spec.get("value"), spec.get("tolerance", 0.0), spec.get("higher_is_better", True)
            if not _number(value):
                raise BaselineError(f"{where}: value must be a number, got {value!r}")
            if not _number(tol) or tol < 0:
                raise BaselineError(f"{where}: tolerance must be a number >= 0, got {tol!r}")
            if not isinstance(hib, bool):
                raise BaselineError(f"{where}: higher_is_better must be true or false, got {hib!r}")
            assert value is not None and tol is not None  # _number() checked both
            targets[metric] = Target(float(value), float(tol), hib)
        out[kind] = targets
    return out


def _lookup(summary: dict[str, Any], metric: str) -> tuple[bool, Any]:
    if metric in summary:
        return True, summary[metric]
    node: Any = summary
    for part in metric.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def compare(kind: str, summary: dict[str, Any], baseline_path: str | Path = DEFAULT) -> list[Regression]:
    """The regressions of ``summary`` (a run's summary.json) against the baseline of ``kind``; [] when none or
    when the file has no baseline for ``kind``."""
    targets = load_baseline(baseline_path).get(kind) or {}
    out: list[Regression] = []
    for metric, t in targets.items():
        found, raw = _lookup(summary, metric)
        direction = "higher" if t.higher_is_better else "lower"
        if not found or not _number(raw):
            why = "missing from the summary" if not found else f"not a number in the summary ({raw!r})"
            out.append(Regression(metric, t.value, None, t.tolerance, t.higher_is_better,
                                  f"{metric}: {why}; baseline {t.value:g} ({direction} is better)"))
            continue
        value = float(raw)
        if t.higher_is_better:
            bad = value < t.value - t.tolerance - _SLACK
        else:
            bad = value > t.value + t.tolerance + _SLACK
        if bad:
            worse = "below" if t.higher_is_better else "above"
            out.append(Regression(metric, t.value, value, t.tolerance, t.higher_is_better,
                                  f"{metric}: {value:g} is {abs(value - t.value):.4g} {worse} the baseline "
                                  f"{t.value:g} (tolerance {t.tolerance:g}, {direction} is better)"))
    return out


def format_regressions(regressions: Sequence[Regression], kind: str | None = None) -> str:
    """One line per regression under a heading, or a single line saying there is none."""
    what = f"{kind} " if kind else ""
    if not regressions:
        return f"{what}baseline: no regression"
    head = f"{what}baseline: {len(regressions)} regression{'s' if len(regressions) != 1 else ''}"
    return "\n".join([head, *(f"  - {r.message}" for r in regressions)])
