"""Golden questions on the seed document: answer accuracy, citations, refusals, follow-ups, seconds per question.

Usage: python -m bench.golden [--mode extractive|local|hosted] [--json] [--golden FILE]
Indexes the repository's seeds/ folder into the default index of the settings (data dir `.rag` unless RAG_DATA_DIR
says otherwise), asks every question of eval/golden/seeds.jsonl through rag.pipeline.Pipeline and prints one line per
question and the summary; with --json the summary is the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import REPO, machine

SEEDS = REPO / "seeds"
SEED_DOC = SEEDS / "china_iran_ties.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["extractive", "local", "hosted"], default="extractive")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")
    ap.add_argument("--golden", type=Path, default=None, help="golden JSONL (default eval/golden/seeds.jsonl)")
    args = ap.parse_args()

    from eval.golden import SEEDS_GOLDEN, format_golden, format_result, load_golden, run_golden
    from index.ingest import ingest
    from rag.settings import get_settings

    golden = args.golden or SEEDS_GOLDEN
    document = SEED_DOC.read_text(encoding="utf-8") if golden == SEEDS_GOLDEN else None
    items = load_golden(golden, document)

    settings = get_settings()
    report = ingest([SEEDS], settings)
    print(f"index {settings.index_name} in {settings.data_dir}: {report.documents_total} docs, "
          f"{report.chunks_total} chunks; {len(items)} questions from {golden.name}; mode {args.mode}; {machine()}",
          flush=True)

    from rag.pipeline import Pipeline

    pipe = Pipeline(settings, mode=args.mode)
    result = run_golden(
        items,
        lambda q, h: pipe.ask(q, history=h),
        on_result=lambda r: print(format_result(r), file=sys.stderr, flush=True),
    )
    print(format_golden(result))
    if args.json:
        print(json.dumps({**result.summary, "mode": args.mode, "golden": golden.name}))


if __name__ == "__main__":
    main()
