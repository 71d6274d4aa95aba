"""``/stream``: live analysis over a WebSocket (mounted under ``/api/v1``).

Protocol: the client sends a JSON ``start`` message, then binary audio frames of any size, then
``{"type": "stop"}``. The server answers with JSON events (``vad``, ``partial``, ``segment``,
``stats``, ``error``, ``saved``; see :mod:`emotivoice.streaming.events`) and closes with a code
that says why. Each connection owns its
:class:`~emotivoice.streaming.analyzer.StreamingAnalyzer`; the models are the app's shared
Analyzer. Model calls run in worker threads so the event loop stays free.

Reads from ``websocket.app.state``: ``settings`` (optional limits, see :class:`StreamLimits`),
``store`` (``create_upload(owner, data, filename)`` keeps the recording) and ``analyzer()`` (the
shared loaded Analyzer).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
from collections.abc import MutableMapping
from typing import Any, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import (
    EmotiVoiceError,
    StreamFrameTooLargeError,
    StreamProtocolError,
    StreamTooLongError,
    UnsupportedFormatError,
)
from emotivoice.service.auth import ANONYMOUS, key_from_headers, owner_for_key
from emotivoice.service.errors import StreamIdleError, UnauthorizedError, api_error
from emotivoice.service.session import CLOSE_CODES, SessionRejected, SocketSession, StreamLimits
from emotivoice.streaming.analyzer import StreamingAnalyzer, StreamOptions
from emotivoice.streaming.decoder import ENCODINGS
from emotivoice.streaming.events import ErrorEvent, SavedEvent, StreamEvent

__all__ = [
    "CLOSE_CODES",
    "StartMessage",
    "StreamLimits",
    "admit_socket",
    "encode_opus",
    "resolve_wake_word",
    "router",
]

StartT = TypeVar("StartT", bound=BaseModel)
logger = logging.getLogger(__name__)

router = APIRouter()

_STOP = object()
_THROTTLE_NOTICE_S = 2.0  # at most one "throttled" notice per this many seconds
_JOB_ID = re.compile(r"[0-9a-f]{32}")  # a wake-word job id: the only kind of trained model named


class StartMessage(BaseModel):
    """The first message of a stream."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    encoding: str = "pcm_s16le"
    sample_rate: int = Field(default=SAMPLE_RATE, gt=0, le=192000)
    channels: int = Field(default=1, ge=1, le=2)
    language: str | None = None
    partials: bool = True
    partial_interval_s: float = Field(default=0.5, gt=0, le=10)
    endpoint_silence_ms: int = Field(default=300, ge=0, le=10000)
    save: bool = True
    final_window: Literal["full", "fit"] = "fit"
    speculative: bool = True
    final_pad_ms: int | None = Field(default=100, ge=0, le=2000)
    final_beam_size: int | None = Field(default=2, ge=1, le=16)
    early_endpoint: bool = False
    speakers: bool = False
    wake_word: str | None = None
    wake_threshold: float | None = Field(default=None, gt=0, lt=1)


def _bytes_per_second(start: StartMessage) -> float:
    if start.encoding == "pcm_s16le":
        return float(start.sample_rate * start.channels * 2)
    return 16000.0  # Opus at its highest common bitrate (128 kbit/s)


