"""Benchmark 1: SciFact nDCG@10 for dense, BM25 and hybrid through `rag eval retrieval`.

Usage: python -m bench.retrieval_quality [--data-dir DIR] [--embed-model M]
Prints a table and one JSON line. Published single-method figures: BM25 0.665, all-MiniLM-L6-v2 0.645.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.common import SCIFACT, machine

PUBLISHED = {"bm25": 0.665, "all-MiniLM-L6-v2": 0.645, "bge-small-en-v1.5": 0.713}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=".rag-bench")
    ap.add_argument("--embed-model", default=None)
    ap.add_argument("--modes", default="dense,bm25,hybrid")
    args = ap.parse_args()
    env = {**os.environ, "RAG_DATA_DIR": args.data_dir}
    if args.embed_model:
        env["RAG_EMBED_MODEL"] = args.embed_model
    rows = []
    for mode in args.modes.split(","):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "rag", "eval", "retrieval", "--corpus", str(SCIFACT / "corpus.jsonl"),
             "--queries", str(SCIFACT / "queries.jsonl"), "--qrels", str(SCIFACT / "qrels" / "test.tsv"),
             "--mode", mode, "--json"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
        m = json.loads(out.strip().splitlines()[-1])
        m["wall_s"] = round(time.perf_counter() - t, 1)
        rows.append(m)
    print(f"SciFact ({rows[0]['queries']} queries, {rows[0]['documents']} docs, {rows[0]['chunks']} chunks), "
          f"model {rows[0]['embed_model']}, {machine()}")
    print(f"{'mode':<8} {'nDCG@10':>8} {'R@10':>6} {'R@100':>6} {'MRR@10':>7}")
    for m in rows:
        print(f"{m['mode']:<8} {m['ndcg@10']:>8.4f} {m['recall@10']:>6.3f} {m['recall@100']:>6.3f} {m['mrr@10']:>7.4f}")
    print(f"published: BM25 {PUBLISHED['bm25']}, {rows[0]['embed_model']} {PUBLISHED.get(rows[0]['embed_model'], '?')}")
    print(json.dumps({"results": rows, "published": PUBLISHED}))


if __name__ == "__main__":
    main()
