"""Fit the answerability decision (``rag/answerability.json``) on a mix of question sets.

For every question of each set, the real pipeline (extractive mode, nothing refused) retrieves, reranks and scores
evidence sentences; the signals of :mod:`rag.answerability` are recorded with the label "answerable". A logistic
model is then fitted with 5-fold cross-validation, each set weighted equally and, inside a set, both classes weighted
equally, so that no one set (SQuAD's 5,578 rows) dominates. Figures are reported per set, cross-validated.

Thresholds stored:
- ``extractive``: the best mean balanced accuracy over the sets (it is extractive mode's only refusal signal);
- ``llm``: the highest threshold that keeps at least ``--llm-recall`` of the answerable questions (set-weighted); the
  LLM's own NOT FOUND and question-aware verification refuse after it;
- ``relevance_floor``: a low percentile (``--floor-percentile``) of the cross-encoder logit of the best sentence that
  holds a gold answer, over answerable questions whose evidence holds one: an answer taken from a sentence scoring
  below it is not about what was asked.

Sets: SQuAD 2.0 dev (``--squad-limit`` questions, seed ``--squad-seed``, the reporting sample of ``rag eval qa --limit
200 --seed 0`` excluded), ``../shared/data/realdocs`` (questions.jsonl over docs/), the seed golden set (first turns).

    python -m bench.calibrate_answerability --collect     # signals -> bench/results/answerability_rows.jsonl
    python -m bench.calibrate_answerability --write       # fit, report, write rag/answerability.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import REPO, SHARED, machine

ROWS = REPO / "bench" / "results" / "answerability_rows.jsonl"
SQUAD = SHARED / "data" / "squad2"
REALDOCS = SHARED / "data" / "realdocs"
SEEDS_GOLDEN = REPO / "eval" / "golden" / "seeds.jsonl"


def _norm(text: str) -> str:
    from eval.golden import normalize

    return normalize(text)


def _holds(text: str, answers: Sequence[str]) -> bool:
    t = f" {_norm(text)} "
    return any(_norm(a) and f" {_norm(a)} " in t for a in answers)


def _collect_set(name: str, corpus: list[Path], questions: list[dict[str, Any]], settings: Any) -> list[dict[str, Any]]:
    from index.ingest import ingest
    from rag.pipeline import Pipeline

    index_name = f"calib-{name}"
    t0 = time.perf_counter()
    ingest(corpus, settings, index_name=index_name)
    print(f"[{name}] indexed in {time.perf_counter() - t0:.0f} s; {len(questions)} questions", flush=True)
    pipe = Pipeline(settings, index_name=index_name, mode="extractive")
    pipe.warm_up()
    rows = []
    for i, q in enumerate(questions, 1):
        hits = pipe.retriever.search(q["question"], k=settings.rerank_candidates)
        found = pipe._evidence(q["question"], hits)
        answers = q.get("answers") or []
        gold_logits = [s.score for s in found.sentences if answers and _holds(s.text, answers)]
        rows.append({
            "set": name, "id": q["id"], "answerable": bool(q["answerable"]), "signals": found.signals,
            "gold_in_chunks": bool(answers) and any(_holds(h.chunk.text, answers) for h in hits),
            "gold_in_evidence": bool(answers) and any(_holds(p.text, answers) for p in found.passages),
            "gold_sentence_logit": max(gold_logits) if gold_logits else None,
        })
        if i % 50 == 0:
            print(f"[{name}] {i}/{len(questions)} in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def question_sets(squad_limit: int, squad_seed: int) -> list[tuple[str, list[Path], list[dict[str, Any]]]]:
    """(name, corpus, questions) of the calibration sets: SQuAD 2.0 dev (sampled, the reporting sample excluded),
    realdocs, the seed golden set's first turns. Questions are dicts with id, question, answerable, answers."""
    from eval.qa import load_questions, sample_questions

    sets: list[tuple[str, list[Path], list[dict[str, Any]]]] = []
    all_q = load_questions(SQUAD / "questions.jsonl")
    excluded = {q.id for q in sample_questions(all_q, 200, 0)}
    squad = sample_questions([q for q in all_q if q.id not in excluded], squad_limit, squad_seed)
    sets.append(("squad2", [SQUAD / "passages.jsonl"],
                 [{"id": q.id, "question": q.question, "answerable": not q.is_impossible, "answers": list(q.answers)}
                  for q in squad]))
    real = [json.loads(line) for line in (REALDOCS / "questions.jsonl").read_text().splitlines() if line.strip()]
    sets.append(("realdocs", [REALDOCS / "docs"], real))
    seeds = [json.loads(line) for line in SEEDS_GOLDEN.read_text().splitlines() if line.strip()]
    seeds = [r for r in seeds if not r.get("turn") and not r.get("history")]
    sets.append(("seeds", [REPO / "seeds"], seeds))
    return sets


