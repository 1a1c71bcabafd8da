"""Superseded by ``python -m bench.calibrate_answerability`` (issue 10), which fits the multi-signal answerability
decision on several sets; kept to reproduce the single-threshold figures of docs/benchmarks.md section 5.

Calibrate the evidence gate (``RAG_GATE_THRESHOLD``) on SQuAD 2.0 questions.

The gate refuses without calling an LLM when the best evidence sentence's cross-encoder score
(sigmoid of the logit) is below the threshold. This script answers a seeded calibration sample of
SQuAD 2.0 questions (about half unanswerable) in extractive mode with the gate open (threshold 0),
records each question's evidence score, and picks the threshold that maximises the balanced accuracy
of "refuse iff unanswerable". The questions of the reporting sample (``rag eval qa --limit 200
--seed 0``) are excluded, so the reported figures are not measured on the calibration rows.

    python -m bench.calibrate_gate [--limit 400] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from bench.common import SHARED, machine
from eval.qa import load_questions, sample_questions
from eval.retrieval import corpus_index_name

SQUAD = SHARED / "data" / "squad2"


def auroc(pos: list[float], neg: list[float]) -> float:
    """P(score of a random positive > score of a random negative), ties count half."""
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def best_threshold(answerable: list[float], impossible: list[float]) -> tuple[float, float]:
    """The threshold (midpoint between neighbouring scores) with the best balanced accuracy."""
    values = sorted(set(answerable + impossible))
    cands = [0.0] + [(a + b) / 2 for a, b in itertools.pairwise(values)] + [1.0]
    best = (0.0, -1.0)
    for t in cands:
        tpr = sum(s < t for s in impossible) / len(impossible)  # unanswerable refused
        tnr = sum(s >= t for s in answerable) / len(answerable)  # answerable kept
        bacc = (tpr + tnr) / 2
        if bacc > best[1] + 1e-12:
            best = (t, bacc)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--exclude-limit", type=int, default=200, help="size of the reporting sample to exclude")
    ap.add_argument("--exclude-seed", type=int, default=0)
    ap.add_argument("--mode", default="extractive", choices=["extractive", "local", "hosted"],
                    help="with an LLM mode the threshold is chosen for the whole pipeline's refusals")
    ap.add_argument("--rows", type=str, default=None, help="write per-question rows (JSON lines) here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from index.ingest import ingest
    from rag.pipeline import Pipeline
    from rag.settings import get_settings

    settings = get_settings().model_copy(update={"gate_threshold": 0.0, "extractive_gate_threshold": 0.0})
    passages, questions = SQUAD / "passages.jsonl", SQUAD / "questions.jsonl"
    all_q = load_questions(questions)
    excluded = {q.id for q in sample_questions(all_q, args.exclude_limit, args.exclude_seed)}
    pool = [q for q in all_q if q.id not in excluded]
    sample = sample_questions(pool, args.limit, args.seed)
    index_name = corpus_index_name(passages)
    ingest([passages], settings, index_name=index_name)
    pipe = Pipeline(settings, index_name=index_name, mode=args.mode)
    pipe.warm_up()
    rows = []
    t0 = time.perf_counter()
    for i, q in enumerate(sample, 1):
        a = pipe.ask(q.question)
        from eval.qa import f1

        rows.append({"id": q.id, "impossible": q.is_impossible, "score": a.evidence_score,
                     "refused": a.refused, "reason": a.refusal_reason, "fallback": a.fallback,
                     "support": [s.score for s in a.sentences], "dropped": [s.score for s in a.dropped],
                     "f1": None if q.is_impossible or a.refused else f1(a.text, q.answers),
                     "text": a.text, "seconds": a.seconds.get("total")})
        if i % 50 == 0:
            print(f"  {i}/{len(sample)} questions, {time.perf_counter() - t0:.0f} s", flush=True)
    if args.rows:
        with open(args.rows, "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    # A question the pipeline itself refused (LLM said not found, or nothing verified) scores -1: refused
    # at any threshold. With --mode extractive nothing is refused at threshold 0, so this is the gate alone.
    pos = [-1.0 if r["refused"] else r["score"] for r in rows if not r["impossible"]]
    neg = [-1.0 if r["refused"] else r["score"] for r in rows if r["impossible"]]
    threshold, bacc = best_threshold(pos, neg)
    result = {
        "machine": machine(), "questions": len(rows), "answerable": len(pos), "unanswerable": len(neg),
        "auroc": round(auroc(pos, neg), 4), "threshold": round(threshold, 4), "bacc": round(bacc, 4),
        "rerank_candidates": settings.rerank_candidates, "evidence_chunks": settings.evidence_chunks,
        "seed": args.seed, "limit": args.limit, "mode": args.mode,
    }
    print(f"calibration on {len(rows)} SQuAD 2.0 questions ({len(pos)} answerable, {len(neg)} unanswerable)")
    print(f"AUROC of the evidence score (answerable vs not): {result['auroc']:.4f}")
    print(f"best threshold {threshold:.4f}: balanced accuracy {bacc:.4f}")
    for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        tpr = sum(s < t for s in neg) / len(neg)
        tnr = sum(s >= t for s in pos) / len(pos)
        print(f"  threshold {t:.2f}: unanswerable refused {tpr:.3f}, answerable kept {tnr:.3f}, "
              f"bacc {(tpr + tnr) / 2:.3f}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
