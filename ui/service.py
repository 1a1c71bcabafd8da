"""The server's engine room: shared models, admission control, documents, feedback and metrics.

One :class:`Service` per server process. The HTTP routes (``ui/api.py``) and the chat UI (``ui/chat.py``) both go
through it, so they share the models, the local-LLM queue and the metrics. Nothing here runs on the event loop:
every CPU-heavy step (retrieval, reranking, the LLM, verification, indexing) runs in worker threads, and the
async side only waits on queues.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import shutil
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.ingest import ingest, list_documents, remove_documents
from index.load import SUPPORTED_SUFFIXES, load_file
from index.manifest import DocRow
from rag.errors import (
    BadQueryError,
    DocumentNotFoundError,
    PayloadTooLargeError,
    RagError,
    RateLimitedError,
    RequestTimeoutError,
    ServerBusyError,
    UnreadableDocumentError,
    UnsupportedMediaTypeError,
)
from rag.models import Models
from rag.settings import AnswerMode, Settings
from rag.types import Answer, IngestReport
from ui.metrics import Metrics

logger = logging.getLogger("rag.server")

MODES: tuple[AnswerMode, ...] = ("local", "hosted", "extractive")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# --------------------------------------------------------------------------- the local LLM: one at a time


class SerialChatModel:
    """Wraps a chat model that must not run two generations at once (a llama.cpp context).

    The time each thread last waited for the model is kept in ``waited()``, so the wait can be reported as its
    own stage instead of inflating the generation time.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self._local = threading.local()

    def waited(self) -> float:
        """Seconds the calling thread waited for the model in its calls since the last ``reset_wait()``."""
        return float(getattr(self._local, "waited", 0.0))

    def reset_wait(self) -> None:
        self._local.waited = 0.0

    def _acquire(self) -> None:
        t = time.perf_counter()
        self.lock.acquire()
        self._local.waited = self.waited() + time.perf_counter() - t

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def warm_up(self) -> None:
        with self.lock:
            self.inner.warm_up()

    def chat(self, messages: Any, **kw: Any) -> str:
        self._acquire()
        try:
            return self.inner.chat(messages, **kw)
        finally:
            self.lock.release()

    def stream(self, messages: Any, **kw: Any) -> Iterator[str]:
        self._acquire()
        try:
            yield from self.inner.stream(messages, **kw)
        finally:
            self.lock.release()

    def next_token_probability(self, messages: Any, word: str) -> float:
        self._acquire()
        try:
            return float(self.inner.next_token_probability(messages, word))
        finally:
            self.lock.release()

    def yes_no_probability(self, messages: Any) -> float:
        self._acquire()
        try:
            return float(self.inner.yes_no_probability(messages))
        finally:
            self.lock.release()


class LlmQueue:
    """Admission to the local LLM: one request runs, ``capacity - 1`` wait; more get :class:`ServerBusyError`."""

    def __init__(self, waiting: int) -> None:
        self.capacity = waiting + 1
        self.in_flight = 0
        self._lock = threading.Lock()
        self._avg_s = 8.0  # running mean of a request's time, for Retry-After

    def enter(self) -> None:
        with self._lock:
            if self.in_flight >= self.capacity:
                raise ServerBusyError(
                    f"the local LLM queue is full ({self.in_flight} requests in flight)",
                    hint="retry later, or ask in extractive mode", retry_after=self.retry_after(),
                )
            self.in_flight += 1

    def leave(self, seconds: float | None = None) -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            if seconds is not None:
                self._avg_s = 0.8 * self._avg_s + 0.2 * seconds

    def retry_after(self) -> int:
        return max(1, math.ceil(self._avg_s * max(1, self.in_flight) / 2))


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests a minute with bursts of the same size."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                raise RateLimitedError(
                    f"rate limit of {self.per_minute} requests per minute reached",
                    hint="slow down, or raise RAG_RATE_LIMIT_PER_MINUTE", retry_after=math.ceil((1 - tokens) / rate),
                )
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget idle clients
                cutoff = now - 120
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > cutoff}


