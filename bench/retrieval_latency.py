"""Benchmark 4: retrieval latency over the SciFact index, p50 and p95 per mode (warm process).

Usage: python -m bench.retrieval_latency [--data-dir DIR] [--repeat N]
The index is the one `rag eval retrieval` builds for the corpus (built here if missing).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import SCIFACT, machine, percentile


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=".rag-bench")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()

    from eval.retrieval import corpus_index_name, load_queries
    from index.ingest import ingest
    from rag.retrieve import Retriever
    from rag.settings import Settings

    settings = Settings(data_dir=Path(args.data_dir))
    corpus = SCIFACT / "corpus.jsonl"
    name = corpus_index_name(corpus)
    report = ingest([corpus], settings, index_name=name)
    queries = list(load_queries(SCIFACT / "queries.jsonl").values())
    retriever = Retriever(settings, index_name=name)
    retriever.warm_up()
    for q in queries[:5]:
        retriever.search(q, k=args.k, mode="hybrid")
    print(f"SciFact index: {report.documents_total} docs, {report.chunks_total} chunks; {len(queries)} queries x "
          f"{args.repeat}, k={args.k}; {machine()}")
    out = {}
    for mode in ("dense", "bm25", "hybrid"):
        times = []
        for _ in range(args.repeat):
            for q in queries:
                t = time.perf_counter()
                retriever.search(q, k=args.k, mode=mode)  # type: ignore[arg-type]
                times.append(1000 * (time.perf_counter() - t))
        out[mode] = {"p50_ms": round(percentile(times, 50), 2), "p95_ms": round(percentile(times, 95), 2),
                     "n": len(times)}
        print(f"{mode:<7} p50 {out[mode]['p50_ms']:7.2f} ms   p95 {out[mode]['p95_ms']:7.2f} ms")
    print("target: hybrid p50 <= 30 ms")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
