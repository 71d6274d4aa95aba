"""Incremental decoding of a live stream.

:class:`StreamDecoder` turns audio bytes that arrive in pieces of any size (raw 16-bit PCM, or
Opus in an Ogg or WebM container as browsers' ``MediaRecorder`` produces) into 16 kHz mono
float32, with the same FFmpeg resampler as batch decoding.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import av
import numpy as np

from emotivoice.audio import SAMPLE_RATE, _resampler, _to_mono
from emotivoice.errors import AudioDecodeError, InvalidConfigError, UnsupportedFormatError

__all__ = ["ENCODINGS", "StreamDecoder"]

logger = logging.getLogger(__name__)
#: stream encoding → FFmpeg demuxer (``None``: headerless little-endian 16-bit PCM)
ENCODINGS: dict[str, str | None] = {"pcm_s16le": None, "ogg-opus": "ogg", "webm-opus": "webm"}
_PCM_BYTES = 2
_PCM_SCALE = 32768.0
_MAX_PCM_RATE = 192000
# Bytes a container demuxer may read before it must return a frame: small, so live audio is
# decoded as it arrives instead of after FFmpeg's default 5 MB probe.
_PROBE_BYTES = "4096"
_DRAIN_WAIT_S = 5.0  # longest wait for the decoder thread to use up the bytes handed to it
_MAX_HEADER_BYTES = 64 * 1024  # a live container announces itself long before this


class _BytePipe:
    """A blocking byte source for FFmpeg's demuxer, fed from another thread."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._waiting = False

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_drained(self, timeout: float) -> None:
        """Block until the reader has taken every byte and waits for more (or input ended)."""
        with self._cond:
            self._cond.wait_for(
                lambda: (self._waiting and not self._chunks) or self._closed, timeout
            )

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            self._waiting = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: bool(self._chunks) or self._closed)
            self._waiting = False
            if not self._chunks:
                return b""
            data = self._chunks.popleft()
            if 0 < size < len(data):
                self._chunks.appendleft(data[size:])
                data = data[:size]
            return data


class StreamDecoder:
    """Incremental decoder: bytes in, 16 kHz mono float32 out.

    Args:
        encoding: one of :data:`ENCODINGS`.
        sample_rate: sample rate of ``pcm_s16le`` input (containers carry their own).
        channels: interleaved channels of ``pcm_s16le`` input; they are averaged.

    Raises:
        UnsupportedFormatError: an unknown encoding.
        InvalidConfigError: an impossible sample rate or channel count.
    """

    def __init__(self, encoding: str, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> None:
        if encoding not in ENCODINGS:
            raise UnsupportedFormatError(
                f"Unknown stream encoding {encoding!r}; supported encodings = {sorted(ENCODINGS)}"
            )
        if not 0 < sample_rate <= _MAX_PCM_RATE:
            raise InvalidConfigError(
                f"sample_rate must be between 1 and {_MAX_PCM_RATE} Hz, got {sample_rate}."
            )
        if channels not in (1, 2):
            raise InvalidConfigError(f"channels must be 1 or 2, got {channels}.")
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.channels = channels
        self._carry = b""  # an odd trailing byte or partial sample frame of PCM input
        self._resampler = _resampler() if sample_rate != SAMPLE_RATE else None
        self._out: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._error: AudioDecodeError | None = None
        self._pipe: _BytePipe | None = None
        self._opened = threading.Event()  # the demuxer found the container's header
        self._fed = 0
        self._thread: threading.Thread | None = None
        container = ENCODINGS[encoding]
        if container is not None:
            self._pipe = _BytePipe()
            self._thread = threading.Thread(
                target=self._demux,
                args=(self._pipe, container),
                name=f"stream-decoder-{encoding}",
                daemon=True,
            )
            self._thread.start()

    def feed(self, data: bytes) -> np.ndarray:
        """Decode ``data``; returns the samples that became available (possibly none).

        Raises:
            AudioDecodeError: the bytes are not audio of the announced encoding.
        """
        if self._pipe is None:
            return self._pcm(data, final=False)
        self._pipe.feed(bytes(data))
        self._fed += len(data)
        self._pipe.wait_drained(_DRAIN_WAIT_S)
        if not self._opened.is_set() and self._fed > _MAX_HEADER_BYTES:
            self.close()
            raise AudioDecodeError(
                f"The {self.encoding} stream cannot be decoded: no {self.encoding} header in "
                f"its first {_MAX_HEADER_BYTES // 1024} KiB."
            )
        return self._take()

    def finish(self) -> np.ndarray:
        """Flush the decoder at the end of input; returns the last samples."""
        if self._pipe is None:
            return self._pcm(b"", final=True)
        self._pipe.close()
        if self._thread is not None:
            self._thread.join(_DRAIN_WAIT_S)
        return self._take()

    def close(self) -> None:
        """Stop the decoder thread without waiting for its output (abandoned streams)."""
        if self._pipe is not None:
            self._pipe.close()

    def _take(self) -> np.ndarray:
        with self._lock:
            if self._error is not None:
                raise self._error
            chunks = list(self._out)
            self._out.clear()
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def _pcm(self, data: bytes, final: bool) -> np.ndarray:
        data = self._carry + bytes(data)
        frame_bytes = _PCM_BYTES * self.channels
        usable = len(data) - len(data) % frame_bytes
        self._carry = data[usable:]
        pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / _PCM_SCALE
        if self.channels > 1:
            pcm = pcm.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        if self._resampler is None:
            return pcm
        outs: list[Any] = []
        if pcm.size:
            frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = self.sample_rate
            outs += self._resampler.resample(frame)
        if final:
            outs += self._resampler.resample(None)
        chunks = [_to_mono(o) for o in outs]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def _demux(self, pipe: _BytePipe, container_format: str) -> None:
        try:
            with av.open(
                pipe,
                mode="r",
                format=container_format,
                options={"probesize": _PROBE_BYTES, "analyzeduration": "0"},
            ) as container:
                if not container.streams.audio:
                    raise UnsupportedFormatError("The stream holds no audio track.")
                self._opened.set()
                resampler = _resampler()
                for frame in container.decode(container.streams.audio[0]):
                    self._emit(resampler.resample(frame))
                self._emit(resampler.resample(None))
        except (av.error.FFmpegError, UnsupportedFormatError) as e:
            reason = e.message if isinstance(e, UnsupportedFormatError) else e.strerror or e
            with self._lock:
                self._error = AudioDecodeError(
                    f"The {self.encoding} stream cannot be decoded (the decoder says: {reason})."
                )
            logger.debug("Stream decoder stopped: %s", reason)
        finally:
            pipe.close()  # a failed demuxer takes no more bytes; do not block the writer

    def _emit(self, frames: list[Any]) -> None:
        if frames:
            with self._lock:
                self._out.extend(_to_mono(f) for f in frames)
