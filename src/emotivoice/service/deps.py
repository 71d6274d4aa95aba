"""What the routes share, and the FastAPI dependencies that hand it to them.

One :class:`Services` per app (``app.state.services``): settings, storage, job queue, rate
limiter, janitor and the lazily loaded models. Routes ask for the parts they need by type:

* :data:`Svc`, :data:`StoreDep`, :data:`SettingsDep`: the app's services, store or settings;
* :data:`Owner`: authenticates the request (API key, or a token for reads) and applies its
  rate limit; the owner id the request acts as (see :mod:`emotivoice.service.auth`). Requests
  with a body were already admitted by :class:`~emotivoice.service.guard.RequestGuard` before
  their body was read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request

from emotivoice.service.auth import RateLimiter, TokenSigner, limiter_storage_url, resolve_owner
from emotivoice.service.errors import UnauthorizedError
from emotivoice.service.jobs import Janitor, make_celery
from emotivoice.service.quotas import StreamSlots
from emotivoice.service.settings import Settings
from emotivoice.service.storage import Store

__all__ = ["Owner", "Services", "SettingsDep", "StoreDep", "Svc", "charge", "get_services"]

logger = logging.getLogger(__name__)


class Services:
    """What the routes share: settings, storage, queue, rate limiter and the loaded models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings)
        self.celery = make_celery(settings)
        storage = limiter_storage_url(settings)
        self.limiter = RateLimiter(settings.rate_limit_per_minute, storage)
        # refused credentials per client address: guessing keys gets 429, not endless 401s
        self.auth_failures = RateLimiter(settings.auth_failures_per_minute, self.limiter.storage)
        self.signer = TokenSigner(settings)
        self.streams = StreamSlots(settings.max_streams, storage)
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

    def admit(
        self,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        client: str,
        *,
        allow_token: bool,
    ) -> tuple[str, str]:
        """Authenticate a request from its headers and query alone, and apply its rate limit;
        the owner it acts as and the name its rate limit is counted under.

        Raises:
            UnauthorizedError: a missing, unknown or revoked key, or a bad token.
            RateLimitedError: the owner (or, without a key, the client address) is over its
                limit, or the client address sent too many refused keys.
        """
        self.auth_failures.check_spent(f"auth@{client}", "refused keys")
        try:
            owner, credential = resolve_owner(
                self.store, self.settings, self.signer, headers, query, allow_token=allow_token
            )
        except UnauthorizedError:
            self.auth_failures.count(f"auth@{client}")
            raise
        rate_key = owner if credential else f"{owner}@{client}"
        self.limiter.check(rate_key)
        return owner, rate_key

    def queue_ok(self) -> bool:
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            return True
        except Exception:  # health check reports, never raises
            logger.warning("Queue unreachable", exc_info=True)
            return False


# The three getters below are coroutines although they never wait: FastAPI runs a plain
# function dependency in its thread pool, and each hop there and back is two thread wake-ups,
# which on a loaded machine are two waits for a core (issue 29: the status tail).
async def get_services(request: Request) -> Services:
    return _services(request)


async def get_store(request: Request) -> Store:
    return _services(request).store


async def get_settings(request: Request) -> Settings:
    return _services(request).settings


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def authenticate(request: Request) -> str:
    """Authenticate the request and apply its rate limit; the owner id it acts as.

    Raises:
        UnauthorizedError: a key is required but missing, or the key is unknown or revoked.
        RateLimitedError: the owner (or, without a key, the client address) is over its limit.
    """
    admitted: str | None = getattr(request.state, "owner", None)
    if admitted is not None:  # a request with a body, admitted before it was read
        return admitted
    client = request.client.host if request.client else "unknown"
    read = request.method in ("GET", "HEAD")
    owner, rate_key = _services(request).admit(
        request.headers, request.query_params, client, allow_token=read
    )
    request.state.rate_key = rate_key
    return owner


def charge(request: Request, requests: int, what: str) -> None:
    """Count ``requests`` more against the rate limit of the request's owner (a batch).

    Raises:
        RateLimitedError: the owner's allowance does not cover them.
    """
    if requests > 0:
        _services(request).limiter.check(request.state.rate_key, cost=requests, what=what)


Svc = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Owner = Annotated[str, Depends(authenticate)]
