"""Embedding speed of the packaged models on the same SciFact chunk texts, in one run (ratios).

Usage: python -m bench.embedders [--n 400] [--rounds 2]
Quality comes from `python -m bench.retrieval_quality --embed-model M`; this gives the speed half of the choice.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.common import SCIFACT, machine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    from index.chunk import chunk_document
    from index.embed import BGE_SMALL, MINILM, make_embedder
    from index.ingest import embedding_text
    from index.load import iter_jsonl
    from rag.settings import Settings

    s = Settings()
    texts: list[str] = []
    for doc in iter_jsonl(SCIFACT / "corpus.jsonl"):
        texts += [embedding_text(c, True) for c in chunk_document(doc, s.chunk_size, s.chunk_overlap)]
        if len(texts) >= args.n:
            break
    texts = texts[: args.n]
    models = {name: make_embedder(name, batch_size=s.embed_batch_size) for name in (MINILM, BGE_SMALL)}
    for m in models.values():
        m.embed_documents(texts[:8])
    seconds = {name: 0.0 for name in models}
    for _ in range(args.rounds):  # alternate, so drift in machine load hits both
        for name, m in models.items():
            t = time.perf_counter()
            m.embed_documents(texts)
            seconds[name] += time.perf_counter() - t
    rate = {name: args.n * args.rounds / sec for name, sec in seconds.items()}
    print(f"{args.n} SciFact chunk texts x {args.rounds} rounds, batch {s.embed_batch_size}; {machine()}")
    for name in models:
        print(f"{name:<20} {rate[name]:7.1f} texts/s")
    print(f"{BGE_SMALL} / {MINILM} speed: {rate[BGE_SMALL] / rate[MINILM]:.2f}")
    print(json.dumps({"texts_per_s": {k: round(v, 2) for k, v in rate.items()}}))


if __name__ == "__main__":
    main()
