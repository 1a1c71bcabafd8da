"""The HTTP server: FastAPI app with the API, an OpenAI-compatible endpoint and the Gradio chat mounted at /chat.

    create_app(settings) -> FastAPI      (uvicorn "ui.api:app_from_env" --factory, or `rag serve`)

Start-up (lifespan) runs :meth:`ui.service.Service.start` in a thread: the server answers ``/healthz`` at once and
``/readyz`` (and every question) with 503 until the seeds are indexed and the models are loaded.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi.sse import format_sse_event
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import (
    BadQueryError,
    ModelNotFoundError,
    PayloadTooLargeError,
    RagError,
    ServerBusyError,
    UnauthorizedError,
)
from rag.settings import AnswerMode, Settings
from rag.types import Answer, Citation, IngestReport
from ui.service import Service

logger = logging.getLogger("rag.server")

UI_PATH = "/chat"
_JSON_ROUTES = {"/ask", "/ask/stream", "/v1/chat/completions", "/feedback"}
_UPLOAD_ROUTE = "/documents"


# --------------------------------------------------------------------------- request and response models


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code, e.g. bad_query, unauthorized, busy")
    message: str
    hint: str | None = None


class HistoryMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"question": "When were diplomatic relations established?", "mode": "extractive"}]})

    question: str = Field(description="the question (at most RAG_MAX_QUESTION_CHARS characters)")
    history: list[HistoryMessage] = Field(default_factory=list, max_length=50,
                                          description="earlier turns, oldest first, for follow-up questions")
    mode: AnswerMode | None = Field(None, description="local | hosted | extractive (default: the server's)")
    top_k: int | None = Field(None, ge=1, le=50, description="retrieved passages reranked (default 6)")
    sources: list[str] | None = Field(None, max_length=50,
                                      description="only these documents: ids, paths or file names from GET /documents")


class DocumentInfo(BaseModel):
    id: str
    source: str
    filename: str
    title: str
    chunks: int
    chars: int
    indexed_at: float
    uploaded: bool


class UploadResponse(BaseModel):
    filename: str
    document_ids: list[str]
    report: IngestReport


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    question: str = Field(max_length=20_000)
    answer: str = Field(max_length=50_000)
    citations: list[Citation] = Field(default_factory=list, max_length=50)
    mode: AnswerMode | None = None
    comment: str | None = Field(None, max_length=5_000)


class FeedbackResponse(BaseModel):
    id: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    stage: str
    error: str | None = None
    documents: int
    chunks: int
    default_mode: AnswerMode
    modes: dict[str, str]


# --- OpenAI-compatible


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text or "" for p in self.content if p.type == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # temperature, max_tokens, ... are accepted and ignored

    model: str = Field("rag", description="rag (server default), rag-local, rag-hosted or rag-extractive")
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    stream: bool = False


# --------------------------------------------------------------------------- errors


def _code(exc: RagError) -> str:
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "error"


def error_response(status: int, code: str, message: str, hint: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=code, message=message, hint=hint).model_dump(), status_code=status,
                        headers=headers)


def _rag_error_response(exc: RagError) -> JSONResponse:
    headers = None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers = {"Retry-After": str(int(retry_after))}
    return error_response(exc.http_status, _code(exc), exc.message, exc.hint, headers)


def _error_payload(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, RagError):
        return ErrorBody(error=_code(exc), message=exc.message, hint=exc.hint).model_dump()
    return ErrorBody(error="internal_error", message="internal error", hint="see the server log").model_dump()


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_request"}


def _install_error_handlers(app: FastAPI, service: Service) -> None:
    @app.exception_handler(RagError)
    async def _rag(request: Request, exc: RagError) -> JSONResponse:
        service.metrics.errors.labels(error=type(exc).__name__).inc()
        if exc.http_status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return _rag_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        hint = "see /docs for the routes" if exc.status_code in (404, 405) else None
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message, hint,
                              dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request",
                              "see /docs for the request schema")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        service.metrics.errors.labels(error=type(exc).__name__).inc()
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error", "see the server log")


# --------------------------------------------------------------------------- middleware


def _route_label(path: str) -> str:
    if path.startswith((UI_PATH, "/gradio_api")) or path == "/":
        return "ui"
    if path.startswith("/documents/"):
        return "/documents/{id}"
    if path in _JSON_ROUTES or path in {"/documents", "/healthz", "/readyz", "/metrics", "/v1/models",
                                        "/docs", "/openapi.json"}:
        return path
    return "other"


class _TooLarge(Exception):
    pass


class GuardMiddleware:
    """Request body limits (413), JSON content type on JSON routes (415), and request metrics. Pure ASGI, so
    streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self.json_limit = service.settings.max_body_kb * 1024
        self.upload_limit = int(service.settings.max_upload_mb * 1e6) + 64 * 1024  # + multipart overhead

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        route = _route_label(path)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        try:
            if route != "ui" and method in ("POST", "PUT", "PATCH"):
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
                limit = self.upload_limit if path == _UPLOAD_ROUTE else self.json_limit
                length = headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > limit:
                    await _send_error(send_wrapper, PayloadTooLargeError(
                        f"the request body is {int(length)} bytes; the limit is {limit}",
                        hint="RAG_MAX_BODY_KB / RAG_MAX_UPLOAD_MB raise the limits"))
                    return
                if path in _JSON_ROUTES:
                    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
                    if ctype != "application/json" and not ctype.endswith("+json"):
                        await _send_error(send_wrapper, _unsupported(ctype))
                        return
                receive = _limited(receive, limit)
            try:
                await self.app(scope, receive, send_wrapper)
            except _TooLarge:
                await _send_error(send_wrapper, PayloadTooLargeError(
                    "the request body is over the limit", hint="RAG_MAX_BODY_KB / RAG_MAX_UPLOAD_MB raise the limits"))
        finally:
            if route != "ui":
                elapsed = time.perf_counter() - started
                self.service.metrics.requests.labels(method=method, route=route,
                                                     status=str(status_holder["status"])).inc()
                self.service.metrics.latency.labels(route=route).observe(elapsed)


