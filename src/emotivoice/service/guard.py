"""The service's front gate: an ASGI middleware that runs before any route reads a request.

* **Host and Origin** (while API keys are off): only the host names of ``allowed_hosts``
  (loopback by default) and same-origin or ``allowed_origins`` web pages are answered, so a web
  page elsewhere cannot reach a local server, neither through DNS rebinding nor cross-origin
  requests, WebSocket included.
* **Authentication before the body**: a request with a body (POST, PUT, PATCH) under the API
  is authenticated from its headers and rate-limited before one byte of the body is read; a
  wrong key costs the server nothing but a database lookup, and refused keys count against the
  client address.
* **Body limits**: uploads up to ``max_upload_mb``, every other body up to ``max_json_kb``;
  refused from ``Content-Length`` before reading, or while reading a chunked body.
* **Security headers** on every response: a Content Security Policy, ``nosniff``, no framing,
  no referrer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emotivoice.errors import EmotiVoiceError
from emotivoice.service.errors import (
    FileTooLargeError,
    ForbiddenError,
    HostNotAllowedError,
    RateLimitedError,
    RequestTooLargeError,
    api_error,
)
from emotivoice.service.routes import API_PREFIX

__all__ = ["BODY_METHODS", "RequestGuard", "host_name", "security_headers"]

logger = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_UPLOAD_PATH = f"{API_PREFIX}/uploads"
_UPLOAD_SLACK_BYTES = 64 * 1024  # multipart framing around the file
_WS_POLICY_CLOSE = 1008

# The UI and the API: scripts and styles of this origin only (the UI sets style attributes),
# media and figures from this origin, no framing, no plugins.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc start from an inline script and ReDoc runs a worker from a blob.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")


def security_headers(path: str) -> dict[str, str]:
    """The security headers of a response to ``path``."""
    return {
        "Content-Security-Policy": _DOCS_CSP if path.startswith(_DOCS_PATHS) else _CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


def host_name(host: str) -> str:
    """The name of a ``Host`` header without its port (``[::1]:8000`` -> ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _error_response(error: EmotiVoiceError, path: str) -> JSONResponse:
    status, code = api_error(error)
    headers = security_headers(path)
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return JSONResponse({"code": code, "message": error.message}, status, headers=headers)


class RequestGuard:
    """See the module documentation; ``services`` gives settings and :meth:`Services.admit`."""

    def __init__(self, app: ASGIApp, services: Callable[[], Any]) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        services = self.services()
        settings = services.settings
        path: str = scope["path"]
        headers = Headers(scope=scope)
        try:
            if not settings.require_api_key:
                self._check_host_and_origin(settings, headers)
        except EmotiVoiceError as error:
            logger.warning("Refused %s %s: %s", scope["type"], path, error.message)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": _WS_POLICY_CLOSE})
            else:
                await _error_response(error, path)(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send, path)
        if scope["method"] in BODY_METHODS:
            try:
                if path.startswith(API_PREFIX):
                    # authenticate from headers only, before one byte of the body is read
                    client = scope["client"][0] if scope.get("client") else "unknown"
                    query = QueryParams(scope.get("query_string", b""))
                    owner, rate_key = await run_in_threadpool(
                        services.admit, headers, query, client, allow_token=False
                    )
                    state = scope.setdefault("state", {})
                    state["owner"], state["rate_key"] = owner, rate_key
                limit, too_large = self._body_limit(settings, path)
                declared = headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise too_large
            except EmotiVoiceError as error:
                await _error_response(error, path)(scope, receive, send)
                return
            receive = _counting(receive, limit, too_large)
        await self.app(scope, receive, send)

    @staticmethod
    def _body_limit(settings: Any, path: str) -> tuple[int, EmotiVoiceError]:
        if path == _UPLOAD_PATH:
            return settings.max_upload_bytes + _UPLOAD_SLACK_BYTES, FileTooLargeError(
                f"The upload is larger than {settings.max_upload_mb:g} MB."
            )
        return int(settings.max_json_kb * 1024), RequestTooLargeError(
            f"The request body is larger than {settings.max_json_kb:g} KB."
        )

    @staticmethod
    def _check_host_and_origin(settings: Any, headers: Headers) -> None:
        host = headers.get("host", "")
        allowed = {h.lower() for h in settings.allowed_hosts}
        if "*" not in allowed and host_name(host) not in allowed:
            raise HostNotAllowedError(
                f"This server does not answer to the host name {host_name(host)!r} while API "
                "keys are off; add it to allowed_hosts (EMOTIVOICE_ALLOWED_HOSTS) or turn keys on."
            )
        origin = headers.get("origin")
        if origin is None:
            return
        origins = {
            o.rstrip("/").lower() for o in [*settings.allowed_origins, *settings.cors_origins]
        }
        if origin.rstrip("/").lower() in origins:
            return
        parts = urlsplit(origin)
        if parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower():
            return  # the server's own pages
        raise ForbiddenError(
            f"Requests from the web page origin {origin!r} are refused while API keys are off; "
            "add it to allowed_origins (EMOTIVOICE_ALLOWED_ORIGINS) or turn keys on."
        )


def _with_security_headers(send: Send, path: str) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            response_headers = MutableHeaders(scope=message)
            for name, value in security_headers(path).items():
                if name not in response_headers:
                    response_headers[name] = value
        await send(message)

    return sending


def _counting(receive: Receive, limit: int, too_large: EmotiVoiceError) -> Receive:
    seen = 0

    async def counting() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise too_large
        return message

    return counting