class _Session(SocketSession):
    """One connection: handshake, receive loop, analysis loop, recording, cleanup."""

    name = "Stream"
    failure_message = "The server failed while analysing the stream."

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        self.store: Any = getattr(websocket.app.state, "store", None)
        self.worker: asyncio.Task[None] | None = None
        self.stream: StreamingAnalyzer | None = None
        self.queue: asyncio.Queue[bytes | object] = asyncio.Queue()
        self.queued_bytes = 0
        self.bytes_per_s = 32000.0
        self.drained = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.throttle_notice = -_THROTTLE_NOTICE_S
        self.keyed = False
        self.last_message = time.monotonic()
        self.intake_started: float | None = None
        self.received_s = 0.0
        self.stopping = False

    async def _serve(self) -> None:
        start = await self._handshake()
        if start is None:
            return
        self.worker = worker = asyncio.create_task(self._analyse(start.save))
        watchdog = asyncio.create_task(self._watch())
        try:
            await self._receive(worker)
            await worker
        finally:
            watchdog.cancel()

    async def _cleanup(self) -> None:
        worker = self.worker
        if worker is not None and not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker
        if self.stream is not None:
            self.stream.close()

    async def _handshake(self) -> StartMessage | None:
        await self._authenticate()
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.limits.stream_start_timeout_s)
        except TimeoutError as e:
            error = StreamProtocolError(
                f"No start message within {self.limits.stream_start_timeout_s:g} s."
            )
            raise SessionRejected(error, CLOSE_CODES["policy"]) from e
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        if message.get("bytes") is not None:
            error = StreamProtocolError("Audio arrived before the start message; send start first.")
            raise SessionRejected(error, CLOSE_CODES["policy"])
        try:
            start = parse_start_message(message.get("text") or "", StartMessage)
        except StreamProtocolError as e:
            raise SessionRejected(e, CLOSE_CODES["invalid_data"]) from e
        wake_word = await run_in_threadpool(self._wake_word, start.wake_word)
        analyzer = await run_in_threadpool(self.ws.app.state.analyzer)
        options = StreamOptions(
            encoding=start.encoding,
            sample_rate=start.sample_rate,
            channels=start.channels,
            language=start.language,
            partials=start.partials,
            partial_interval_s=start.partial_interval_s,
            endpoint_silence_ms=start.endpoint_silence_ms,
            max_duration_s=self.limits.max_stream_seconds,
            keep_recording=start.save,
            final_window=start.final_window,
            speculative=start.speculative,
            final_pad_ms=start.final_pad_ms,
            final_beam_size=start.final_beam_size,
            early_endpoint=start.early_endpoint,
            speakers=start.speakers,
            wake_word=wake_word,
            wake_threshold=start.wake_threshold,
        )
        self.stream = await run_in_threadpool(StreamingAnalyzer, analyzer, options)
        self.bytes_per_s = _bytes_per_second(start)
        return start

    def _wake_word(self, name: str | None) -> str | None:
        try:
            return resolve_wake_word(self.store, self.owner, name)
        except StreamProtocolError as e:
            raise SessionRejected(e, CLOSE_CODES["invalid_data"]) from e

    async def _authenticate(self) -> None:
        self.owner, self.slots, self.slot = await admit_socket(self.ws)
        self.keyed = self.owner != ANONYMOUS and self.slots is not None

    async def _receive(self, worker: asyncio.Task[None]) -> None:
        """Read frames into the queue until ``stop``; slow the sender when analysis lags."""
        max_backlog = self.limits.stream_max_backlog_s * self.bytes_per_s
        while not worker.done():
            if self.queued_bytes > max_backlog:
                # Not reading lets the socket's buffers fill, which slows the sender (TCP flow
                # control); the client is told so once per episode.
                if time.monotonic() - self.throttle_notice >= _THROTTLE_NOTICE_S:
                    self.throttle_notice = time.monotonic()
                    await self._send(self._stats(throttled=True))
                self.drained.clear()
                while self.queued_bytes > max_backlog / 2 and not worker.done():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.drained.wait(), 0.5)
                    self.drained.clear()
                    self.last_message = time.monotonic()  # the server is behind, not the client
                continue
            message = await next_message(self.ws, worker, self.limits.stream_max_frame_bytes)
            if message is None:
                return
            self.last_message = time.monotonic()
            data = message.get("bytes")
            if data is not None:
                self.queued_bytes += len(data)
                self.queue.put_nowait(data)
                await self._pace(len(data))
            elif message_type(message.get("text") or "") == "stop":
                self.stopping = True  # finishing may take a while: no longer idle
                self.queue.put_nowait(_STOP)
                return
            else:
                await self._send(
                    ErrorEvent(
                        code="PROTOCOL_ERROR",
                        message='Unexpected text message; only {"type": "stop"} may follow start.',
                    )
                )

    async def _pace(self, size: int) -> None:
        """Hold reading while the sender is ahead of ``stream_max_speed`` x real time.

        After a burst of ``stream_burst_s`` seconds, audio is taken no faster than the speed
        limit: a stream is live audio, not a way to upload hours of it in seconds.
        """
        now = time.monotonic()
        if self.intake_started is None:
            self.intake_started = now
        self.received_s += size / self.bytes_per_s
        ahead = self.received_s - self.limits.stream_burst_s
        due = self.intake_started + ahead / self.limits.stream_max_speed
        if due > now:
            if now - self.throttle_notice >= _THROTTLE_NOTICE_S:
                self.throttle_notice = now
                await self._send(self._stats(throttled=True))
            await asyncio.sleep(due - now)
            self.last_message = time.monotonic()

    async def _watch(self) -> None:
        """End the session when it idles too long or its key is revoked; keep its slot."""
        period = min(self.limits.stream_check_interval_s, self.limits.stream_idle_timeout_s / 2)
        last_key_check = time.monotonic()
        while not self.closed:
            await asyncio.sleep(period)
            now = time.monotonic()
            if not self.stopping and now - self.last_message > self.limits.stream_idle_timeout_s:
                idle = StreamIdleError(
                    f"Nothing was received for {self.limits.stream_idle_timeout_s:g} s; the "
                    "stream is closed. Send audio continuously, or stop and start again."
                )
                await self._fail(idle, CLOSE_CODES["policy"])
                return
            if now - last_key_check >= self.limits.stream_check_interval_s:
                last_key_check = now
                if self.keyed and not await run_in_threadpool(self.store.key_active, self.owner):
                    revoked = UnauthorizedError("The API key of this stream has been revoked.")
                    await self._fail(revoked, CLOSE_CODES["policy"])
                    return
                if self.slot is not None and self.slots is not None:
                    await run_in_threadpool(self.slots.refresh, self.owner, self.slot)

    async def _analyse(self, save: bool) -> None:
        stream = self.stream
        if stream is None:
            return
        last_stats = time.monotonic()
        while True:
            item = await self.queue.get()
            if item is _STOP:
                break
            if not isinstance(item, bytes):
                continue
            self.queued_bytes -= len(item)
            self.drained.set()
            try:
                events = await run_in_threadpool(
                    functools.partial(stream.feed, item, self.queue.empty(), ending=self.stopping)
                )
            except StreamTooLongError as e:
                await self._send(ErrorEvent(code=api_error(e)[1], message=e.message))
                await self._finish(save)
                await self._close(CLOSE_CODES["policy"])
                return
            for event in events:
                await self._send(event)
            if time.monotonic() - last_stats >= self.limits.stream_stats_interval_s:
                last_stats = time.monotonic()
                await self._send(self._stats())
        await self._finish(save)
        await self._close(CLOSE_CODES["normal"])

    async def _finish(self, save: bool) -> None:
        stream = self.stream
        if stream is None:
            return
        for event in await run_in_threadpool(stream.finish):
            await self._send(event)
        if save and stream.recording().size and self.store is not None:
            data, extension = await run_in_threadpool(self._recording_file, stream)
            name = f"stream-{time.strftime('%Y%m%d-%H%M%S')}.{extension}"
            record = await run_in_threadpool(self.store.create_upload, self.owner, data, name)
            saved = SavedEvent(
                upload_id=str(record.id), duration=stream.duration, filename=record.filename
            )
            await self._send(saved)
        await self._send(self._stats())

    def _recording_file(self, stream: StreamingAnalyzer) -> tuple[bytes, str]:
        """The recording as WAV when that fits the upload limit, else as Ogg/Opus (a long
        stream, up to hours at 32 kbit/s, fits where its WAV would not)."""
        wav = stream.recording_wav()
        limit = getattr(self.settings, "max_upload_bytes", None)
        if limit is None or len(wav) <= limit:
            return wav, "wav"
        return encode_opus(stream.recording()), "opus"

    def _stats(self, throttled: bool = False) -> StreamEvent:
        backlog = self.queued_bytes / self.bytes_per_s
        if self.stream is None:
            return ErrorEvent(code="PROTOCOL_ERROR", message="The stream has not started.")
        return self.stream.stats(backlog_s=backlog, throttled=throttled)

    async def _send(self, event: StreamEvent) -> None:
        if self.closed:
            return
        async with self.send_lock:
            try:
                await self.ws.send_text(json.dumps(event.to_dict(), ensure_ascii=False))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True  # the client is gone; the receive loop ends the session

    async def _fail(self, error: EmotiVoiceError, close_code: int, code: str | None = None) -> None:
        event = ErrorEvent(code=code or api_error(error)[1], message=error.message)
        with contextlib.suppress(Exception):
            await self._send(event)
        await self._close(close_code)


