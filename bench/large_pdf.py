"""One large real PDF through the product: load time and pages, indexing throughput against the bare encoder.

Without --pdf the document is the GnuTLS manual from Debian's `gnutls-doc` package (`apt-get download
gnutls-doc`, cached under bench/results/gnutls-doc/, never committed), extracted with `dpkg-deb -x`.

  load     index.load.load_file on the PDF (what `rag index` does per file): seconds, pages, characters
  index    index.ingest.ingest into a temporary data dir (= `rag index PATH`: load + chunk + embed + Chroma + BM25),
           embedding model loaded beforehand (its load time is reported apart): wall seconds, chunks, chunks/s
  bare     the product's embedder alone (index.embed.make_embedder, same batch size) on exactly the same chunk
           texts: chunks/s, the ceiling for the embed stage
  ratio    index chunks/s / bare chunks/s

--max-pages N indexes and bare-encodes only the first N pages (the load step still reads the whole file): the
whole GnuTLS manual (790 pages, roughly 3,000 chunks: 158 for the first 40) takes several minutes per step on a
small machine.

Any failure (download, a loader error, a file the ingest reports as failed) is printed as `error: ...` and the
exit status is 1.

Usage: python -m bench.large_pdf [--pdf PATH] [--cache DIR] [--max-pages N] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, machine

DEFAULT_CACHE = REPO / "bench" / "results" / "gnutls-doc"
PACKAGE = "gnutls-doc"


class BenchError(Exception):
    """A step of the bench failed; the message says which and why."""


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise BenchError(f"{cmd[0]} not found (a Debian system with apt is needed, or pass --pdf)") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(cmd)}: timed out") from None


def fetch_gnutls_pdf(cache: Path) -> Path:
    """The GnuTLS manual PDF from the `gnutls-doc` .deb, downloaded and extracted into ``cache`` once.

    Runs `apt-get download gnutls-doc`; only if that fails does it run `apt-get update` and try once more.
    """
    cache.mkdir(parents=True, exist_ok=True)
    found = _find_pdf(cache / "root")
    if found is not None:
        return found
    debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        res = _run(["apt-get", "download", PACKAGE], cache)
        if res.returncode != 0:
            print(f"apt-get download failed ({res.stderr.strip()[-300:]}); running apt-get update", file=sys.stderr)
            upd = _run(["apt-get", "update"], cache)
            if upd.returncode != 0:
                raise BenchError(f"apt-get update failed: {upd.stderr.strip()[-500:]}")
            res = _run(["apt-get", "download", PACKAGE], cache)
            if res.returncode != 0:
                raise BenchError(f"apt-get download {PACKAGE} failed: {res.stderr.strip()[-500:]}")
        debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
        if not debs:
            raise BenchError(f"apt-get download {PACKAGE} left no .deb in {cache}")
    root = cache / "root"
    shutil.rmtree(root, ignore_errors=True)
    res = _run(["dpkg-deb", "-x", str(debs[-1]), str(root)], cache)
    if res.returncode != 0:
        raise BenchError(f"dpkg-deb -x {debs[-1].name} failed: {res.stderr.strip()[-500:]}")
    found = _find_pdf(root)
    if found is None:
        raise BenchError(f"no gnutls.pdf or gnutls.pdf.gz under {root}/usr/share/doc")
    return found


def _find_pdf(root: Path) -> Path | None:
    """gnutls.pdf under ``root/usr/share/doc`` (gunzipped next to gnutls.pdf.gz when only that exists)."""
    doc = root / "usr" / "share" / "doc"
    if not doc.is_dir():
        return None
    pdfs = sorted(doc.rglob("gnutls.pdf"))
    if pdfs:
        return pdfs[0]
    gz = sorted(doc.rglob("gnutls.pdf.gz"))
    if not gz:
        return None
    out = gz[0].with_suffix("")
    with gzip.open(gz[0], "rb") as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def first_pages(pdf: Path, n: int, out: Path) -> Path:
    """A copy of the first ``n`` pages of ``pdf`` (pypdf), for a quick run on a slow machine."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(str(pdf)).pages[:n]:
        writer.add_page(page)
    with out.open("wb") as fh:
        writer.write(fh)
    return out


