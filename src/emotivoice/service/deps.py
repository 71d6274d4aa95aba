"""What the routes share, and the FastAPI dependencies that hand it to them.

One :class:`Services` per app (``app.state.services``): settings, storage, job queue, rate
limiter, janitor and the lazily loaded models. Routes ask for the parts they need by type:

* :data:`Svc`, :data:`StoreDep`, :data:`SettingsDep`: the app's services, store or settings;
* :data:`Owner`: authenticates the request (API key) and applies its rate limit; the owner id
  the request acts as (see :mod:`emotivoice.service.auth`).
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import Depends, Request

from emotivoice.service.auth import RateLimiter, key_from_headers, owner_for_key
from emotivoice.service.jobs import Janitor, make_celery
from emotivoice.service.settings import Settings
from emotivoice.service.storage import Store

__all__ = ["Owner", "Services", "SettingsDep", "StoreDep", "Svc", "get_services"]

logger = logging.getLogger(__name__)


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


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_store(request: Request) -> Store:
    return get_services(request).store


def get_settings(request: Request) -> Settings:
    return get_services(request).settings


def authenticate(request: Request) -> str:
    """Authenticate the request and apply its rate limit; the owner id it acts as.

    Raises:
        UnauthorizedError: a key is required but missing, or the key is unknown or revoked.
        RateLimitedError: the owner (or, without a key, the client address) is over its limit.
    """
    services = get_services(request)
    key = key_from_headers(request.headers, request.query_params)
    owner = owner_for_key(services.store, services.settings, key)
    client = request.client.host if request.client else "unknown"
    services.limiter.check(owner if key else f"{owner}@{client}")
    return owner


Svc = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Owner = Annotated[str, Depends(authenticate)]
