"""What the service's WebSocket sessions share (``/stream`` and ``/assistant``): the close codes,
the exception that ends a session with a given code, and :class:`SocketSession`, whose
:meth:`~SocketSession.run` accepts the socket, runs the route's own work and turns whatever ends
it into an ``error`` event and a close code, then frees the session's open-stream slot.

Each route keeps its own protocol: how it sends an error (:meth:`SocketSession._fail`), what it
cleans up (:meth:`SocketSession._cleanup`) and which close code an engine error gets
(:meth:`SocketSession._close_code`).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketState

from emotivoice.errors import (
    AudioDecodeError,
    EmotiVoiceError,
    InvalidConfigError,
    StreamError,
    StreamFrameTooLargeError,
    UnsupportedFormatError,
)
from emotivoice.service.errors import QuotaExceededError, UnauthorizedError

__all__ = ["CLOSE_CODES", "SessionRejected", "SocketSession", "StreamLimits", "close_code"]

#: WebSocket close codes (RFC 6455) the server uses, by reason
CLOSE_CODES = {
    "normal": 1000,
    "unsupported_format": 1003,  # unknown encoding
    "invalid_data": 1007,  # malformed start message, undecodable audio
    "policy": 1008,  # unauthorized, audio before start, session too long
    "frame_too_large": 1009,
    "internal_error": 1011,
}


class SessionRejected(Exception):
    """Ends a session with ``error`` sent as an event and ``close_code``."""

    def __init__(self, error: EmotiVoiceError, close_code: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.close_code = close_code


@dataclass(frozen=True)
class StreamLimits:
    """Limits of one stream, read from the service settings when they define them.

    Attributes:
        max_stream_seconds: longest session (audio seconds).
        stream_max_frame_bytes: largest binary frame accepted.
        stream_max_backlog_s: audio received but not yet analysed before the sender is slowed down.
        stream_start_timeout_s: how long the server waits for the ``start`` message.
        stream_stats_interval_s: seconds between ``stats`` events.
        stream_idle_timeout_s: a session that sends nothing this long is closed (1008).
        stream_max_speed: fastest intake, in multiples of real time, after the burst; a faster
            sender is not read from (TCP slows it down).
        stream_burst_s: audio seconds accepted at once before the speed limit applies.
        stream_check_interval_s: how often an open session checks that its key is still valid.
    """

    max_stream_seconds: float = 3600.0
    stream_max_frame_bytes: int = 1 << 20
    stream_max_backlog_s: float = 10.0
    stream_start_timeout_s: float = 10.0
    stream_stats_interval_s: float = 5.0
    stream_idle_timeout_s: float = 30.0
    stream_max_speed: float = 4.0
    stream_burst_s: float = 10.0
    stream_check_interval_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: Any) -> StreamLimits:
        """Take each limit from ``settings`` where it has an attribute of that name."""
        defaults = cls()
        return cls(
            **{
                name: getattr(settings, name, getattr(defaults, name))
                for name in cls.__dataclass_fields__
            }
        )


def close_code(error: EmotiVoiceError) -> int:
    """The close code of a session ended by ``error``."""
    if isinstance(error, UnsupportedFormatError):
        return CLOSE_CODES["unsupported_format"]
    if isinstance(error, StreamFrameTooLargeError):
        return CLOSE_CODES["frame_too_large"]
    if isinstance(error, AudioDecodeError | InvalidConfigError):
        return CLOSE_CODES["invalid_data"]
    if isinstance(error, StreamError | UnauthorizedError | QuotaExceededError):
        return CLOSE_CODES["policy"]
    return CLOSE_CODES["internal_error"]


class SocketSession:
    """One WebSocket connection of a route; a subclass does the route's work in :meth:`_serve`.

    Attributes:
        ws: the socket.
        settings: the app's settings (``None`` in a bare app).
        limits: the stream limits read from them.
        owner, slots, slot: who the session belongs to and the open-stream slot it holds
            (set by the subclass when it admits the socket; the slot is released at the end).
        closed: the socket is closed (or the client is gone): nothing more is sent.
    """

    #: what the logs call the session
    name: ClassVar[str] = "Session"
    #: the message of an ``INTERNAL_ERROR`` event: an unexpected failure
    failure_message: ClassVar[str] = "The server failed."

    def __init__(self, websocket: WebSocket) -> None:
        self.ws = websocket
        self.settings: Any = getattr(websocket.app.state, "settings", None)
        self.limits = StreamLimits.from_settings(self.settings)
        self.owner = "anonymous"
        self.slots: Any = None
        self.slot: str | None = None
        self.closed = False

    @property
    def _logger(self) -> logging.Logger:
        return logging.getLogger(type(self).__module__)

    async def run(self) -> None:
        """Accept, serve, and end with the right event and close code whatever happens."""
        await self.ws.accept()
        try:
            await self._serve()
        except WebSocketDisconnect:
            self._logger.info("%s client went away", self.name)
        except SessionRejected as e:
            await self._fail(e.error, e.close_code)
        except EmotiVoiceError as e:
            await self._fail(e, self._close_code(e))
        except Exception:
            self._logger.exception("%s failed", self.name)
            await self._fail(
                EmotiVoiceError(self.failure_message),
                CLOSE_CODES["internal_error"],
                code="INTERNAL_ERROR",
            )
        finally:
            await self._cleanup()
            if self.slot is not None and self.slots is not None:
                await run_in_threadpool(self.slots.release, self.owner, self.slot)
            await self._close(CLOSE_CODES["normal"])

    async def _serve(self) -> None:
        """The route's work, from the accepted socket to its normal end."""
        raise NotImplementedError

    async def _cleanup(self) -> None:
        """Stop what the session started (before its slot is released and the socket closed)."""

    def _close_code(self, error: EmotiVoiceError) -> int:
        return close_code(error)

    async def _fail(self, error: EmotiVoiceError, close_code: int, code: str | None = None) -> None:
        """Send ``error`` as the route's ``error`` event, then close with ``close_code``."""
        raise NotImplementedError

    async def _close(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        if self.ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code)
