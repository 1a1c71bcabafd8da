"""Benchmarks 2 and 3: ingest throughput against a bare encode and a plain LlamaIndex pipeline; re-index time.

All measured in one run on the same corpus and model, reported as ratios (these machines are noisy):
  bare     SentenceTransformer.encode of exactly our chunk texts, same batch size (the ceiling)
  ours     `ingest()` = load + chunk + embed + Chroma upsert + manifest + BM25
  llama    VectorStoreIndex.from_documents(HuggingFaceEmbedding, ChromaVectorStore, SentenceSplitter) with its
           default embed batch size, and again with our batch size
  reindex  `ingest()` again on the unchanged corpus

Usage: python -m bench.ingest [--limit N] [--skip-llama-same-batch]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import SCIFACT, machine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=str(SCIFACT / "corpus.jsonl"))
    ap.add_argument("--limit", type=int, default=0, help="first N documents only (0: all)")
    ap.add_argument("--skip-llama-same-batch", action="store_true")
    args = ap.parse_args()

    from index.chunk import chunk_document
    from index.embed import make_embedder
    from index.ingest import embedding_text, ingest
    from index.load import iter_jsonl
    from rag.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    corpus = work / "corpus.jsonl"
    with open(args.corpus) as src, corpus.open("w") as dst:
        for i, line in enumerate(src):
            if args.limit and i >= args.limit:
                break
            dst.write(line)

    settings = Settings(data_dir=work / "ours")
    embedder = make_embedder(settings.embed_model, batch_size=settings.embed_batch_size)
    embedder.warm_up()  # type: ignore[attr-defined]
    docs = list(iter_jsonl(corpus))
    chunks = [c for d in docs for c in chunk_document(d, settings.chunk_size, settings.chunk_overlap)]
    texts = [embedding_text(c, settings.embed_title) for c in chunks]
    print(f"{len(docs)} documents, {len(chunks)} chunks, model {settings.embed_model}, "
          f"batch {settings.embed_batch_size}, {machine()}", flush=True)
    res: dict[str, float] = {}

    t = time.perf_counter()
    embedder.model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True,  # type: ignore[attr-defined]
                          show_progress_bar=False)
    res["bare_s"] = time.perf_counter() - t
    print(f"bare encode      {res['bare_s']:8.1f} s", flush=True)

    t = time.perf_counter()
    report = ingest([corpus], settings, embedder=embedder)
    res["ours_s"] = time.perf_counter() - t
    print(f"ours (ingest)    {res['ours_s']:8.1f} s   stages {report.seconds}", flush=True)

    t = time.perf_counter()
    again = ingest([corpus], settings, embedder=embedder)
    res["reindex_s"] = time.perf_counter() - t
    assert again.unchanged == len(docs) and again.chunks_added == 0
    print(f"re-index         {res['reindex_s']:8.2f} s", flush=True)

    res["llama_default_s"] = llama_pipeline(corpus, work / "llama1", settings, batch_size=None)
    print(f"llama-index      {res['llama_default_s']:8.1f} s  (default embed batch 10)", flush=True)
    if not args.skip_llama_same_batch:
        res["llama_same_batch_s"] = llama_pipeline(corpus, work / "llama2", settings,
                                                   batch_size=settings.embed_batch_size)
        print(f"llama-index      {res['llama_same_batch_s']:8.1f} s  (embed batch {settings.embed_batch_size})",
              flush=True)

    ratios = {
        "ours_vs_bare_throughput": res["bare_s"] / res["ours_s"],
        "ours_speedup_vs_llama_default": res["llama_default_s"] / res["ours_s"],
        "reindex_share_of_first": res["reindex_s"] / res["ours_s"],
    }
    if "llama_same_batch_s" in res:
        ratios["ours_speedup_vs_llama_same_batch"] = res["llama_same_batch_s"] / res["ours_s"]
    print(f"ours / bare throughput: {ratios['ours_vs_bare_throughput']:.3f}  (target >= 0.9)")
    speedup = ratios["ours_speedup_vs_llama_default"]
    print(f"ours speed-up vs LlamaIndex (default batch): {speedup:.2f}x  (target >= 1.5)")
    if "ours_speedup_vs_llama_same_batch" in ratios:
        print(f"ours speed-up vs LlamaIndex (same batch): {ratios['ours_speedup_vs_llama_same_batch']:.2f}x")
    print(f"re-index / first index: {100 * ratios['reindex_share_of_first']:.2f}%  (target <= 2%)")
    print(f"docs/s: ours {len(docs) / res['ours_s']:.1f}, bare {len(docs) / res['bare_s']:.1f}")
    print(json.dumps({"documents": len(docs), "chunks": len(chunks), **{k: round(v, 3) for k, v in res.items()},
                      **{k: round(v, 4) for k, v in ratios.items()}}))
    shutil.rmtree(work, ignore_errors=True)


def llama_pipeline(corpus: Path, where: Path, settings, batch_size: int | None) -> float:  # type: ignore[no-untyped-def]
    """A plain LlamaIndex ingestion of the same corpus into Chroma; returns seconds (model load excluded)."""
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core import Settings as LlamaSettings
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from index.embed import packaged_minilm_path

    LlamaSettings.llm = None
    kwargs = {"embed_batch_size": batch_size} if batch_size else {}
    embed = HuggingFaceEmbedding(model_name=str(packaged_minilm_path()), device="cpu", **kwargs)
    embed.get_text_embedding("warm up")
    client = chromadb.PersistentClient(path=str(where), settings=chromadb.config.Settings(anonymized_telemetry=False))
    store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("bench"))
    t = time.perf_counter()
    docs = []
    with corpus.open() as fh:
        for line in fh:
            row = json.loads(line)
            docs.append(Document(text=row["text"], metadata={"title": row["title"]}, id_=row["_id"]))
    VectorStoreIndex.from_documents(
        docs, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=embed,
        transformations=[SentenceSplitter(chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap)],
    )
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
