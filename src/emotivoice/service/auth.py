"""API keys, short-lived signed tokens and per-key rate limits.

Keys are optional: with ``require_api_key`` off, requests without a key act as the shared owner
``anonymous``; a request that does carry a key always acts as that key, and an unknown or revoked
key is refused either way. Data is owned by the key that created it.

A key travels in a header (``X-API-Key`` or ``Authorization: Bearer``). Where a browser cannot
set a header (``<audio>``, ``<img>``, download links, the WebSocket) the web UI asks
``POST /tokens`` for a short-lived token signed by the server and puts it in the URL as
``?token=``; a token is accepted only for reads and live streams, and dies with its key. The
old ``?api_key=`` query parameter still works but is redacted from the access log.

Rate limits use the maintained `limits <https://limits.readthedocs.io>`_ library: counted in
Redis when the deployment has Redis (every API process shares the counts), in this process'
memory for the embedded default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from limits import RateLimitItemPerMinute
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from emotivoice.errors import InvalidConfigError
from emotivoice.service.errors import RateLimitedError, UnauthorizedError
from emotivoice.service.settings import Settings
from emotivoice.service.storage import Store

__all__ = [
    "ANONYMOUS",
    "RateLimiter",
    "TokenSigner",
    "key_from_headers",
    "limiter_storage_url",
    "owner_for_key",
    "resolve_owner",
]

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
_TOKEN_SECRET_FILE = "token-secret"


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


class TokenSigner:
    """Short-lived tokens that stand for an owner in URLs (HMAC-SHA256, no server state).

    The signing key is ``settings.token_secret``, or a random key created once in the data
    directory (readable by its owner only) so that every process of one machine agrees.
    """

    def __init__(self, settings: Settings) -> None:
        secret = settings.token_secret.encode("utf-8") or _local_secret(settings.home)
        self._secret = secret
        self.ttl_s = settings.token_ttl_s

    def issue(self, owner: str, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + self.ttl_s)
        payload = base64.urlsafe_b64encode(f"{owner}:{expires}".encode()).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def verify(self, token: str, now: float | None = None) -> str | None:
        """The owner a valid, unexpired token stands for, else ``None``."""
        payload, _, signature = token.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
            owner, _, expires = decoded.rpartition(":")
            if int(expires) < (now if now is not None else time.time()):
                return None
        except ValueError:
            return None
        return owner or None

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()


def _local_secret(home: Path) -> bytes:
    path = home / _TOKEN_SECRET_FILE
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def resolve_owner(
    store: Store,
    settings: Settings,
    signer: TokenSigner,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    allow_token: bool,
) -> tuple[str, bool]:
    """The owner a request acts as and whether it showed a credential (key or token).

    Raises:
        UnauthorizedError: a key is required but missing, the key is unknown or revoked, or the
            token is invalid, expired or not accepted here.
    """
    key = key_from_headers(headers, query)
    token = query.get("token")
    if token and not key:
        if not allow_token:
            raise UnauthorizedError("A token is accepted only to read; send the API key instead.")
        owner = signer.verify(token)
        if owner is None:
            raise UnauthorizedError("The token is invalid or has expired; ask for a new one.")
        if owner != ANONYMOUS and not store.key_active(owner):
            raise UnauthorizedError("The API key of this token has been revoked.")
        return owner, True
    return owner_for_key(store, settings, key), bool(key)


def limiter_storage_url(settings: Settings) -> str:
    """Where limits are counted: the setting, else the Redis broker, else process memory."""
    if settings.rate_limit_storage_url:
        return settings.rate_limit_storage_url
    broker = settings.broker_url or ""
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return "memory://"


class RateLimiter:
    """Requests per minute for each owner (or client address), over a moving window.

    Counted in the storage of :func:`limiter_storage_url`: Redis when the deployment has it, so
    that several API processes behind a proxy share one count; this process' memory otherwise.
    """

    def __init__(self, per_minute: int, storage: Storage | str = "memory://") -> None:
        self.per_minute = per_minute
        if isinstance(storage, str):
            made = storage_from_string(storage)
            if not isinstance(made, Storage):  # an asyncio storage URL (async+redis://...)
                raise InvalidConfigError(f"Rate limit storage {storage!r} is not a sync storage.")
            storage = made
        self.storage: Storage = storage
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._item = RateLimitItemPerMinute(max(per_minute, 1), namespace="EMOTIVOICE")

    def check(self, who: str, cost: int = 1, what: str = "requests") -> None:
        """Take ``cost`` requests from ``who``'s allowance.

        Raises:
            RateLimitedError: the allowance is spent; ``retry_after`` says when there is room.
        """
        if self.per_minute <= 0:
            return
        if cost > self.per_minute:
            raise RateLimitedError(
                f"Too many {what} at once: the limit is {self.per_minute} a minute.",
                retry_after=60.0,
            )
        if self._limiter.hit(self._item, who, cost=cost):
            return
        stats = self._limiter.get_window_stats(self._item, who)
        raise RateLimitedError(
            f"Too many {what}: the limit is {self.per_minute} a minute.",
            retry_after=max(1.0, stats.reset_time - time.time()),
        )

    def check_spent(self, who: str, what: str = "requests") -> None:
        """Raise if ``who`` has no allowance left, without taking any (see :meth:`count`).

        Raises:
            RateLimitedError: ``who`` spent the allowance of the current window.
        """
        if self.per_minute <= 0 or self._limiter.test(self._item, who):
            return
        stats = self._limiter.get_window_stats(self._item, who)
        raise RateLimitedError(
            f"Too many {what} from this address: the limit is {self.per_minute} a minute.",
            retry_after=max(1.0, stats.reset_time - time.time()),
        )

    def count(self, who: str) -> None:
        """Count one event (a refused key) against ``who``."""
        if self.per_minute > 0:
            self._limiter.hit(self._item, who)
