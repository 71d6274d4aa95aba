"""API keys and per-key rate limits.

Keys are optional: with ``require_api_key`` off, requests without a key act as the shared owner
``anonymous``; a request that does carry a key always acts as that key, and an unknown or revoked
key is refused either way. Data is owned by the key that created it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from emotivoice.service.errors import RateLimitedError, UnauthorizedError
from emotivoice.service.settings import Settings
from emotivoice.service.storage import Store

__all__ = ["ANONYMOUS", "RateLimiter", "key_from_headers", "owner_for_key"]

ANONYMOUS = "anonymous"
_WINDOW_S = 60.0


def key_from_headers(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The API key of a request: ``X-API-Key``, ``Authorization: Bearer`` or ``?api_key=``."""
    key = headers.get("x-api-key")
    if not key:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
    return key or query.get("api_key") or None


def owner_for_key(store: Store, settings: Settings, key: str | None) -> str:
    """The owner id a request acts as.

    Raises:
        UnauthorizedError: a key is required but missing, or the key is unknown or revoked.
    """
    if not key:
        if settings.require_api_key:
            raise UnauthorizedError(
                "This server requires an API key: send it in the X-API-Key header."
            )
        return ANONYMOUS
    owner = store.key_owner(key)
    if owner is None:
        raise UnauthorizedError("The API key is unknown or has been revoked.")
    return owner


class RateLimiter:
    """A token bucket per owner: ``per_minute`` requests a minute, bursts up to that many.

    State lives in the API process; with several API servers behind a balancer each one applies
    the limit on its own.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, who: str) -> None:
        """Take one token for ``who``.

        Raises:
            RateLimitedError: the bucket is empty; ``retry_after`` says when a token is back.
        """
        if self.per_minute <= 0:
            return
        rate = self.per_minute / _WINDOW_S
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[who] = (tokens, now)
                raise RateLimitedError(
                    f"Too many requests: the limit is {self.per_minute} a minute.",
                    retry_after=(1.0 - tokens) / rate,
                )
            self._buckets[who] = (tokens - 1.0, now)