def _unsupported(ctype: str) -> RagError:
    from rag.errors import UnsupportedMediaTypeError

    return UnsupportedMediaTypeError(f"expected a JSON body, got content type {ctype or '(none)'}",
                                     hint="send Content-Type: application/json")


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge()
        return message

    return wrapped


async def _send_error(send: Callable[[Message], Awaitable[None]], exc: RagError) -> None:
    body = json.dumps(_error_payload(exc)).encode()
    await send({"type": "http.response.start", "status": exc.http_status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- dependencies (read from app.state)


def get_service(request: Request) -> Service:
    """The app's :class:`~ui.service.Service` (``app.state.service``; override with ``app.dependency_overrides``)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]

_bearer = HTTPBearer(auto_error=False, scheme_name="RAG_API_KEY",
                     description="needed only when the server sets RAG_API_KEY")


def _client_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth:
        return "key:" + str(hash(auth))
    return "ip:" + (request.client.host if request.client else "?")


async def authorized(request: Request, svc: ServiceDep,
                     _documented: Annotated[Any, Depends(_bearer)] = None) -> None:
    """The API key check (only when the server sets ``RAG_API_KEY``)."""
    api_key = svc.settings.api_key.get_secret_value() if svc.settings.api_key else None
    if api_key is None:
        return
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise UnauthorizedError("missing or wrong API key", hint="send Authorization: Bearer <RAG_API_KEY>")


async def limited(request: Request, svc: ServiceDep) -> None:
    """The per-client rate limit (``RAG_RATE_LIMIT_PER_MINUTE``)."""
    svc.rate_limiter.check(_client_key(request))


GUARDED = [Depends(authorized)]
METERED = [Depends(authorized), Depends(limited)]
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (400, 401, 413, 415, 422, 429, 503, 504)}


# --------------------------------------------------------------------------- routers, one per resource

docs_router = APIRouter(include_in_schema=False)


@docs_router.get("/docs")
async def swagger() -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_html

    return get_swagger_ui_html(openapi_url="/openapi.json", title="rag-cite API",
                               swagger_js_url="/static/docs/swagger-ui-bundle.js",
                               swagger_css_url="/static/docs/swagger-ui.css",
                               swagger_favicon_url="/static/docs/favicon.png")


@docs_router.get("/redoc")
async def redoc() -> HTMLResponse:
    from fastapi.openapi.docs import get_redoc_html

    return get_redoc_html(openapi_url="/openapi.json", title="rag-cite API",
                          redoc_js_url="/static/docs/redoc.standalone.js",
                          redoc_favicon_url="/static/docs/favicon.png", with_google_fonts=False)


health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Alive (the process answers)."""
    return Health()


@health_router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(svc: ServiceDep) -> JSONResponse:
    """Ready: the index is filled and the default mode's models are loaded. 503 until then."""
    r = svc.readiness
    body = Ready(ready=r.ready, stage=r.stage, error=r.error, documents=r.documents, chunks=r.chunks,
                 default_mode=svc.settings.answer_mode, modes=dict(r.modes))
    return JSONResponse(body.model_dump(), status_code=200 if r.ready else 503)


@health_router.get("/metrics", response_class=PlainTextResponse, dependencies=GUARDED,
                   responses={401: {"model": ErrorBody}})
async def metrics(svc: ServiceDep) -> PlainTextResponse:
    """Prometheus metrics: requests, latency per route and pipeline stage, answers, refusals, errors."""
    return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4")


questions_router = APIRouter(tags=["questions"], dependencies=METERED)


@questions_router.post("/ask", response_model=Answer, responses=ERRORS)
async def ask(body: AskRequest, svc: ServiceDep) -> Answer:
    """Answer a question with citations, or refuse (`refused: true`) when the documents do not hold it."""
    return await svc.answer(body.question, history=[m.model_dump() for m in body.history], mode=body.mode,
                            sources=body.sources, top_k=body.top_k, route="ask")


@questions_router.post("/ask/stream", responses={
    **ERRORS, 200: {"content": {"text/event-stream": {}},
                    "description": "events: `token` {text} (the draft as the LLM writes it), then `citations` "
                    "[Citation], then `done` (the verified Answer); or `error` {error, message, hint}"}})
async def ask_stream(body: AskRequest, svc: ServiceDep) -> StreamingResponse:
    """Server-Sent Events. The draft streams as `token` events; `done` carries the verified answer, which
    replaces the draft (unsupported sentences are removed)."""
    events = await svc.open_answer(body.question, history=[m.model_dump() for m in body.history],
                                   mode=body.mode, sources=body.sources, top_k=body.top_k, route="ask_stream")

    async def sse() -> AsyncIterator[bytes]:
        try:
            async for kind, value in events:
                if kind == "token":
                    yield format_sse_event(data_str=json.dumps({"text": value}), event="token")
                elif kind == "answer":
                    cites = [c.model_dump() for c in value.citations]
                    yield format_sse_event(data_str=json.dumps(cites), event="citations")
                    yield format_sse_event(data_str=value.model_dump_json(), event="done")
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in the stream
            _log_stream_error(svc, exc)
            yield format_sse_event(data_str=json.dumps(_error_payload(exc)), event="error")
        finally:  # a client that went away stops the work (and frees its LLM queue place) now, not at GC
            await events.aclose()

    return StreamingResponse(sse(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


openai_router = APIRouter(prefix="/v1", tags=["openai"])


@openai_router.get("/models", dependencies=GUARDED, responses={401: {"model": ErrorBody}})
async def models() -> dict[str, Any]:
    """The answer modes as model names: `rag` (the server's default), `rag-local`, `rag-hosted`,
    `rag-extractive`."""
    names = ["rag", *(f"rag-{m}" for m in ("local", "hosted", "extractive"))]
    return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "rag-cite"}
                                       for n in names]}


@openai_router.post("/chat/completions", dependencies=METERED, responses={**ERRORS, 404: {"model": ErrorBody}})
async def chat_completions(body: ChatCompletionRequest, svc: ServiceDep) -> Any:
    """OpenAI-compatible chat completions (streaming and not). The last user message is the question; earlier
    user and assistant messages are the history. Citations are numbered footnotes in the content and the
    extra field `citations`. Streams carry the verified answer only (never an unchecked draft)."""
    mode = _mode_of_model(body.model)
    turns = [m for m in body.messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise BadQueryError("the last message must be a user message", hint="messages: [..., {role: user}]")
    history = [{"role": m.role, "content": _strip_footnotes(m.text())} for m in turns[:-1]][-50:]
    question = turns[-1].text()
    completion_id = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    model_name = body.model
    events = await svc.open_answer(question, history=history, mode=mode, route="openai")
    if not body.stream:
        answer = None
        async for kind, value in events:
            if kind == "answer":
                answer = value
        if answer is None:
            raise ServerBusyError("the server is shutting down", retry_after=5)
        return _completion(answer, completion_id, created, model_name)

    async def chunks() -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                       "model": model_name,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return "data: " + json.dumps(payload) + "\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""})
            async for kind, value in events:
                if kind != "answer":
                    continue
                for piece in re.findall(r"\S+\s*|\s+", _content(value)):
                    yield chunk({"content": piece})
                yield chunk({}, "stop", citations=[c.model_dump() for c in value.citations],
                            refused=value.refused)
        except Exception as exc:  # noqa: BLE001 - the status line is sent: report in the stream
            _log_stream_error(svc, exc)
            yield "data: " + json.dumps(_error_payload(exc)) + "\n\n"
        finally:
            await events.aclose()
        yield "data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


documents_router = APIRouter(prefix="/documents", tags=["documents"])


@documents_router.get("", response_model=list[DocumentInfo], dependencies=GUARDED,
                      responses={401: {"model": ErrorBody}})
async def documents(svc: ServiceDep) -> list[DocumentInfo]:
    """The indexed documents, newest first."""
    rows = await asyncio.to_thread(svc.documents)
    return [_doc_info(r, svc) for r in rows]


@documents_router.post("", response_model=UploadResponse, status_code=201, dependencies=METERED,
                       responses={**ERRORS, 409: {"model": ErrorBody}})
async def upload(
    file: Annotated[UploadFile, File(description="a .txt, .md, .html, .pdf, .docx or .jsonl file")],
    svc: ServiceDep,
) -> Any:
    """Upload a document and index it. A file with the same name replaces the earlier upload. A file that
    cannot be read is refused (422) and changes nothing."""
    data = await file.read()
    result = await asyncio.to_thread(svc.upload, file.filename or "upload", data)
    return JSONResponse(UploadResponse(filename=result.filename, document_ids=result.document_ids,
                                       report=result.report).model_dump(), status_code=201)


@documents_router.delete("/{doc_id}", response_model=DocumentInfo, dependencies=GUARDED,
                         responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody}})