def collect(args: argparse.Namespace) -> None:
    import tempfile

    from rag.settings import Settings

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="rag-calib-"))
    settings = Settings(data_dir=data_dir)
    rows: list[dict[str, Any]] = []
    for name, corpus, questions in question_sets(args.squad_limit, args.squad_seed):
        if args.sets and name not in args.sets:
            continue
        rows += _collect_set(name, corpus, questions, settings)
    ROWS.parent.mkdir(parents=True, exist_ok=True)
    done = {r["set"] for r in rows}
    if ROWS.exists():  # keep the rows of the sets not collected this time
        rows = [r for r in map(json.loads, ROWS.read_text().splitlines()) if r["set"] not in done] + rows
    with ROWS.open("w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    print(f"wrote {len(rows)} rows to {ROWS}")


def _weights(rows: Sequence[dict[str, Any]]) -> list[float]:
    """Each set weighs the same in all, and inside a set each class weighs the same."""
    counts: dict[tuple[str, bool], int] = {}
    for r in rows:
        counts[(r["set"], r["answerable"])] = counts.get((r["set"], r["answerable"]), 0) + 1
    return [1.0 / counts[(r["set"], r["answerable"])] for r in rows]


def _bacc(rows: Sequence[dict[str, Any]], probs: Sequence[float], t: float) -> float:
    pos = [p for r, p in zip(rows, probs, strict=True) if r["answerable"]]
    neg = [p for r, p in zip(rows, probs, strict=True) if not r["answerable"]]
    if not pos or not neg:
        return float("nan")
    return (sum(p >= t for p in pos) / len(pos) + sum(p < t for p in neg) / len(neg)) / 2


def _auroc(rows: Sequence[dict[str, Any]], probs: Sequence[float]) -> float:
    pos = [p for r, p in zip(rows, probs, strict=True) if r["answerable"]]
    neg = [p for r, p in zip(rows, probs, strict=True) if not r["answerable"]]
    if not pos or not neg:
        return float("nan")
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def _per_set(rows: Sequence[dict[str, Any]], probs: Sequence[float], t: float) -> dict[str, dict[str, float]]:
    out = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        idx = [i for i, r in enumerate(rows) if r["set"] == name]
        rs, ps = [rows[i] for i in idx], [probs[i] for i in idx]
        pos = [p for r, p in zip(rs, ps, strict=True) if r["answerable"]]
        neg = [p for r, p in zip(rs, ps, strict=True) if not r["answerable"]]
        out[name] = {
            "questions": len(rs), "bacc": round(_bacc(rs, ps, t), 4), "auroc": round(_auroc(rs, ps), 4),
            "answerable_kept": round(sum(p >= t for p in pos) / len(pos), 4) if pos else None,
            "unanswerable_refused": round(sum(p < t for p in neg) / len(neg), 4) if neg else None,
        }
    return out


def _mean_bacc(rows: Sequence[dict[str, Any]], probs: Sequence[float], t: float) -> float:
    vals = [v["bacc"] for v in _per_set(rows, probs, t).values() if v["bacc"] == v["bacc"]]
    return sum(vals) / len(vals)


def _kept(rows: Sequence[dict[str, Any]], probs: Sequence[float], t: float) -> float:
    vals = [v["answerable_kept"] for v in _per_set(rows, probs, t).values() if v["answerable_kept"] is not None]
    return sum(vals) / len(vals)


def fit(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from rag.answerability import _CLIP, FEATURES

    rows = [json.loads(line) for line in ROWS.read_text().splitlines() if line.strip()]

    def x_of(r: dict[str, Any]) -> list[float]:
        sig = r["signals"]
        if not sig:
            return [-_CLIP, -_CLIP, -_CLIP, 0.0, 0.0]
        return [max(-_CLIP, min(_CLIP, float(sig[f]))) if f != "coverage" else float(sig[f]) for f in FEATURES]

    x = np.array([x_of(r) for r in rows])
    y = np.array([r["answerable"] for r in rows])
    w = np.array(_weights(rows))
    strata = np.array([f"{r['set']}:{r['answerable']}" for r in rows])
    cv_probs = np.zeros(len(rows))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, strata):
        model = LogisticRegression(C=args.c, max_iter=2000).fit(x[train], y[train], sample_weight=w[train])
        cv_probs[test] = model.predict_proba(x[test])[:, 1]
    model = LogisticRegression(C=args.c, max_iter=2000).fit(x, y, sample_weight=w)
    probs = model.predict_proba(x)[:, 1]

    grid = [i / 1000 for i in range(1, 1000)]
    t_ex = max(grid, key=lambda t: (_mean_bacc(rows, list(cv_probs), t), -abs(t - 0.5)))
    ok = [t for t in grid if _kept(rows, list(cv_probs), t) >= args.llm_recall]
    t_llm = max(ok) if ok else grid[0]
    golds = {}
    for r in rows:
        if r["answerable"] and r["gold_sentence_logit"] is not None:
            golds.setdefault(r["set"], []).append(r["gold_sentence_logit"])
    floor_by_set = {k: float(np.percentile(v, args.floor_percentile)) for k, v in golds.items()}
    floor = min(floor_by_set.values()) if floor_by_set else -12.0

    result = {
        "_about": (
            "Answerability decision of rag/answerability.py: logistic weights over its FEATURES, fitted "
            f"{dt.date.today().isoformat()} on {machine()} by `python -m bench.calibrate_answerability --collect` "
            f"then `--write` (C={args.c}, llm recall >= {args.llm_recall}, floor percentile {args.floor_percentile}). "
            "Data: SQuAD 2.0 dev (../shared/data/squad2, "
            f"{args.squad_limit} questions, seed {args.squad_seed}, the rag eval qa reporting sample excluded), "
            "../shared/data/realdocs (60 questions over docs/), eval/golden/seeds.jsonl (first turns); each set weighs "
            "the same, each class inside a set the same. Figures below: 5-fold cross-validated, per set."
        ),
        "weights": {f: round(float(c), 6) for f, c in zip(FEATURES, model.coef_[0], strict=True)},
        "bias": round(float(model.intercept_[0]), 6),
        "thresholds": {"llm": t_llm, "extractive": t_ex, "relevance_floor": round(floor, 4)},
        "cv": {
            "extractive": _per_set(rows, list(cv_probs), t_ex),
            "llm": _per_set(rows, list(cv_probs), t_llm),
        },
        "in_sample_extractive": _per_set(rows, list(probs), t_ex),
        "relevance_floor_by_set": {k: round(v, 4) for k, v in floor_by_set.items()},
        "gold_in_chunks": {k: sum(r["gold_in_chunks"] for r in rows if r["set"] == k and r["answerable"])
                           for k in dict.fromkeys(r["set"] for r in rows)},
        "gold_in_evidence": {k: sum(r["gold_in_evidence"] for r in rows if r["set"] == k and r["answerable"])
                             for k in dict.fromkeys(r["set"] for r in rows)},
    }
    # the old gate, for comparison: the best sentence alone
    sent = [1 / (1 + np.exp(-r["signals"]["sent_top"])) if r["signals"] else 0.0 for r in rows]
    result["old_gate_sentence_only"] = {
        "auroc_by_set": {k: round(v["auroc"], 4) for k, v in _per_set(rows, sent, 0.956).items()},
        "at_0.956": _per_set(rows, sent, 0.956),
    }
    print(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collect", action="store_true", help="run the pipeline and record signals first")
    ap.add_argument("--write", action="store_true", help="write rag/answerability.json")
    ap.add_argument("--sets", nargs="*", default=None, help="only these sets when collecting")
    ap.add_argument("--squad-limit", type=int, default=160)
    ap.add_argument("--squad-seed", type=int, default=1)
    ap.add_argument("--data-dir", default=None, help="where to index the sets (default: a temporary folder)")
    ap.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength")
    ap.add_argument("--llm-recall", type=float, default=0.95)
    ap.add_argument("--floor-percentile", type=float, default=5.0)
    args = ap.parse_args(argv)
    if args.collect:
        collect(args)
    result = fit(args)
    if args.write:
        from rag.answerability import ANSWERABILITY_PATH

        if ANSWERABILITY_PATH.exists():  # keep the second stage (bench/calibrate_accept.py)
            old = json.loads(ANSWERABILITY_PATH.read_text(encoding="utf-8"))
            for key in ("accept",):
                if key in old:
                    result[key] = old[key]
            if "not_found" in old.get("thresholds", {}):
                result["thresholds"]["not_found"] = old["thresholds"]["not_found"]
        ANSWERABILITY_PATH.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {ANSWERABILITY_PATH}")


if __name__ == "__main__":
    main()
