"""Retrieval quality on any BEIR-format set: nDCG@10, Recall@10, Recall@100, MRR@10."""

from __future__ import annotations

import csv
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.data import DataFileError, iter_jsonl
from rag.errors import UnreadableDocumentError
from rag.settings import RetrievalMode, Settings

if TYPE_CHECKING:
    from index.ingest import ProgressFactory


def load_queries(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for where, row in iter_jsonl(path):
        try:
            out[str(row["_id"])] = str(row["text"])
        except KeyError as exc:
            raise DataFileError(f"{where}: not a query line with _id/text (missing {exc})") from None
    return out


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: relevance}}`` from a TSV with header ``query-id corpus-id score``."""
    out: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if not header or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
            raise UnreadableDocumentError(f"{path}: expected a TSV header 'query-id corpus-id score', got {header}")
        for row in reader:
            if len(row) >= 3:
                out.setdefault(row[0], {})[row[1]] = int(row[2])
    return out


def ndcg_at(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: Sequence[str], rels: dict[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


@dataclass
class RetrievalEval:
    metrics: dict[str, float | int | str]
    per_query: list[dict]


def corpus_index_name(corpus: Path) -> str:
    """Each corpus file gets its own index (reused while the file is the same path)."""
    digest = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:8]
    stem = "".join(ch if ch.isalnum() else "-" for ch in corpus.parent.name or corpus.stem)[:20].strip("-") or "corpus"
    return f"beir-{stem}-{digest}"


def evaluate_retrieval(
    corpus: Path,
    queries_file: Path,
    qrels_file: Path,
    settings: Settings,
    *,
    mode: RetrievalMode = "hybrid",
    progress: ProgressFactory | None = None,
) -> RetrievalEval:
    """Index ``corpus`` into its own index (incremental: reused when unchanged) and score ``mode`` on it."""
    from index.ingest import ingest
    from rag.retrieve import Retriever

    index_name = corpus_index_name(corpus)
    report = ingest([corpus], settings, index_name=index_name, progress=progress)
    queries = load_queries(queries_file)
    qrels = load_qrels(qrels_file)
    judged = [q for q in queries if q in qrels]
    retriever = Retriever(settings, index_name=index_name)
    retriever.warm_up()
    rows: list[dict] = []
    sums = {"ndcg@10": 0.0, "recall@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    latencies = []
    for qid in judged:
        t = time.perf_counter()
        hits = retriever.search(queries[qid], k=300, mode=mode)
        latencies.append(time.perf_counter() - t)
        ranked: list[str] = []
        for h in hits:  # a document ranks where its best chunk ranks
            ext = h.chunk.external_id or h.chunk.doc_id
            if ext not in ranked:
                ranked.append(ext)
        rels = qrels[qid]
        row: dict[str, Any] = {
            "query_id": qid,
            "ndcg@10": ndcg_at(ranked, rels, 10),
            "recall@10": recall_at(ranked, rels, 10),
            "recall@100": recall_at(ranked, rels, 100),
            "mrr@10": mrr_at(ranked, rels, 10),
            "top10": ranked[:10],
        }
        for key in sums:
            sums[key] += row[key]
        rows.append(row)
    n = max(len(rows), 1)
    latencies.sort()
    metrics: dict[str, float | int | str] = {key: round(v / n, 4) for key, v in sums.items()}
    metrics.update(
        queries=len(rows),
        mode=mode,
        embed_model=settings.embed_model,
        documents=report.documents_total,
        chunks=report.chunks_total,
        p50_ms=round(1000 * latencies[len(latencies) // 2], 2) if latencies else 0.0,
        index_seconds=report.seconds.get("total", 0.0),
    )
    return RetrievalEval(metrics=metrics, per_query=rows)