async def delete_document(doc_id: str, svc: ServiceDep) -> DocumentInfo:
    """Remove a document from the index (an uploaded file is deleted as well)."""
    row = await asyncio.to_thread(svc.delete, doc_id)
    return _doc_info(row, svc)


feedback_router = APIRouter(tags=["feedback"])


@feedback_router.post("/feedback", response_model=FeedbackResponse, status_code=201, dependencies=GUARDED,
                      responses=ERRORS)
async def feedback(body: FeedbackRequest, svc: ServiceDep) -> FeedbackResponse:
    """Thumbs up or down on an answer, stored with the question, answer and citations (feedback.jsonl)."""
    entry_id = await asyncio.to_thread(svc.record_feedback, {"source": "api", **body.model_dump()})
    return FeedbackResponse(id=entry_id)


ROUTERS = (docs_router, health_router, questions_router, openai_router, documents_router, feedback_router)


# --------------------------------------------------------------------------- the app


def create_app(settings: Settings, *, service: Service | None = None, with_ui: bool = True,
               start: bool = True) -> FastAPI:
    """The server app. ``service`` may be injected (tests); ``start=False`` skips start-up (the caller runs
    ``service.start()``); ``with_ui=False`` leaves out the Gradio chat."""
    owned = service is None  # an injected service is started and closed by its owner
    svc = service or Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(asyncio.to_thread(svc.start)) if start else None
        try:
            yield
        finally:
            logger.info("shutting down: finishing requests in flight")
            if task is not None and not task.done():
                await asyncio.wait([task], timeout=5)
            if owned:
                await asyncio.to_thread(svc.close)

    app = FastAPI(
        title="rag-cite", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Answers from your documents with verified citations, or an honest refusal. "
        "Errors are JSON `{error, message, hint}`. When RAG_API_KEY is set, send `Authorization: Bearer <key>`.",
    )
    app.state.service = svc
    _install_error_handlers(app, svc)

    # the API docs, served from a package (no CDN)
    import fastapi_offline
    from fastapi.staticfiles import StaticFiles

    app.mount("/static/docs", StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"),
              name="docs-assets")
    for router in ROUTERS:
        app.include_router(router)

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(GuardMiddleware, service=svc)

    if with_ui:
        from ui.chat import mount_chat

        mount_chat(app, svc, path=UI_PATH)

        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse(UI_PATH + "/")

        @app.get("/manifest.json", include_in_schema=False)
        async def web_manifest() -> RedirectResponse:  # the Gradio page links it at the site root
            return RedirectResponse(UI_PATH + "/manifest.json")

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory ui.api:app_from_env`` (settings from the environment)."""
    from rag.settings import get_settings

    return create_app(get_settings())


# --------------------------------------------------------------------------- helpers


def _mode_of_model(model: str) -> AnswerMode | None:
    name = model.strip().lower()
    if name in ("rag", "default", ""):
        return None
    mode = name.removeprefix("rag-")
    if mode in ("local", "hosted", "extractive"):
        return cast("AnswerMode", mode)
    raise ModelNotFoundError(f"no model named {model!r}",
                             hint="GET /v1/models: rag, rag-local, rag-hosted, rag-extractive")


def _footnotes(answer: Answer) -> str:
    lines = []
    for c in answer.citations:
        where = c.title + (f", p. {c.page}" if c.page else "")
        quote = " ".join(c.quote.split())
        lines.append(f"[{c.n}] {where}: \u201c{quote}\u201d")
    return "\n".join(lines)


def _content(answer: Answer) -> str:
    notes = _footnotes(answer)
    return answer.text + ("\n\n" + notes if notes else "")


_FOOTNOTE_BLOCK = re.compile(r"\n\n\[\d+\] .*\Z", re.DOTALL)


def _strip_footnotes(text: str) -> str:
    """Earlier assistant turns come back with our footnotes: keep only the answer for the history."""
    return _FOOTNOTE_BLOCK.sub("", text)


def _completion(answer: Answer, completion_id: str, created: int, model: str) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": _content(answer)},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "citations": [c.model_dump() for c in answer.citations],
        "refused": answer.refused,
        "answer": answer.model_dump(),
    }


def _doc_info(row: Any, svc: Service) -> DocumentInfo:
    source = Path(row.source)
    return DocumentInfo(id=row.doc_id, source=row.source, filename=source.name, title=row.title,
                        chunks=row.n_chunks, chars=row.chars, indexed_at=row.indexed_at,
                        uploaded=source.parent == svc.uploads_dir.resolve())


def _log_stream_error(svc: Service, exc: BaseException) -> None:
    svc.metrics.errors.labels(error=type(exc).__name__).inc()
    if isinstance(exc, RagError):
        logger.warning("stream stopped: %s", exc.message)
    else:
        logger.error("stream failed", exc_info=exc)

