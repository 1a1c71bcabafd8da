"""Fit the second stage of the local LLM's answer decision: when to refuse on the LLM's own NOT FOUND, and which
drafted spans to show (the ``accept`` block and ``thresholds.not_found`` of ``rag/answerability.json``).

For every question of the calibration sets (those of :mod:`bench.calibrate_answerability`: SQuAD 2.0 dev sampled,
realdocs, the seed golden set), the real pipeline runs in local mode with nothing refused early: the answerability
gate open, the LLM's P(NOT FOUND) recorded but never acted on, every forced span kept. Each row holds the signals of
:data:`rag.answerability.ACCEPT_FEATURES` and the label "the span answers the question" (the answer holds a gold
answer, as ``rag eval suite`` scores it; never for an unanswerable question).

The fit: a logistic model over the standardised features (folded back to raw weights), 5-fold cross-validated,
each set weighted the same and inside a set
both labels the same. Thresholds, chosen on the cross-validated probabilities with every set weighted the same:
- ``accept`` (P(the span answers) a span needs) and ``not_found`` (the LLM's P(NOT FOUND) at which a question is
  refused without generating), searched together: the pair that maximises (right answers shown) - ``--wrong-cost``
  x (wrong answers shown), per set, averaged over the sets, so that a wrong answer shown as supported costs more
  than a refusal (``--wrong-cost`` 2 by default).

    python -m bench.calibrate_accept --collect      # ~40 min on 2 cores: rows -> bench/results/accept_rows.jsonl
    python -m bench.calibrate_accept --write        # fit, report, write into rag/answerability.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.calibrate_answerability import question_sets
from bench.common import REPO, machine

ROWS = REPO / "bench" / "results" / "accept_rows.jsonl"


def _correct(text: str, answers: Sequence[str]) -> bool:
    from eval.golden import contains
    from rag.pipeline import strip_citations

    body = strip_citations(text)
    return any(contains(body, a) for a in answers)


def collect(args: argparse.Namespace) -> None:
    from index.ingest import ingest
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="rag-accept-"))
    settings = Settings(data_dir=data_dir, gate_threshold=0.0, not_found_floor=1.0, accept_threshold=0.0,
                        llm_check=False)
    done: dict[tuple[str, str], dict[str, Any]] = {}
    if ROWS.exists() and not args.fresh:
        for line in ROWS.read_text().splitlines():
            r = json.loads(line)
            done[(r["set"], r["id"])] = r
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    for name, corpus, questions in question_sets(args.squad_limit, args.squad_seed):
        if args.sets and name not in args.sets:
            continue
        index_name = f"calib-{name}"
        ingest(corpus, settings, index_name=index_name)
        pipe = Pipeline(settings, index_name=index_name, mode="local")
        pipe.warm_up()
        t0 = time.perf_counter()
        for i, q in enumerate(questions, 1):
            if (name, q["id"]) in done:
                continue
            answer = pipe.ask(q["question"])
            answers = q.get("answers") or []
            row = {
                "set": name, "id": q["id"], "answerable": bool(q["answerable"]), "answers": answers,
                "span": _span(answer.text, answer.refused, [d.text for d in answer.dropped], answer.signals),
                "refused": answer.refused, "refusal_reason": answer.refusal_reason, "text": answer.text[:300],
                "dropped": [d.text[:200] for d in answer.dropped], "evidence_score": answer.evidence_score,
                "signals": answer.signals, "seconds": answer.seconds.get("total"),
            }
            done[(name, q["id"])] = row
            with ROWS.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            if i % 10 == 0:
                print(f"[{name}] {i}/{len(questions)} in {time.perf_counter() - t0:.0f} s", flush=True)


def _span(text: str, refused: bool, dropped: Sequence[str], signals: dict[str, float]) -> str | None:
    """The span the LLM drafted, shown or dropped (None when no span was drafted)."""
    if "span_words" not in signals:
        return None
    return text if not refused else (dropped[0] if dropped else None)


def _label(rows: list[dict[str, Any]], squad_limit: int, squad_seed: int) -> list[dict[str, Any]]:
    """Rows with ``span`` and ``correct``: the drafted span holds a gold answer (rows collected without the gold
    answers get them from the question sets)."""
    golds: dict[tuple[str, str], list[str]] = {}
    if any("answers" not in r for r in rows):
        for name, _, questions in question_sets(squad_limit, squad_seed):
            golds.update({(name, q["id"]): list(q.get("answers") or []) for q in questions})
    out = []
    for r in rows:
        answers = r.get("answers", golds.get((r["set"], r["id"]), []))
        span = r["span"] if "span" in r else _span(r["text"], r["refused"], r["dropped"], r["signals"])
        out.append({**r, "span": span, "correct": bool(r["answerable"] and span and _correct(span, answers))})
    return out


def _weights(rows: Sequence[dict[str, Any]]) -> list[float]:
    counts: dict[tuple[str, bool], int] = {}
    for r in rows:
        counts[(r["set"], r["correct"])] = counts.get((r["set"], r["correct"]), 0) + 1
    return [1.0 / counts[(r["set"], r["correct"])] for r in rows]


@functools.cache
def _gate() -> float:
    """The answerability gate of the LLM modes (read once: the threshold search calls this thousands of times)."""
    from rag.answerability import AnswerabilityModel

    return AnswerabilityModel.load().threshold("local")


def _outcome(rows: Sequence[dict[str, Any]], probs: Sequence[float], t_accept: float, t_nf: float,
             ) -> dict[str, dict[str, Any]]:
    """Per set: right answers shown, wrong answers shown, unanswerable refused, under the answerability gate and
    both thresholds."""
    out: dict[str, dict[str, Any]] = {}
    gate = _gate()
    for r, p in zip(rows, probs, strict=True):
        o = out.setdefault(r["set"], {"answerable": 0, "unanswerable": 0, "right_shown": 0, "wrong_shown": 0,
                                      "unanswerable_refused": 0})
        shown = (p >= t_accept and r["signals"].get("p_not_found", 0.0) < t_nf
                 and r["evidence_score"] >= gate)
        o["answerable" if r["answerable"] else "unanswerable"] += 1
        if shown and r["correct"]:
            o["right_shown"] += 1
        elif shown:
            o["wrong_shown"] += 1
        if not r["answerable"] and not shown:
            o["unanswerable_refused"] += 1
    return out


def _utility(rows: Sequence[dict[str, Any]], probs: Sequence[float], t_accept: float, t_nf: float,
             wrong_cost: float) -> float:
    vals = []
    for o in _outcome(rows, probs, t_accept, t_nf).values():
        n = o["answerable"] + o["unanswerable"]
        vals.append((o["right_shown"] - wrong_cost * o["wrong_shown"]) / n)
    return sum(vals) / len(vals)


def fit(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from rag.answerability import ACCEPT_FEATURES

    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line.strip()]
    rows = [r for r in _label(rows, args.squad_limit, args.squad_seed) if r["span"] is not None]
    x = np.array([[float(r["signals"][f]) for f in ACCEPT_FEATURES] for r in rows])
    y = np.array([r["correct"] for r in rows])
    w = np.array(_weights(rows))
    strata = np.array([f"{r['set']}:{r['correct']}" for r in rows])
    def fitted(xs: Any, ys: Any, ws: Any) -> tuple[Any, Any, float]:
        """Logistic regression on standardised features, folded back to weights over the raw features."""
        mean, scale = xs.mean(axis=0), xs.std(axis=0) + 1e-9
        m = LogisticRegression(C=args.c, max_iter=5000).fit((xs - mean) / scale, ys, sample_weight=ws)
        coef = m.coef_[0] / scale
        return m, coef, float(m.intercept_[0] - (coef * mean).sum())

    cv = np.zeros(len(rows))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, strata):
        _, coef, bias = fitted(x[train], y[train], w[train])
        cv[test] = 1 / (1 + np.exp(-(x[test] @ coef + bias)))
    _, coef, bias = fitted(x, y, w)
    probs = list(cv)
    grid = [i / 100 for i in range(1, 100)]
    # both thresholds together; ties go to the highest not_found floor, then the lowest acceptance threshold
    nf_grid = [i / 100 for i in range(5, 100, 2)] + [1.01]
    t_accept, t_nf = max(((ta, tn) for ta in grid for tn in nf_grid),
                         key=lambda p: (round(_utility(rows, probs, p[0], p[1], args.wrong_cost), 9), p[1], -p[0]))
    t_nf = min(t_nf, 1.0)
    result = {
        "_about": (
            "Acceptance of local-mode answer spans (rag/answerability.py ACCEPT_FEATURES), fitted "
            f"{dt.date.today().isoformat()} on {machine()} by `python -m bench.calibrate_accept --collect` then "
            f"`--write` (C={args.c}, wrong cost {args.wrong_cost}). Data: the "
            "sets of bench/calibrate_answerability.py (SQuAD 2.0 dev "
            f"{args.squad_limit} questions seed {args.squad_seed}, realdocs 60, seed golden first turns), run in "
            "local mode with the gate open and every span kept; label: the span holds a gold answer. Each set "
            "weighs the same. Figures: 5-fold cross-validated, per set."
        ),
        "weights": {f: round(float(c), 6) for f, c in zip(ACCEPT_FEATURES, coef, strict=True)},
        "bias": round(bias, 6),
        "threshold": t_accept,
        "not_found": t_nf,
        "cv": _outcome(rows, probs, t_accept, t_nf),
        "cv_without_acceptance": _outcome(rows, [1.0] * len(rows), 0.5, 1.01),
        "rows": len(rows),
    }
    print(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collect", action="store_true", help="run the pipeline and record rows first (resumable)")
    ap.add_argument("--fresh", action="store_true", help="with --collect: start over instead of resuming")
    ap.add_argument("--write", action="store_true", help="write the accept block into rag/answerability.json")
    ap.add_argument("--sets", nargs="*", default=None)
    ap.add_argument("--squad-limit", type=int, default=100)
    ap.add_argument("--squad-seed", type=int, default=1)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--c", type=float, default=1.0)
    ap.add_argument("--wrong-cost", type=float, default=2.0)
    args = ap.parse_args(argv)
    if args.collect:
        collect(args)
    if not ROWS.exists():
        raise SystemExit(f"no rows at {ROWS}: run with --collect first")
    result = fit(args)
    if args.write:
        from rag.answerability import ANSWERABILITY_PATH

        data = json.loads(ANSWERABILITY_PATH.read_text(encoding="utf-8"))
        data["accept"] = {k: result[k] for k in ("_about", "weights", "bias", "threshold", "cv",
                                                   "cv_without_acceptance", "rows")}
        data["thresholds"]["not_found"] = result["not_found"]
        ANSWERABILITY_PATH.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {ANSWERABILITY_PATH}")


if __name__ == "__main__":
    main()
