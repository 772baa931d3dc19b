"""The HTTP API: a thin FastAPI layer over `RagService`.

Routes: `GET /` (the web page in rag/static), `POST /ask` (JSON, or server-sent events
with `"stream": true`), `GET /search`, `GET /notes/{path}`, `GET /health`,
`POST /index/rebuild`, `GET /generators`, OpenAPI at `/docs`. Request and response bodies
are pydantic models, so the schema is exact. One handler maps every `RagError` to its
status with `{"detail", "error"}`; anything else is a 500 with a one-line message, never a
stack trace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from .errors import RagError
from .generators import Answer
from .service import RagService
from .settings import Settings, get_settings

__all__ = ["create_app"]

log = logging.getLogger("rag.app")

_STATIC = Path(__file__).parent / "static"
# the page loads nothing from elsewhere, so a strict policy costs nothing and blunts any XSS
_CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


class AskRequest(BaseModel):
    question: str = Field(description="the question; not empty, at most RAG_MAX_QUESTION_CHARS characters")
    k: int | None = Field(None, ge=1, le=50, description="passages to retrieve (default RAG_TOP_K)")
    generator: str | None = Field(None, description="generator name (default RAG_GENERATOR); see GET /generators")
    stream: bool = Field(False, description="answer as server-sent events")


class SearchHit(BaseModel):
    note: str
    title: str
    heading: str
    start_line: int
    end_line: int
    text: str
    score: float
    dense: float
    bm25: float | None
    sources: list[str]


class SearchResponse(BaseModel):
    query: str
    hits: list[SearchHit]


class NoteResponse(BaseModel):
    note: str
    title: str
    tags: list[str]
    text: str
    lines: int


class HealthResponse(BaseModel):
    status: str
    notes: int
    chunks: int
    embedder: str
    built_at: str
    snapshot: str
    generator: str
    rebuilding: bool
    warnings: list[str]


class RebuildResponse(BaseModel):
    notes: int
    chunks_total: int
    chunks_embedded: int
    chunks_reused: int
    added: list[str]
    changed: list[str]
    removed: list[str]
    renamed: list[dict[str, str]]
    warnings: list[str]
    seconds: float
    snapshot: str
    built_at: str
    rebuilt: bool


class GeneratorStatus(BaseModel):
    name: str
    description: str
    ready: bool
    detail: str
    extra: str | None
    default: bool


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(service: RagService | None = None, settings: Settings | None = None) -> FastAPI:
    """The app over `service` (built from settings when not given)."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        watcher = None
        if app.state.service.settings.watch:
            from .watch import NotesWatcher

            watcher = NotesWatcher(app.state.service)
            watcher.start()
        app.state.watcher = watcher
        yield
        if watcher is not None:
            watcher.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="rag",
        description="Questions over a folder of markdown notes, answered with line-level citations.",
        version="0.1.0",
    )
    app.state.service = service or RagService(settings or get_settings())

    def svc() -> RagService:
        return app.state.service

    @app.exception_handler(RagError)
    async def rag_error(_: Request, exc: RagError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": str(exc), "error": type(exc).__name__})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(status_code=500, content={"detail": f"internal error: {type(exc).__name__}", "error": "InternalError"})

    @app.post("/ask", response_model=Answer, responses={200: {"content": {"text/event-stream": {}}}})
    def ask(body: AskRequest, s: RagService = Depends(svc)):
        """Answer a question with citations; `"stream": true` sends server-sent events:
        `citations`, then `delta` pieces of the answer text, then `done` with the full answer."""
        if body.stream:
            events = s.ask_stream(body.question, body.k, body.generator)
            first = next(events)  # errors before the first event still become JSON errors
            return StreamingResponse(_sse(first, events), media_type="text/event-stream")
        return s.ask(body.question, body.k, body.generator)

    @app.get("/search", response_model=SearchResponse)
    def search(
        q: str = Query(..., description="the query"),
        k: int = Query(5, ge=1, le=50),
        mode: Literal["hybrid", "dense", "bm25"] = "hybrid",
        s: RagService = Depends(svc),
    ):
        hits = s.search(q, k, mode)
        return SearchResponse(
            query=q,
            hits=[
                SearchHit(
                    note=h.chunk.note,
                    title=h.chunk.title,
                    heading=h.chunk.heading,
                    start_line=h.chunk.start_line,
                    end_line=h.chunk.end_line,
                    text=h.chunk.text,
                    score=h.score,
                    dense=h.dense,
                    bm25=h.bm25,
                    sources=list(h.sources),
                )
                for h in hits
            ],
        )

    @app.get("/notes/{path:path}", response_model=NoteResponse)
    def note(path: str, s: RagService = Depends(svc)):
        return s.read_note(path)

    @app.get("/health", response_model=HealthResponse, responses={503: {"description": "no usable index"}})
    def health(s: RagService = Depends(svc)):
        return s.health()

    @app.get("/generators", response_model=list[GeneratorStatus])
    def generators(s: RagService = Depends(svc)):
        return [{**g, "default": g["name"] == s.settings.generator} for g in s.registry.status(s.settings)]

    @app.post("/index/rebuild", response_model=RebuildResponse, responses={401: {}, 403: {}, 409: {}})
    async def rebuild(request: Request, full: bool = False, s: RagService = Depends(svc)):
        """Re-index the notes and swap the new snapshot in. Needs `Authorization: Bearer
        <RAG_ADMIN_TOKEN>` when a token is set; without one, only loopback clients may call
        it. A second call while a rebuild runs gets 409."""
        denied = _admin_denied(request, s.settings)
        if denied is not None:
            return denied
        report = await run_in_threadpool(s.index, full)
        return report.to_dict()

    @app.get("/index/rebuild", include_in_schema=False)
    def rebuild_allowed(request: Request, s: RagService = Depends(svc)):
        """Whether this client may rebuild (the web page shows its button only then)."""
        return {"allowed": _admin_denied(request, s.settings) is None, "token_required": bool(s.settings.admin_token)}

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(_STATIC / "index.html", headers={"Content-Security-Policy": _CSP})

    app.mount("/static", StaticFiles(directory=_STATIC), name="static")
    from .openai_api import router as openai_router  # /v1/models, /v1/chat/completions

    app.include_router(openai_router)
    return app


def _admin_denied(request: Request, settings: Settings) -> JSONResponse | None:
    token = settings.admin_token
    if token:
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip().encode(), token.encode()):
            return JSONResponse(
                status_code=401,
                content={"detail": "rebuild needs 'Authorization: Bearer <RAG_ADMIN_TOKEN>'", "error": "Unauthorized"},
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None
    if not _is_loopback(request.client.host if request.client else None):
        return JSONResponse(
            status_code=403,
            content={"detail": "rebuild is allowed from loopback only unless RAG_ADMIN_TOKEN is set", "error": "Forbidden"},
        )
    return None


def _sse(first: dict, rest: Iterator[dict]) -> Iterator[str]:
    def frame(ev: dict) -> str:
        return f"event: {ev['event']}\ndata: {json.dumps(ev['data'])}\n\n"

    yield frame(first)
    try:
        for ev in rest:
            yield frame(ev)
    except RagError as exc:
        yield frame({"event": "error", "data": {"detail": str(exc), "error": type(exc).__name__}})
    except Exception as exc:  # the stream is open: report in-band, never a stack trace
        log.exception("error while streaming")
        yield frame({"event": "error", "data": {"detail": f"internal error: {type(exc).__name__}", "error": "InternalError"}})
