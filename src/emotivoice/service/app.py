"""The FastAPI application: routes under ``/api/v1``, errors as JSON with stable codes.

``create_app(settings)`` builds a complete API process: it migrates the database, connects the
job queue and starts the janitor. Workers run elsewhere (``emotivoice worker``, or the one that
``emotivoice serve`` starts).

This module only assembles the app: the shared services (:mod:`.deps`), the routes
(:mod:`.routes`, and :mod:`.stream` for the WebSocket), the upload size limit, the error handlers,
the web UI and the offline API docs; :class:`~emotivoice.service.guard.RequestGuard` checks
host, origin, credentials and body size before any route runs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from emotivoice._version import __version__
from emotivoice.errors import EmotiVoiceError
from emotivoice.service.assistant import AssistantRuntime
from emotivoice.service.assistant import router as assistant_router
from emotivoice.service.deps import Services
from emotivoice.service.errors import QuotaExceededError, RateLimitedError, api_error
from emotivoice.service.guard import RequestGuard
from emotivoice.service.logs import redact_access_log
from emotivoice.service.routes import (
    API_PREFIX,
    analyses,
    explanations,
    health,
    reference,
    tokens,
    uploads,
    wakeword,
)
from emotivoice.service.schemas import ErrorBody
from emotivoice.service.settings import Settings, load_settings
from emotivoice.service.stream import router as stream_router

__all__ = ["API_PREFIX", "create_app"]

logger = logging.getLogger(__name__)

DOCS_STATIC_URL = "/static-docs"  # Swagger UI and ReDoc assets
_ROUTERS = (health, uploads, analyses, explanations, reference, tokens)  # mounted in this order
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "FILE_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


_MULTIPART_PARSER_MESSAGE = "Invalid multipart data."  # python-multipart's, for any fault
_MULTIPART_MESSAGE = (
    "The upload's multipart body could not be read: it is malformed, or the headers of its file "
    "part (the file name, mostly) are longer than about 4 KB. Send the file with a shorter name."
)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    body = ErrorBody(code=code, message=message)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EmotiVoiceError)
    async def engine_error(request: Request, exc: EmotiVoiceError) -> Any:
        status, code = api_error(exc)
        headers = None
        if isinstance(exc, RateLimitedError | QuotaExceededError):
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
        if exc.status_code == 400 and message == _MULTIPART_PARSER_MESSAGE:
            code, message = "INVALID_MULTIPART", _MULTIPART_MESSAGE
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
    app.add_api_route("/assistant", page("assistant"), include_in_schema=False)
    app.add_api_route("/wakeword", page("wakeword"), include_in_schema=False)
    app.add_api_route("/analyses/{analysis_id}", page("result"), include_in_schema=False)


def create_app(settings: Settings | None = None, *, janitor: bool = True) -> FastAPI:
    """The API application for ``settings`` (default: from the environment)."""
    settings = settings or load_settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_access_log()  # after the server configured its loggers
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
    for routes in _ROUTERS:
        app.include_router(routes.router, prefix=API_PREFIX)
    app.include_router(stream_router, prefix=API_PREFIX)
    app.state.assistant = AssistantRuntime(settings)  # the language model, loaded on first use
    app.include_router(assistant_router, prefix=API_PREFIX)
    app.include_router(wakeword.router, prefix=API_PREFIX)
    _mount_ui(app)
    app.add_middleware(RequestGuard, services=lambda: services)
    if settings.cors_origins:
        # Added last, so outermost: the guard's early 413 and 401 carry the CORS headers too
        # and a browser client can read the error.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    return app
