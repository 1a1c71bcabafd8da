"""Answer latency per mode on the seed document: p50/p95 of the whole answer, first streamed token, stages.

Runs the standalone questions of the golden set (eval/golden/seeds.jsonl) through the pipeline, models
loaded beforehand (as in a running server), once per mode, in one process so the modes are compared on
the same machine state.

    python -m bench.answer_latency [--modes extractive local] [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

from bench.common import REPO, machine, percentile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", nargs="+", default=["extractive", "local"], choices=["extractive", "local", "hosted"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from eval.golden import load_golden
    from index.ingest import ingest
    from rag.pipeline import Pipeline
    from rag.settings import get_settings

    settings = get_settings()
    ingest([REPO / "seeds"], settings)
    items = [it for it in load_golden(REPO / "eval" / "golden" / "seeds.jsonl") if not it.conversation]
    results = {}
    for mode in args.modes:
        pipe = Pipeline(settings, mode=mode)  # type: ignore[arg-type]
        t = time.perf_counter()
        pipe.warm_up()
        warm = time.perf_counter() - t
        totals: list[float] = []
        firsts: list[float] = []
        stages: dict[str, list[float]] = {}
        refused = 0
        for _ in range(args.repeat):
            for it in items:
                t = time.perf_counter()
                answer = pipe.ask(it.question)
                totals.append(time.perf_counter() - t)
                refused += answer.refused
                if "first_token" in answer.seconds:
                    firsts.append(answer.seconds["first_token"])
                for k, v in answer.seconds.items():
                    if k not in ("total", "first_token"):
                        stages.setdefault(k, []).append(v)
        results[mode] = {
            "questions": len(totals), "refused": refused, "warm_up_s": round(warm, 2),
            "p50_s": round(percentile(totals, 50), 3), "p95_s": round(percentile(totals, 95), 3),
            "first_token_p50_s": round(percentile(firsts, 50), 3) if firsts else None,
            "first_token_p95_s": round(percentile(firsts, 95), 3) if firsts else None,
            "first_token_n": len(firsts),
            "stages_p50_s": {k: round(percentile(v, 50), 3) for k, v in stages.items()},
        }
    print(f"machine: {machine()}; model: {settings.llm_model}; "
          f"{len(items)} standalone golden questions x {args.repeat}")
    for mode, r in results.items():
        first = (f", first token p50 {r['first_token_p50_s']} s p95 {r['first_token_p95_s']} s "
                 f"(n={r['first_token_n']})") \
            if r["first_token_p50_s"] is not None else ""
        print(f"{mode:>10}: answer p50 {r['p50_s']} s, p95 {r['p95_s']} s{first}; "
              f"refused {r['refused']}/{r['questions']}")
        print(f"{'':>10}  stages p50: " + ", ".join(f"{k} {v}" for k, v in r["stages_p50_s"].items()))
    if "extractive" in results and "local" in results:
        print(f"local / extractive p50 ratio: {results['local']['p50_s'] / results['extractive']['p50_s']:.1f}x")
    if args.json:
        print(json.dumps({"machine": machine(), "model": settings.llm_model, **results}))


if __name__ == "__main__":
    main()
