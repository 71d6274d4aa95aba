"""The FastAPI application: routes under ``/api/v1``, errors as JSON with stable codes.

``create_app(settings)`` builds a complete API process: it migrates the database, connects the
job queue and starts the janitor. Workers run elsewhere (``emotivoice worker``, or the one that
``emotivoice serve`` starts).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emotivoice._version import __version__
from emotivoice.errors import (
    CallbacksNotConfiguredError,
    EmotiVoiceError,
    FileTooLargeError,
    InvalidConfigError,
    InvalidResultError,
    NotFoundError,
    NotReadyError,
    RateLimitedError,
)
from emotivoice.service.auth import RateLimiter, key_from_headers, owner_for_key
from emotivoice.service.db import AnalysisRow, UploadRow
from emotivoice.service.errors import api_error
from emotivoice.service.jobs import Janitor, enqueue, make_celery
from emotivoice.service.schemas import (
    AnalysisCreate,
    AnalysisOptionsIn,
    BatchCreate,
    ErrorBody,
    Page,
    iso,
)
from emotivoice.service.settings import Settings, load_settings
from emotivoice.service.storage import Store
from emotivoice.service.stream import router as stream_router

__all__ = ["API_PREFIX", "create_app"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DOCS_STATIC_URL = "/static-docs"  # Swagger UI and ReDoc assets
_UPLOAD_SLACK_BYTES = 64 * 1024  # multipart framing around the file
_VIS_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_EXPORTS = {
    "json": ("analysis.json", "application/json"),
    "csv": ("analysis.csv", "text/csv"),
    "srt": ("analysis.srt", "application/x-subrip"),
    "vtt": ("analysis.vtt", "text/vtt"),
    "pdf": ("report.pdf", "application/pdf"),
}
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "FILE_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422, 429)
}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


class _UploadLimit:
    """Refuses an upload body larger than the limit before or while it is read (413)."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        limit = self.limit() + _UPLOAD_SLACK_BYTES
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            mb = (limit - _UPLOAD_SLACK_BYTES) / 1024 / 1024
            response = _error(413, "FILE_TOO_LARGE", f"The upload is larger than {mb:g} MB.")
            await response(scope, receive, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise FileTooLargeError("The upload is larger than the configured limit.")
            return message

        await self.app(scope, counting, send)


class Services:
    """What the routes share: settings, storage, queue, rate limiter and the loaded models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.celery = make_celery(settings)
        self.limiter = RateLimiter(settings.rate_limit_per_minute)
        self.janitor = Janitor(self.store, self.celery)
        self._analyzer: Any = None
        self._lock = threading.Lock()

    def analyzer(self) -> Any:
        """The process' shared default :class:`~emotivoice.pipeline.Analyzer` (read-only)."""
        with self._lock:
            if self._analyzer is None:
                from emotivoice.pipeline import Analyzer

                self._analyzer = Analyzer()
            return self._analyzer

    @property
    def models_loaded(self) -> bool:
        return self._analyzer is not None

    def queue_ok(self) -> bool:
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:  # health check reports, never raises
            logger.warning("Queue unreachable", exc_info=True)
            return False


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _owner(request: Request) -> str:
    """Authenticate the request and apply its rate limit; the owner id it acts as."""
    services = _services(request)
    key = key_from_headers(request.headers, request.query_params)
    owner = owner_for_key(services.store, services.settings, key)
    client = request.client.host if request.client else "unknown"
    services.limiter.check(owner if key else f"{owner}@{client}")
    return owner


Owner = Annotated[str, Depends(_owner)]
Svc = Annotated[Services, Depends(_services)]


def _upload_json(row: UploadRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "filename": row.filename,
        "format": row.format,
        "codec": row.codec,
        "sample_rate": row.sample_rate,
        "channels": row.channels,
        "duration": row.duration,
        "size_bytes": row.size_bytes,
        "created_at": iso(row.created_at),
    }


def _analysis_json(
    row: AnalysisRow, segments: list[dict[str, Any]] | None = None, full: bool = False
) -> dict[str, Any]:
    result = row.result or {}
    emotion = result.get("emotion") or {}
    data: dict[str, Any] = {
        "id": row.id,
        "upload_id": row.upload_id,
        "status": row.status,
        "progress": round(row.progress),
        "stage": row.stage,
        "attempt": row.attempt,
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
        "duration": result.get("duration"),
        "language": result.get("language"),
        "dominant_emotion": emotion.get("dominant"),
        "error": {"code": row.error_code, "message": row.error_message} if row.error_code else None,
    }
    if full:
        data["options"] = row.options
        data["segments"] = segments or []
        data["result"] = row.result
        data["callback_status"] = row.callback_status
    return data


def _check_options(settings: Settings, options: AnalysisOptionsIn) -> dict[str, Any]:
    """Validate options against this server before a job is queued."""
    from emotivoice.models.registry import available_models
    from emotivoice.service.runner import explain_options
    from emotivoice.pipeline import AnalyzeOptions
    from emotivoice.transcription import supported_languages

    if options.model not in available_models():
        raise InvalidConfigError(
            f"Unknown model {options.model!r}; available models = {available_models()}"
        )
    if options.language is not None and options.language not in supported_languages():
        raise InvalidConfigError(f"Unknown language {options.language!r}; see GET /languages.")
    if options.emotion_model not in settings.emotion_models:
        raise InvalidConfigError(
            f"Emotion model {options.emotion_model!r} is not offered by this server; "
            f"choose from {settings.emotion_models}."
        )
    if options.explain and not options.emotion:
        raise InvalidConfigError("explain explains emotions; it needs emotion turned on.")
    if options.explain or options.explain_methods:
        explain_options(options)  # the one check of methods, model and budget
    AnalyzeOptions.from_kwargs(**options.analyzer_kwargs())
    return options.model_dump()


def _check_callback(settings: Settings, callback_url: Any) -> None:
    """Refuse a callback URL when this server has no key to sign its notices with."""
    if callback_url is not None and not settings.callback_secret:
        raise CallbacksNotConfiguredError(
            "This server has no callback secret (EMOTIVOICE_CALLBACK_SECRET), so it cannot sign "
            "completion notices; leave callback_url out, or ask the operator to set the secret."
        )


def _queue(svc: Services, owner: str, upload_id: str, options: dict[str, Any], cb: Any) -> str:
    row = svc.store.create_analysis(owner, upload_id, options, str(cb) if cb else None)
    enqueue(svc.celery, row.id, row.attempt)
    return row.id


def _build_router() -> APIRouter:
    router = APIRouter(responses=_ERROR_RESPONSES)

    @router.get("/health", tags=["service"])
    def health(svc: Svc) -> dict[str, Any]:
        """Version, models loaded in this process, and whether database and queue answer."""
        database, queue = svc.store.ping(), svc.queue_ok()
        return {
            "status": "ok" if database and queue else "degraded",
            "version": __version__,
            "mode": "embedded" if svc.settings.embedded_queue else "scale-out",
            "models_loaded": svc.models_loaded,
            "database": database,
            "queue": queue,
        }

    @router.get("/ready", tags=["service"])
    def ready(svc: Svc) -> Any:
        """200 when the database and the queue answer, else 503."""
        if svc.store.ping() and svc.queue_ok():
            return {"ready": True}
        return _error(503, "NOT_READY", "The database or the job queue is not reachable.")

    @router.post("/uploads", status_code=201, tags=["uploads"])
    def create_upload(
        svc: Svc, owner: Owner, file: Annotated[UploadFile, File(description="An audio file")]
    ) -> dict[str, Any]:
        """Store a recording; its format is judged from the content, never the file name."""
        row = svc.store.create_upload(owner, file.file, file.filename)
        return _upload_json(row)

    @router.get("/uploads", tags=["uploads"])
    def list_uploads(
        svc: Svc,
        owner: Owner,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> Page:
        rows, total = svc.store.list_uploads(owner, limit, offset)
        return Page(items=[_upload_json(r) for r in rows], total=total, limit=limit, offset=offset)

    @router.get("/uploads/{upload_id}", tags=["uploads"])
    def get_upload(svc: Svc, owner: Owner, upload_id: str) -> dict[str, Any]:
        return _upload_json(svc.store.get_upload(owner, upload_id))

    @router.get("/uploads/{upload_id}/audio", tags=["uploads"])
    def get_upload_audio(svc: Svc, owner: Owner, upload_id: str) -> Any:
        """The stored recording, as uploaded (for players)."""
        row = svc.store.get_upload(owner, upload_id)
        return FileResponse(
            svc.store.upload_path(row.id),
            media_type=f"audio/{row.format}",
            filename=row.filename,
        )

    @router.delete("/uploads/{upload_id}", tags=["uploads"])
    def delete_upload(svc: Svc, owner: Owner, upload_id: str) -> dict[str, Any]:
        """Remove the recording and every analysis of it."""
        svc.store.delete_upload(owner, upload_id)
        return {"id": upload_id, "deleted": True}

    @router.post("/analyses", status_code=202, tags=["analyses"])
    def create_analysis(svc: Svc, owner: Owner, body: AnalysisCreate) -> dict[str, Any]:
        """Queue an analysis of an upload; poll ``GET /analyses/{id}``."""
        options = _check_options(svc.settings, body.options)
        _check_callback(svc.settings, body.callback_url)
        analysis_id = _queue(svc, owner, body.upload_id, options, body.callback_url)
        return {"id": analysis_id, "status": "queued"}

    @router.post("/analyses/batch", status_code=202, tags=["analyses"])
    def create_batch(svc: Svc, owner: Owner, body: BatchCreate) -> dict[str, Any]:
        """Queue one analysis per upload; a bad upload id fails alone, the rest are queued."""
        options = _check_options(svc.settings, body.options)
        _check_callback(svc.settings, body.callback_url)
        items: list[dict[str, Any]] = []
        for upload_id in body.upload_ids:
            try:
                analysis_id = _queue(svc, owner, upload_id, options, body.callback_url)
                items.append({"upload_id": upload_id, "id": analysis_id, "status": "queued"})
            except EmotiVoiceError as e:
                _, code = api_error(e)
                items.append(
                    {"upload_id": upload_id, "error": {"code": code, "message": e.message}}
                )
        return {"items": items}

    @router.get("/analyses", tags=["analyses"])
    def list_analyses(
        svc: Svc,
        owner: Owner,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
        status: Annotated[
            str | None, Query(pattern="^(queued|running|completed|failed|cancelled)$")
        ] = None,
    ) -> Page:
        rows, total = svc.store.list_analyses(owner, limit, offset, status)
        return Page(
            items=[_analysis_json(r) for r in rows], total=total, limit=limit, offset=offset
        )

    @router.get("/analyses/{analysis_id}", tags=["analyses"])
    def get_analysis(svc: Svc, owner: Owner, analysis_id: str) -> dict[str, Any]:
        """Status, progress, stage, segments finished so far and, once completed, the result."""
        row = svc.store.get_analysis(owner, analysis_id)
        return _analysis_json(row, svc.store.segments(analysis_id), full=True)

    @router.delete("/analyses/{analysis_id}", tags=["analyses"])
    def delete_analysis(svc: Svc, owner: Owner, analysis_id: str) -> dict[str, Any]:
        """Cancel the analysis if it is still running and remove its results and files."""
        svc.store.delete_analysis(owner, analysis_id)
        return {"id": analysis_id, "status": "cancelled"}

    def _completed_dir(svc: Services, owner: str, analysis_id: str) -> Any:
        row = svc.store.get_analysis(owner, analysis_id)
        if row.status != "completed":
            raise NotReadyError(f"Analysis {analysis_id} is {row.status}, not completed.")
        return svc.store.result_dir(analysis_id, row.attempt)

    def _write_missing_export(folder: Path, fmt: str, path: Path, analysis_id: str) -> None:
        """Write an export the result folder lacks (an analysis finished before its format
        existed) from the stored ``analysis.json``, once: later requests find the file."""
        from emotivoice.export import write_export
        from emotivoice.results import load_analysis

        stored = folder / _EXPORTS["json"][0]
        if not stored.is_file():
            raise NotFoundError(f"No {fmt} export for analysis {analysis_id}.")
        explain_dir = folder / "explain"
        partial = folder / f".{uuid.uuid4().hex}.{fmt}"  # concurrent requests race harmlessly
        try:
            write_export(load_analysis(stored), fmt, partial, explain_dir)
            partial.replace(path)
        except InvalidResultError as error:  # its message names a server path
            logger.error("Analysis %s: %s", analysis_id, error.message)
            raise InvalidResultError(
                f"The stored result of analysis {analysis_id} is unreadable, so its {fmt} "
                "export cannot be written."
            ) from None
        finally:
            partial.unlink(missing_ok=True)
        logger.info("Wrote the missing %s export of analysis %s", fmt, analysis_id)

    @router.get("/analyses/{analysis_id}/export", tags=["analyses"])
    def export(
        svc: Svc,
        owner: Owner,
        analysis_id: str,
        format: Annotated[str, Query(pattern="^(json|csv|pdf|srt|vtt)$")] = "json",
    ) -> Any:
        """The result as JSON, CSV, SRT, WebVTT or a PDF report."""
        name, media = _EXPORTS[format]
        folder = _completed_dir(svc, owner, analysis_id)
        path = folder / name
        if not path.is_file():
            _write_missing_export(folder, format, path, analysis_id)
        return FileResponse(path, media_type=media, filename=f"{analysis_id}.{format}")

    @router.get("/analyses/{analysis_id}/explanations", tags=["explanations"])
    def explanations(svc: Svc, owner: Owner, analysis_id: str) -> dict[str, Any]:
        """Per-segment explanations (window Shapley values, counterfactuals, faithfulness...)."""
        folder = _completed_dir(svc, owner, analysis_id) / "explain"
        if not folder.is_dir():
            raise NotFoundError(
                f"Analysis {analysis_id} has no explanations; ask with options.explain = true."
            )
        segments = [json.loads(p.read_text()) for p in sorted(folder.glob("segment-*.json"))]
        figures = sorted(p.stem for p in folder.glob("*.png"))
        return {
            "segments": segments,
            "visualizations": [
                {"name": f, "url": f"{API_PREFIX}/analyses/{analysis_id}/visualizations/{f}.png"}
                for f in figures
            ],
        }

    @router.get("/analyses/{analysis_id}/visualizations/{name}.png", tags=["explanations"])
    def visualization(svc: Svc, owner: Owner, analysis_id: str, name: str) -> Any:
        folder = _completed_dir(svc, owner, analysis_id) / "explain"
        path = folder / f"{name}.png"
        if not _VIS_NAME.match(name) or not path.is_file():
            raise NotFoundError(f"No visualization {name!r} for analysis {analysis_id}.")
        return FileResponse(path, media_type="image/png")

    @router.get("/emotions", tags=["reference"])
    def emotions() -> dict[str, Any]:
        """The emotion taxonomy: base emotions, granular lists, thresholds, complex rules."""
        from emotivoice.emotion.labels import BASE_EMOTIONS
        from emotivoice.emotion.taxonomy import load_taxonomy

        t = load_taxonomy()
        return {
            "base": list(BASE_EMOTIONS),
            "primary": {k: list(v) for k, v in t.primary.items()},
            "secondary": {k: list(v) for k, v in t.secondary.items()},
            "primary_thresholds": dict(t.primary_thresholds),
            "secondary_range": [t.secondary_min, t.secondary_max],
            "secondary_factor": t.secondary_factor,
            "complex": [{"pair": sorted(p), "name": n} for p, n in t.complex_rules.items()],
            "complex_min": t.complex_min,
            "granular_count": t.granular_count,
        }

    @router.get("/languages", tags=["reference"])
    def languages() -> dict[str, Any]:
        from emotivoice.transcription import supported_languages

        return {"languages": supported_languages()}

    @router.get("/models", tags=["reference"])
    def models(svc: Svc) -> dict[str, Any]:
        from dataclasses import asdict

        from emotivoice.models.registry import model_info

        return {
            "whisper": [asdict(m) for m in model_info()],
            "emotion": svc.settings.emotion_models,
        }

    return router


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EmotiVoiceError)
    async def engine_error(request: Request, exc: EmotiVoiceError) -> Any:
        status, code = api_error(exc)
        headers = None
        if isinstance(exc, RateLimitedError):
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return _error(status, code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Any:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        return _error(422, "VALIDATION_ERROR", "Invalid request: " + "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if isinstance(exc.__cause__, EmotiVoiceError):  # raised while the body was parsed
            return await engine_error(request, exc.__cause__)
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return _error(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Any:
        reference = uuid.uuid4().hex[:12]
        logger.error("Unhandled error (reference %s)", reference, exc_info=exc)
        return _error(
            500,
            "INTERNAL_ERROR",
            f"An internal error occurred; it has been logged with reference {reference}.",
        )


def _mount_ui(app: FastAPI) -> None:
    """The web UI on the same origin: pages, static modules and styles, no build step."""
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    from emotivoice.web import render_page, static_dir

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    def page(name: str) -> Callable[[], HTMLResponse]:
        def serve_page() -> HTMLResponse:
            return HTMLResponse(render_page(name))

        return serve_page

    app.add_api_route("/", page("index"), include_in_schema=False)
    app.add_api_route("/live", page("live"), include_in_schema=False)
    app.add_api_route("/analyses/{analysis_id}", page("result"), include_in_schema=False)


def create_app(settings: Settings | None = None, *, janitor: bool = True) -> FastAPI:
    """The API application for ``settings`` (default: from the environment)."""
    settings = settings or load_settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if janitor:
            services.janitor.start()
        try:
            yield
        finally:
            if janitor:
                services.janitor.stop()
            services.store.dispose()

    # /docs (Swagger UI) and /redoc with their scripts and styles served by this process
    # (fastapi-offline ships them), so the docs work on a machine without internet access.
    app = FastAPIOffline(
        title="EmotiVoice",
        version=__version__,
        description="Speech analysis: transcript, emotions, acoustic features, explanations.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        static_url=DOCS_STATIC_URL,
    )
    app.state.services = services
    # The names the WebSocket streaming route reads.
    app.state.settings, app.state.store, app.state.analyzer = (
        settings,
        services.store,
        services.analyzer,
    )
    _install_error_handlers(app)
    app.include_router(_build_router(), prefix=API_PREFIX)
    app.include_router(stream_router, prefix=API_PREFIX)
    _mount_ui(app)
    app.add_middleware(_UploadLimit, limit=lambda: settings.max_upload_bytes)
    if settings.cors_origins:
        # Added last, so outermost: the upload limit's 413 carries the CORS headers too and a
        # browser client can read the error.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    return app
