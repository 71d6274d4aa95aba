"""Secrets out of the logs: the access log never shows an ``api_key`` or ``token`` parameter.

Clients should send keys in headers, but a key put in a URL (``?api_key=``, as older clients
did) or a UI token (``?token=``) would otherwise be written to the access log in full.
"""

from __future__ import annotations

import logging
import re

__all__ = ["ACCESS_LOGGER", "RedactSecrets", "redact", "redact_access_log"]

ACCESS_LOGGER = "uvicorn.access"
# uvicorn logs WebSocket handshakes ("WebSocket /api/v1/stream?token=..." [accepted]) here
_SERVER_LOGGER = "uvicorn.error"
_SECRET_PARAM = re.compile(r"(?i)([?&](?:api_key|token)=)[^&#\s\"]*")


def redact(text: str) -> str:
    """``text`` with the value of every ``api_key``/``token`` query parameter replaced."""
    return _SECRET_PARAM.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """Redacts secret query parameters in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log() -> None:
    """Install :class:`RedactSecrets` on the server's access and WebSocket loggers (once)."""
    for name in (ACCESS_LOGGER, _SERVER_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
