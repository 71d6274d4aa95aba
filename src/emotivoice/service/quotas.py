"""Per-key quotas that are not request rates: open live streams (``max_streams``).

Queued and running analyses and stored bytes are counted in the database (shared by every API
process already). Open streams are counted here: in Redis when the deployment has it (one count
for all API processes behind a proxy), else in this process. In Redis each stream holds a slot
with an expiry that it refreshes while it runs, so a crashed API process cannot leak slots.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from emotivoice.service.errors import QuotaExceededError

__all__ = ["StreamSlots"]

SLOT_TTL_S = 30.0  # a stream refreshes its slot well within this


class StreamSlots:
    """Open live streams per owner, at most ``limit`` each (0 = no limit)."""

    def __init__(self, limit: int, storage_url: str) -> None:
        self.limit = limit
        self._redis: Any = None
        if storage_url.startswith(("redis://", "rediss://")):
            import redis

            self._redis = redis.Redis.from_url(storage_url)
        self._local: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def acquire(self, owner: str) -> str:
        """A slot for a new stream of ``owner``.

        Raises:
            QuotaExceededError: ``owner`` has ``limit`` streams open.
        """
        slot = uuid.uuid4().hex
        if self.limit <= 0:
            return slot
        if self._redis is not None:
            key, now = self._key(owner), time.time()
            pipe = self._redis.pipeline()
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {slot: now + SLOT_TTL_S})
            pipe.zcard(key)
            pipe.expire(key, int(SLOT_TTL_S * 2))
            count = pipe.execute()[2]
            if count > self.limit:
                self._redis.zrem(key, slot)
                raise self._full()
            return slot
        with self._lock:
            open_slots = self._local.setdefault(owner, set())
            if len(open_slots) >= self.limit:
                raise self._full()
            open_slots.add(slot)
        return slot

    def refresh(self, owner: str, slot: str) -> None:
        if self._redis is not None and self.limit > 0:
            self._redis.zadd(self._key(owner), {slot: time.time() + SLOT_TTL_S})

    def release(self, owner: str, slot: str) -> None:
        if self.limit <= 0:
            return
        if self._redis is not None:
            self._redis.zrem(self._key(owner), slot)
            return
        with self._lock:
            self._local.get(owner, set()).discard(slot)

    def _full(self) -> QuotaExceededError:
        return QuotaExceededError(
            f"This key has {self.limit} live stream(s) open, its limit; stop one first.",
            retry_after=5.0,
        )

    @staticmethod
    def _key(owner: str) -> str:
        return f"emotivoice:streams:{owner}"