_OPUS_BITRATE = 32000  # speech at 16 kHz: transparent enough for re-analysis, 14 MB an hour


def encode_opus(samples: np.ndarray) -> bytes:
    """16 kHz mono 16-bit ``samples`` as an Ogg/Opus file."""
    from emotivoice.audio import encode_audio

    return encode_audio(samples, "ogg", "libopus", bit_rate=_OPUS_BITRATE)


async def next_message(
    ws: WebSocket, other: asyncio.Future[Any], max_frame_bytes: int
) -> MutableMapping[str, Any] | None:
    """The client's next message, or ``None`` when ``other`` (the session's work) ends first.

    Raises:
        WebSocketDisconnect: the client went away.
        StreamFrameTooLargeError: a binary frame over ``max_frame_bytes``.
    """
    receiving = asyncio.ensure_future(ws.receive())
    await asyncio.wait({receiving, other}, return_when=asyncio.FIRST_COMPLETED)
    if not receiving.done():
        receiving.cancel()
        return None
    message: MutableMapping[str, Any] = receiving.result()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    data = message.get("bytes")
    if data is not None and len(data) > max_frame_bytes:
        raise StreamFrameTooLargeError(
            f"An audio frame of {len(data)} bytes is larger than the maximum of "
            f"{max_frame_bytes} bytes; send smaller frames."
        )
    return message