def measure(pdf: Path, *, settings: Any = None, embedder: Any = None, max_pages: int | None = None,
            log: bool = True) -> dict[str, Any]:
    """Load, index (into a temporary data dir) and bare-encode one PDF; return the figures.

    Args:
        pdf: the file.
        settings: a ``rag.settings.Settings`` whose embedding and chunking knobs are used (default ``Settings()``);
            its ``data_dir`` is replaced by a temporary folder.
        embedder: the embedding model (default ``make_embedder`` from the settings), used by both the ingest and
            the bare encode; it is warmed up before any timing.
        max_pages: index and bare-encode only the first N pages (the load step still reads the whole file).
        log: print each figure as it is measured.

    Raises:
        BenchError: the file is missing, the loader raises, or the ingest reports the file as failed.
    """
    from pypdf import PdfReader

    from index.chunk import chunk_document
    from index.embed import make_embedder
    from index.ingest import embedding_text, ingest
    from index.load import load_file
    from rag.errors import RagError
    from rag.settings import Settings

    def say(msg: str) -> None:
        if log:
            print(msg, flush=True)

    pdf = Path(pdf).resolve()
    if not pdf.is_file():
        raise BenchError(f"{pdf}: no such file")
    out: dict[str, Any] = {"pdf": str(pdf), "mb": round(pdf.stat().st_size / 1e6, 2)}

    t = time.perf_counter()
    try:
        docs = load_file(pdf)
    except RagError as exc:
        raise BenchError(f"loader failed: {exc.message}") from None
    out["load_s"] = round(time.perf_counter() - t, 3)
    out["pages"] = len(PdfReader(str(pdf)).pages)  # the loader read it, so pypdf opens it
    out["pages_with_text"] = sum(len(d.pages) for d in docs)
    out["chars"] = sum(len(d.text) for d in docs)
    say(f"load      {out['load_s']:8.2f} s   {out['pages']} pages ({out['pages_with_text']} with text), "
        f"{out['chars']:,} characters, {out['mb']} MB")

    base = settings or Settings()
    work = Path(tempfile.mkdtemp(prefix="bench-large-pdf-"))
    try:
        if max_pages and max_pages < out["pages"]:
            pdf = first_pages(pdf, max_pages, work / pdf.name)
            try:
                docs = load_file(pdf)
            except RagError as exc:
                raise BenchError(f"loader failed on the first {max_pages} pages: {exc.message}") from None
            say(f"indexing the first {max_pages} pages only ({sum(len(d.pages) for d in docs)} with text)")
        out["indexed_pages"] = min(max_pages or out["pages"], out["pages"])
        s = base.model_copy(update={"data_dir": work / "data"})
        embedder = embedder or make_embedder(s.embed_model, batch_size=s.embed_batch_size)
        t = time.perf_counter()
        embedder.warm_up()  # type: ignore[attr-defined]
        out["model_load_s"] = round(time.perf_counter() - t, 3)

        # the chunk texts the ingest will embed; chunking first also pays llama-index's and Chroma's import
        # time outside the timed ingest (a one-off per process, not indexing throughput)
        texts = [embedding_text(c, s.embed_title)
                 for d in docs for c in chunk_document(d, s.chunk_size, s.chunk_overlap)]
        import chromadb  # noqa: F401

        t = time.perf_counter()
        try:
            report = ingest([pdf], s, embedder=embedder)
        except RagError as exc:
            raise BenchError(f"indexing failed: {exc.message}") from None
        index_s = time.perf_counter() - t
        if report.failed:
            raise BenchError("indexing failed: " + "; ".join(f.reason for f in report.failed))
        if report.chunks_added == 0:
            raise BenchError(f"indexing produced no chunks for {pdf}")
        out["index_s"] = round(index_s, 3)
        out["chunks"] = report.chunks_added
        out["index_chunks_per_s"] = round(report.chunks_added / index_s, 2)
        out["index_stages_s"] = report.seconds
        say(f"index     {index_s:8.2f} s   {report.chunks_added} chunks, {out['index_chunks_per_s']:.1f} chunks/s "
            f"(model load {out['model_load_s']} s apart); stages {report.seconds}")

        # the same chunk texts the ingest embedded, through the same embedder alone
        if len(texts) != report.chunks_added:
            raise BenchError(f"re-chunking gave {len(texts)} chunks, the ingest {report.chunks_added}")
        t = time.perf_counter()
        embedder.embed_documents(texts)
        bare_s = time.perf_counter() - t
        out["bare_s"] = round(bare_s, 3)
        out["bare_chunks_per_s"] = round(len(texts) / bare_s, 2)
        out["ratio_index_vs_bare"] = round((report.chunks_added / index_s) / (len(texts) / bare_s), 4)
        say(f"bare      {bare_s:8.2f} s   {out['bare_chunks_per_s']:.1f} chunks/s "
            f"({getattr(embedder, 'name', s.embed_model)}, batch {getattr(embedder, 'batch_size', '?')})")
        say(f"ratio     index / bare chunks/s = {out['ratio_index_vs_bare']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pdf", type=Path, help="a PDF to measure (default: the GnuTLS manual from gnutls-doc)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"download cache (default {DEFAULT_CACHE})")
    ap.add_argument("--max-pages", type=int, default=0,
                    help="index and bare-encode only the first N pages (0: all); loading still reads every page")
    ap.add_argument("--json", action="store_true", help="print one JSON line with every figure at the end")
    args = ap.parse_args(argv)
    if args.max_pages < 0:
        ap.error(f"--max-pages must be >= 0, got {args.max_pages}")

    try:
        if args.pdf is None:
            t = time.perf_counter()
            pdf = fetch_gnutls_pdf(args.cache)
            print(f"{PACKAGE}: {pdf} ({time.perf_counter() - t:.1f} s to fetch/extract)", flush=True)
        else:
            pdf = args.pdf
        print(f"machine: {machine()}", flush=True)
        result = measure(pdf, max_pages=args.max_pages or None)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    if args.json:
        print(json.dumps({"ok": True, "machine": machine(), **result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