# --------------------------------------------------------------------------- results


@dataclass
class UploadResult:
    document_ids: list[str]
    filename: str
    report: IngestReport


STARTUP_FAILED = "the server failed to start"


@dataclass
class Readiness:
    ready: bool = False
    stage: str = "starting"
    error: str | None = None
    documents: int = 0
    chunks: int = 0
    modes: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- the service


class Service:
    """Everything a server process shares. Start with :meth:`start` (index seeds, load models) in a thread.

    Args:
        settings: the product settings (``answer_mode`` is the default mode; server knobs: ``llm_queue_size``,
            ``answer_workers``, ``request_timeout_s``, ``rate_limit_per_minute``, ``max_upload_mb``).
        index_name: the index to serve (default ``settings.index_name``).
        seed_paths: indexed at start when the index is empty (default ``[settings.seeds_dir]``).
        retriever, llm: injected parts (tests).
        models: the process's models (:class:`rag.models.Models`); default: built here, once, and shared by the
            pipelines of every mode.
    """

    def __init__(self, settings: Settings, *, index_name: str | None = None,
                 seed_paths: Sequence[Path] | None = None, llm: Any = None, retriever: Any = None,
                 models: Models | None = None) -> None:
        self.settings = settings
        self.models = models if models is not None else Models(settings)
        self.index_name = index_name
        self.seed_paths = list(seed_paths) if seed_paths is not None else [settings.seeds_dir]
        self.metrics = Metrics()
        self.readiness = Readiness()
        self.llm_queue = LlmQueue(settings.llm_queue_size)
        self.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
        self.cpu_slot = threading.BoundedSemaphore(settings.answer_workers)
        self.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="rag-worker")
        self.uploads_dir = settings.data_dir / "uploads"
        self.feedback_path = settings.data_dir / "feedback.jsonl"
        self._injected_llm = llm
        self._injected_retriever = retriever
        self._pipelines: dict[str, Any] = {}
        self._pipelines_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one upload/delete at a time in this process
        self._feedback_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------- start / stop
    def start(self) -> None:
        """Index the seeds if the index is empty, then load the models of the default mode. Blocking."""
        try:
            self._set_stage("checking the index")
            docs, chunks = self._counts()
            if docs == 0:
                seeds = [p for p in self.seed_paths if Path(p).exists()]
                if seeds:
                    self._set_stage("indexing " + ", ".join(str(p) for p in seeds))
                    logger.info("the index is empty: indexing %s", ", ".join(str(p) for p in seeds))
                    report = ingest(seeds, self.settings, index_name=self.index_name,
                                    progress=_log_progress, embedder=self.retriever.embedder)
                    logger.info("indexed: %d documents, %d chunks, %d failed (%.1f s)", report.documents_total,
                                report.chunks_total, len(report.failed), report.seconds.get("total", 0.0))
                    for failed in report.failed:
                        logger.warning("could not index %s", failed.reason)
                else:
                    logger.warning("the index is empty and there is no seeds folder (%s)", self.settings.seeds_dir)
            self._set_stage("loading models")
            default = self.settings.answer_mode
            pipe = self.pipeline(default)
            pipe.retriever.warm_up()
            pipe.reranker.warm_up()
            pipe.checker.warm_up()
            if default != "extractive":
                logger.info("loading the %s LLM", default)
                pipe.llm.warm_up()
            self.readiness.modes[default] = "ready"
            docs, chunks = self._counts()
            self.readiness.documents, self.readiness.chunks = docs, chunks
            self.metrics.documents.set(docs)
            self.readiness.ready = True
            self._set_stage("ready")
            logger.info("ready: %d documents, %d chunks, default mode %s", docs, chunks, default)
        except RagError as exc:
            # the details (paths, model names, library messages) go to the log only; clients get a fixed message
            self.readiness.error = STARTUP_FAILED
            self._set_stage("failed")
            logger.error("start-up failed: %s", f"{exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
        except Exception:
            self.readiness.error = STARTUP_FAILED
            self._set_stage("failed")
            logger.exception("start-up failed")

    def _set_stage(self, stage: str) -> None:
        self.readiness.stage = stage

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.executor.shutdown(wait=True, cancel_futures=True)
        for pipe in self._pipelines.values():
            llm = pipe._llm
            close = getattr(getattr(llm, "inner", llm), "close", None)
            if callable(close) and pipe.mode == "hosted":
                close()

    def _counts(self) -> tuple[int, int]:
        return self.retriever.layout.manifest.counts()

    # ------------------------------------------------------------- pipelines
    @property
    def retriever(self) -> Any:
        if self._injected_retriever is None:
            from rag.retrieve import Retriever

            self._injected_retriever = Retriever(self.settings, index_name=self.index_name,
                                                 embedder=self.models.embedder)
        return self._injected_retriever

    def pipeline(self, mode: AnswerMode | None = None) -> Any:
        """The pipeline of ``mode`` (default: the settings' mode); all modes share retriever and reranker."""
        from rag.pipeline import Pipeline

        mode = mode or self.settings.answer_mode
        if mode not in MODES:
            raise BadQueryError(f"unknown mode {mode!r}", hint="use local, hosted or extractive")
        with self._pipelines_lock:
            pipe = self._pipelines.get(mode)
            if pipe is None:
                llm = None
                if mode != "extractive":
                    llm = self._injected_llm if self._injected_llm is not None else self.models.llm(mode)
                    if mode == "local":
                        llm = SerialChatModel(llm)
                pipe = Pipeline(self.settings, index_name=self.index_name, mode=mode, retriever=self.retriever,
                                llm=llm, cpu_slot=self.cpu_slot, models=self.models)
                self._pipelines[mode] = pipe
            return pipe

    def check_ready(self) -> None:
        if not self.readiness.ready:
            if self.readiness.error:
                raise ServerBusyError(STARTUP_FAILED,
                                      hint="see the server log; fix and restart", retry_after=60)
            raise ServerBusyError(f"the server is starting ({self.readiness.stage})",
                                  hint="retry in a few seconds; GET /readyz tells when it is ready", retry_after=5)

    def resolve_sources(self, sources: Sequence[str] | None) -> list[str] | None:
        """Map document ids, source paths or file names to the source paths the retriever filters on."""
        if not sources:
            return None
        rows = list_documents(self.settings, index_name=self.index_name)
        out: list[str] = []
        for wanted in sources:
            matches = {r.source for r in rows
                       if wanted in (r.doc_id, r.source, Path(r.source).name, Path(r.source).stem)}
            if not matches:
                raise BadQueryError(f"no indexed document matches source {wanted!r}",
                                    hint="use a document id, path or file name from GET /documents")
            out.extend(sorted(matches))
        return out

    # ------------------------------------------------------------- answering
    async def open_answer(
        self, question: str, *, history: Sequence[Any] = (), mode: AnswerMode | None = None,
        sources: Sequence[str] | None = None, top_k: int | None = None, route: str = "ask",
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """Check the request, admit it, start the pipeline in a worker thread; return its events.

        Everything that can refuse the request (bad question, unknown source, not ready, LLM queue full,
        hosted endpoint not configured) raises here, before any event, so a caller can still answer with an
        HTTP error status. The events are ``("token", str)`` while the LLM writes and ``("answer", Answer)``
        last; after ``request_timeout_s`` the iterator raises :class:`RequestTimeoutError` and the work stops.
        """
        from rag.pipeline import clean_question

        self.check_ready()
        mode = mode or self.settings.answer_mode
        clean_question(question, self.settings.max_question_chars)
        if mode == "hosted" and not self.settings.hosted_base_url and self._injected_llm is None:
            raise BadQueryError("hosted mode is not configured on this server",
                                hint="ask in local or extractive mode, or set RAG_HOSTED_BASE_URL on the server")
        pipe = await asyncio.to_thread(self.pipeline, mode)
        wanted = await asyncio.to_thread(self.resolve_sources, sources) if sources else None
        queued = mode == "local"
        if queued:
            self.llm_queue.enter()
            self.metrics.llm_queue.set(self.llm_queue.in_flight)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()
        started = time.perf_counter()

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, item)
            except RuntimeError:  # the loop is gone (shutdown)
                pass

        serial = pipe.llm if isinstance(pipe._llm, SerialChatModel) else None

        def produce() -> None:
            if serial is not None:
                serial.reset_wait()
            gen = pipe.stream(question, history, sources=wanted, top_k=top_k, cancel=cancel)
            try:
                for item in gen:
                    if cancel.is_set():
                        break
                    if item[0] == "answer" and serial is not None and serial.waited() > 0:
                        item = ("answer", _with_llm_wait(item[1], serial.waited()))
                    put(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the request's task
                put(("error", exc))
            finally:
                gen.close()
                if queued:
                    self.llm_queue.leave(time.perf_counter() - started)
                    self.metrics.llm_queue.set(self.llm_queue.in_flight)
                put(("end", None))

        try:
            self.executor.submit(produce)
        except RuntimeError as exc:  # the executor is shut down
            if queued:
                self.llm_queue.leave()
            raise ServerBusyError("the server is shutting down", retry_after=5) from exc
        return self._consume(events, cancel, loop.time() + self.settings.request_timeout_s, route)

    async def _consume(self, events: asyncio.Queue[tuple[str, Any]], cancel: threading.Event, deadline: float,
                       route: str) -> AsyncGenerator[tuple[str, Any], None]:
        loop = asyncio.get_running_loop()
        try:
            while True:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    kind, value = await asyncio.wait_for(events.get(), remaining)
                except TimeoutError:
                    raise RequestTimeoutError(
                        f"no answer within {self.settings.request_timeout_s:g} s",
                        hint="retry later, or raise RAG_REQUEST_TIMEOUT_S",
                    ) from None
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                if kind == "answer":
                    self.metrics.observe_answer(value, route)
                yield kind, value
        finally:
            cancel.set()

    async def answer(self, question: str, **kw: Any) -> Answer:
        """The whole answer (see :meth:`open_answer` for the arguments and errors)."""
        answer: Answer | None = None
        async for kind, value in await self.open_answer(question, **kw):
            if kind == "answer":
                answer = value
        if answer is None:  # the worker ended without an answer: only on shutdown
            raise ServerBusyError("the server is shutting down", retry_after=5)
        return answer

    # ------------------------------------------------------------- documents
    def documents(self) -> list[DocRow]:
        return list_documents(self.settings, index_name=self.index_name)

    def upload(self, filename: str, data: bytes) -> UploadResult:
        """Store an uploaded file under ``data_dir/uploads`` and index it. Blocking: call from a worker thread.

        A file with the same (sanitised) name replaces the earlier upload. The file is read before anything is
        stored: a corrupt or empty file raises :class:`UnreadableDocumentError` and changes nothing.
        """
        name = safe_filename(filename)
        suffix = Path(name).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise UnsupportedMediaTypeError(
                f"cannot index {suffix or 'files without an extension'} files",
                hint="upload one of: " + ", ".join(sorted(SUPPORTED_SUFFIXES)),
            )
        limit = int(self.settings.max_upload_mb * 1e6)
        if len(data) > limit:
            raise PayloadTooLargeError(f"the file is {len(data) / 1e6:.1f} MB; the limit is "
                                       f"{self.settings.max_upload_mb:g} MB", hint="raise RAG_MAX_UPLOAD_MB")
        if not data:
            raise UnreadableDocumentError(f"{name}: empty file")
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        staging = self.uploads_dir / ".staging"
        staging.mkdir(exist_ok=True)
        tmp = staging / f"{uuid.uuid4().hex}{suffix}"
        tmp.write_bytes(data)
        try:
            try:
                docs = load_file(tmp, max_bytes=limit)
            except UnreadableDocumentError as exc:
                raise UnreadableDocumentError(exc.message.replace(str(tmp), name),
                                              hint="check the file opens; it was not stored") from None
            if not docs:
                raise UnreadableDocumentError(f"{name}: no text found", hint="the file was not stored")
            with self._write_lock:
                final = self.uploads_dir / name
                shutil.move(str(tmp), final)
                report = ingest([final], self.settings, index_name=self.index_name,
                                embedder=self.retriever.embedder)
        finally:
            tmp.unlink(missing_ok=True)
        if report.failed:  # read fine a moment ago; report it all the same
            raise UnreadableDocumentError(report.failed[0].reason)
        ids = [r.doc_id for r in self.documents() if r.source == str(final.resolve())]
        self._after_write()
        logger.info("uploaded %s: %d documents, %d chunks", name, len(ids), report.chunks_added)
        return UploadResult(document_ids=ids, filename=name, report=report)

    def delete(self, doc_id: str) -> DocRow:
        """Remove a document from the index; an uploaded file is deleted too. Blocking."""
        rows = {r.doc_id: r for r in self.documents()}
        row = rows.get(doc_id)
        if row is None:
            raise DocumentNotFoundError(f"no document with id {doc_id!r}", hint="GET /documents lists the ids")
        with self._write_lock:
            remove_documents([doc_id], self.settings, index_name=self.index_name)
            source = Path(row.source)
            others = [r for r in rows.values() if r.source == row.source and r.doc_id != doc_id]
            if not others and source.parent == self.uploads_dir.resolve():
                source.unlink(missing_ok=True)
        self._after_write()
        logger.info("deleted document %s (%s)", doc_id, row.source)
        return row

    def _after_write(self) -> None:
        docs, chunks = self._counts()
        self.readiness.documents, self.readiness.chunks = docs, chunks
        self.metrics.documents.set(docs)
        if docs == 0:
            logger.warning("the index is now empty: every question will be refused")

    # ------------------------------------------------------------- feedback
    def record_feedback(self, entry: dict[str, Any]) -> str:
        """Append one feedback entry (question, answer, citations, rating) to ``data_dir/feedback.jsonl``."""
        entry = {"id": uuid.uuid4().hex, "time": time.time(), **entry}
        self.feedback_path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(entry, ensure_ascii=False)
        with self._feedback_lock, self.feedback_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        self.metrics.feedback.labels(rating=str(entry.get("rating"))).inc()
        return str(entry["id"])


def _with_llm_wait(answer: Answer, waited: float) -> Answer:
    """Report the wait for the local LLM as the stage ``llm_queue`` (it was counted in condense/generate)."""
    seconds = dict(answer.seconds)
    seconds["llm_queue"] = round(waited, 4)
    for stage in ("generate", "condense"):
        if stage in seconds and waited > 0:
            take = min(seconds[stage], waited)
            seconds[stage] = round(seconds[stage] - take, 4)
            waited -= take
    return answer.model_copy(update={"seconds": seconds})


def safe_filename(filename: str | None) -> str:
    """A file name safe to store: no folders (no path traversal), no odd characters, not hidden, not empty."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _SAFE_NAME.sub("_", name).strip("._")
    if not name or set(name) <= {"_", "."}:
        name = "upload"
    stem, dot, suffix = name.rpartition(".")
    if dot and len(name) > 120:
        name = stem[: 120 - len(suffix) - 1] + "." + suffix
    return name[:120]


def _log_progress(total: int) -> Any:
    class _Log:
        done = 0
        last = 0.0

        def update(self, n: int) -> None:
            self.done += n
            if time.monotonic() - self.last > 5 or self.done >= total:
                self.last = time.monotonic()
                logger.info("embedding chunks: %d / %d", self.done, total)

        def close(self) -> None:
            pass

    return _Log()