def message_type(text: str) -> str | None:
    """The ``type`` of a client's JSON text message (``None``: not a JSON object)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    return data.get("type") if isinstance(data, dict) else None


def parse_start_message(text: str, model: type[StartT]) -> StartT:
    """A socket's first message, checked as a ``{"type": "start", ...}`` object of ``model``.

    Raises:
        StreamProtocolError: not JSON, not a start message, or an invalid field.
        UnsupportedFormatError: an unknown encoding.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise StreamProtocolError(f"The start message is not JSON: {e.msg}.") from e
    if not isinstance(data, dict) or data.get("type") != "start":
        raise StreamProtocolError('The first message must be {"type": "start", ...}.')
    if "encoding" in data and data["encoding"] not in ENCODINGS:
        raise UnsupportedFormatError(
            f"Unknown encoding {data['encoding']!r}; supported encodings = {sorted(ENCODINGS)}"
        )
    try:
        start = model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise StreamProtocolError(f"Invalid start message: {problems}.") from e
    return start


def resolve_wake_word(store: Any, owner: str, name: str | None) -> str | None:
    """The wake-word model a start message's ``wake_word`` names (``/stream`` and
    ``/assistant`` alike): a shipped model's name, or the id of a completed job of the
    wake-word studio that ``owner`` ran (its ONNX file's path); never a path on the server.
    Blocking (a database read): call it in a worker thread.

    Raises:
        StreamProtocolError: an unknown name, or a job that is not ``owner``'s, not
            completed or has no model.
    """
    if name is None:
        return None
    from emotivoice.wakeword.detector import available_models

    if name in available_models():
        return name
    trained = None
    if hasattr(store, "wakeword_model") and _JOB_ID.fullmatch(name):
        trained = store.wakeword_model(owner, name)
    if trained is None:
        raise StreamProtocolError(
            f"Unknown wake_word {name!r}; wake words = {available_models()}, or the id of "
            "a completed wake-word job of this key."
        )
    return str(trained)


async def admit_socket(websocket: WebSocket) -> tuple[str, Any, str | None]:
    """Authenticate a WebSocket (key header, ``?key=`` or a media token) and take one of its
    owner's open-stream slots (``max_streams``): ``(owner, slots, slot)``; the caller releases
    the slot. An app without the service's shared parts (keys off) gives no slot.

    Raises:
        UnauthorizedError, RateLimitedError: the key is refused.
        QuotaExceededError: the owner has ``max_streams`` streams open.
    """
    state = websocket.app.state
    services = getattr(state, "services", None)
    if services is None:
        key = key_from_headers(websocket.headers, websocket.query_params)
        store: Any = getattr(state, "store", None)
        settings: Any = getattr(state, "settings", None)
        owner = owner_for_key(store, settings, key)
        return owner, None, None
    client = websocket.client.host if websocket.client else "unknown"
    owner, _ = await run_in_threadpool(
        services.admit, websocket.headers, websocket.query_params, client, allow_token=True
    )
    slot = await run_in_threadpool(services.streams.acquire, owner)
    return owner, services.streams, slot


@router.websocket("/stream")
async def stream_endpoint(websocket: WebSocket) -> None:
    """Live analysis of one audio stream; see the module documentation for the protocol."""
    await _Session(websocket).run()
