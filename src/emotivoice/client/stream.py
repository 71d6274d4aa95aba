"""A Python client of the live-analysis WebSocket (``/api/v1/stream``).

>>> import asyncio
>>> from emotivoice.client.stream import StreamClient
>>> session = asyncio.run(StreamClient("ws://127.0.0.1:8000/api/v1/stream").stream_file(
...     "talk.wav", realtime=True, on_event=print))  # doctest: +SKIP
>>> session.text  # doctest: +SKIP

Needs the ``websockets`` package (``pip install emotivoice[service]``); ``--mic`` input needs
``sounddevice`` and a PortAudio device (``pip install emotivoice[mic]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio, to_pcm16
from emotivoice.errors import InvalidConfigError, MicrophoneUnavailableError
from emotivoice.extras import import_extra

__all__ = ["DEFAULT_URL", "MicrophoneUnavailableError", "StreamClient", "StreamSession"]

logger = logging.getLogger(__name__)

DEFAULT_URL = "ws://127.0.0.1:8000/api/v1/stream"
DEFAULT_FRAME_MS = 100
_MAX_MESSAGE_BYTES = 16 << 20

#: ``on_event(event)``: called with each event dict as it arrives
EventCallback = Callable[[dict[str, Any]], None]


@dataclass
class StreamSession:
    """What one streaming session produced.

    Attributes:
        events: every event in arrival order.
        received_at: ``time.monotonic()`` at each event's arrival.
        sent: ``(audio seconds sent so far, time.monotonic())`` after each frame.
        close_code: the server's WebSocket close code; ``close_reason`` its reason.
        started_at: ``time.monotonic()`` when audio began to flow (second 0 of the stream).
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    sent: list[tuple[float, float]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    started_at: float = 0.0

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The events of one type (``segment``, ``partial``, ``vad``, ...)."""
        return [e for e in self.events if e.get("type") == kind]

    @property
    def segments(self) -> list[dict[str, Any]]:
        """The final segments."""
        return self.of_type("segment")

    @property
    def text(self) -> str:
        """The final transcript."""
        return " ".join(s["text"] for s in self.segments if s.get("text"))

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The error events."""
        return self.of_type("error")

    @property
    def upload_id(self) -> str | None:
        """The id of the stored recording (from the ``saved`` event)."""
        saved = self.of_type("saved")
        return str(saved[-1]["upload_id"]) if saved else None

    def sent_time(self, audio_s: float) -> float | None:
        """When the frame holding audio second ``audio_s`` had been sent (monotonic clock)."""
        for position, at in self.sent:
            if position >= audio_s:
                return at
        return None


def pcm_frames(samples: np.ndarray, frame_ms: int = DEFAULT_FRAME_MS) -> list[bytes]:
    """16 kHz float samples as little-endian 16-bit frames of ``frame_ms`` milliseconds."""
    if frame_ms <= 0:
        raise InvalidConfigError("frame_ms must be a positive number of milliseconds.")
    pcm = to_pcm16(samples).tobytes()
    step = SAMPLE_RATE * frame_ms // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


class StreamClient:
    """Streams audio to an EmotiVoice server and collects its events.

    Args:
        url: the WebSocket URL of the stream endpoint.
        api_key: sent as ``X-API-Key`` when given.
    """

    def __init__(self, url: str = DEFAULT_URL, api_key: str | None = None) -> None:
        self.url = url
        self.api_key = api_key

    async def stream_file(
        self,
        path: str | Path,
        *,
        realtime: bool = False,
        frame_ms: int = DEFAULT_FRAME_MS,
        on_event: EventCallback | None = None,
        **start: Any,
    ) -> StreamSession:
        """Decode ``path`` (any format) and stream it as 16 kHz PCM.

        Args:
            realtime: pace the frames at the speed of speech (as a microphone would).
            frame_ms: frame length.
            on_event: called with each event as it arrives.
            **start: more fields of the start message (``language``, ``partials``, ...).
        """
        frames = pcm_frames(load_audio(path).samples, frame_ms)
        pace = frame_ms / 1000 if realtime else 0.0
        return await self.stream_frames(frames, pace_s=pace, on_event=on_event, **start)

    async def stream_frames(
        self,
        frames: Iterable[bytes],
        *,
        pace_s: float = 0.0,
        encoding: str = "pcm_s16le",
        sample_rate: int = SAMPLE_RATE,
        on_event: EventCallback | None = None,
        **start: Any,
    ) -> StreamSession:
        """Stream pre-cut frames, one every ``pace_s`` seconds (0: as fast as the server reads)."""

        async def paced() -> AsyncIterator[bytes]:
            began = time.monotonic()
            for i, frame in enumerate(frames):
                # like a microphone: a frame leaves once all of its audio has been "heard"
                delay = began + (i + 1) * pace_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield frame

        message = {"type": "start", "encoding": encoding, "sample_rate": sample_rate, **start}
        return await self.stream(paced(), message, on_event=on_event)

    async def stream_microphone(
        self,
        *,
        seconds: float | None = None,
        frame_ms: int = DEFAULT_FRAME_MS,
        device: int | str | None = None,
        on_event: EventCallback | None = None,
        **start: Any,
    ) -> StreamSession:
        """Stream the default (or given) microphone until ``seconds`` pass or the task is cancelled.

        Raises:
            MicrophoneUnavailableError: ``sounddevice``/PortAudio is missing or no input device.
        """
        sd = _sounddevice()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def captured(data: Any, frames: int, when: Any, status: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, bytes(data))

        try:
            mic = sd.RawInputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="int16",
                blocksize=SAMPLE_RATE * frame_ms // 1000,
                device=device,
                callback=captured,
            )
        except Exception as e:  # PortAudioError and ValueError for a missing device
            raise MicrophoneUnavailableError(f"Cannot open a microphone: {e}") from e

        async def frames() -> AsyncIterator[bytes]:
            deadline = None if seconds is None else time.monotonic() + seconds
            with mic:
                while deadline is None or time.monotonic() < deadline:
                    yield await queue.get()

        message = {"type": "start", "encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE, **start}
        return await self.stream(frames(), message, on_event=on_event)

    async def stream(
        self,
        frames: AsyncIterator[bytes],
        start: dict[str, Any],
        *,
        on_event: EventCallback | None = None,
    ) -> StreamSession:
        """Send ``start``, the frames and ``stop``; collect events until the server closes."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        session = StreamSession()
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        async with connect(self.url, additional_headers=headers, max_size=_MAX_MESSAGE_BYTES) as ws:
            await ws.send(json.dumps(start))

            async def send() -> None:
                position = 0.0
                session.started_at = time.monotonic()
                bytes_per_s = float(start.get("sample_rate", SAMPLE_RATE) * 2)
                try:
                    async for frame in frames:
                        await ws.send(frame)
                        position += len(frame) / bytes_per_s
                        session.sent.append((position, time.monotonic()))
                    await ws.send(json.dumps({"type": "stop"}))
                except ConnectionClosed:
                    pass  # the server ended the session; its events say why

            sender = asyncio.create_task(send())
            try:
                async for message in ws:
                    event = json.loads(message)
                    session.events.append(event)
                    session.received_at.append(time.monotonic())
                    if on_event is not None:
                        on_event(event)
            except ConnectionClosed:
                pass
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            session.close_code = ws.close_code
            session.close_reason = ws.close_reason or ""
        return session


def _sounddevice() -> Any:
    try:
        sounddevice = import_extra("sounddevice", "mic", "Microphone input")
    except OSError as e:  # the module loads PortAudio at import
        raise MicrophoneUnavailableError(
            f"Microphone input needs the PortAudio library ({e}); install it "
            "(Debian/Ubuntu: apt install libportaudio2) or stream a file with --file."
        ) from e
    try:
        sounddevice.query_devices(kind="input")
    except Exception as e:
        raise MicrophoneUnavailableError(f"No microphone found: {e}") from e
    return sounddevice
