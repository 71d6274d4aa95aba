"""The input side of live streaming: incremental decoding and voice activity endpointing.

:class:`StreamDecoder` turns audio bytes that arrive in pieces of any size (raw 16-bit PCM, or
Opus in an Ogg or WebM container as browsers' ``MediaRecorder`` produces) into 16 kHz mono
float32, with the same FFmpeg resampler as batch decoding. :class:`SpeechEndpointer` runs the
same Silero VAD model as batch segmentation on fixed 32 ms windows - so its decisions depend only
on the audio, never on how it was cut into frames - and reports where utterances start and end.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from emotivoice.audio import SAMPLE_RATE, _resampler, _to_mono
from emotivoice.errors import AudioDecodeError, InvalidConfigError, UnsupportedFormatError
from emotivoice.segmentation import SpeechSpan

if TYPE_CHECKING:
    from emotivoice.segmentation import VadOptions

__all__ = ["ENCODINGS", "SpeechEndpointer", "SpeechTurn", "StreamDecoder"]

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
_VAD_WINDOW = 512  # samples per Silero window (32 ms at 16 kHz)
_VAD_CONTEXT = 64  # samples of the previous window Silero sees in front of each window
_VAD_STATE_SHAPE = (1, 1, 128)
_NEG_THRESHOLD_GAP = 0.15  # Silero's default hysteresis: silence is below threshold - 0.15
_MIN_CUT_PAUSE_MS = 98  # a pause this long is a place to split over-long speech (as Silero)


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


@dataclass(frozen=True)
class SpeechTurn:
    """What the endpointer saw in newly arrived audio.

    Attributes:
        kind: ``start`` (speech began), ``end`` (an utterance ended or was cut at its maximum
            length) or ``dropped`` (speech too short to be an utterance ended).
        time: the speech onset (``start``) or offset (``end``/``dropped``) in seconds.
        span: for ``end``: the utterance's padded span, as batch segmentation would cut it.
    """

    kind: str
    time: float
    span: SpeechSpan | None = None


class SpeechEndpointer:
    """Online Silero VAD: finds utterance boundaries as audio arrives.

    The thresholds, hysteresis, minimum speech, padding and maximum length mirror batch
    segmentation (:class:`~emotivoice.segmentation.VadOptions`); only the pause that ends an
    utterance (``endpoint_silence_ms``) is shorter, because live results should not wait.
    """

    def __init__(self, vad: VadOptions, endpoint_silence_ms: int) -> None:
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session  # shared, stateless ONNX session
        self.threshold = vad.threshold
        self.neg_threshold = max(vad.threshold - _NEG_THRESHOLD_GAP, 0.01)
        self.pad = vad.speech_pad_ms * SAMPLE_RATE // 1000
        self.min_speech = vad.min_speech_duration_ms * SAMPLE_RATE // 1000
        # the trailing pad must have arrived before an utterance can end
        self.endpoint = max(endpoint_silence_ms * SAMPLE_RATE // 1000, self.pad)
        self.max_len = int(vad.max_segment_s * SAMPLE_RATE)
        self.min_cut_pause = _MIN_CUT_PAUSE_MS * SAMPLE_RATE // 1000
        self._h = np.zeros(_VAD_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_VAD_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(_VAD_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self.position = 0  # samples judged so far
        self.in_speech = False
        self.segment_start = 0  # padded start of the open utterance
        self._speech_start = 0
        self._silence_start: int | None = None
        self._last_pause: tuple[int, int] | None = None
        self._previous_end = 0

    @property
    def pausing(self) -> bool:
        """In an utterance, but the speaker has paused (the utterance may be about to end)."""
        return self.in_speech and self._silence_start is not None

    def span_if_ended(self) -> SpeechSpan | None:
        """The span the open utterance gets if the current pause turns out to end it.

        Known once the pause's trailing pad has been heard (before the pause is long enough to
        be an endpoint): ``None`` while speech goes on, before the pad is in, or when the
        utterance would be dropped as too short.
        """
        silence = self._silence_start
        if not self.in_speech or silence is None or silence - self._speech_start < self.min_speech:
            return None
        end = silence + self.pad
        return SpeechSpan(self.segment_start, end) if self.position >= end else None

    def push(self, samples: np.ndarray) -> list[SpeechTurn]:
        """Judge newly arrived 16 kHz samples; returns the turns they complete, in order."""
        if samples.size:
            self._pending = np.concatenate([self._pending, samples])
        n_windows = self._pending.size // _VAD_WINDOW
        if n_windows == 0:
            return []
        windows = self._pending[: n_windows * _VAD_WINDOW].reshape(n_windows, _VAD_WINDOW)
        self._pending = self._pending[n_windows * _VAD_WINDOW :]
        probabilities = self._probabilities(windows)
        turns: list[SpeechTurn] = []
        for probability in probabilities:
            turns.extend(self._step(float(probability)))
            self.position += _VAD_WINDOW
        return turns

    def flush(self, total_samples: int) -> list[SpeechTurn]:
        """End of input: close an open utterance at the last sample."""
        if not self.in_speech:
            return []
        end = self._silence_start if self._silence_start is not None else total_samples
        return self._close(end, total_samples)

    def _probabilities(self, windows: np.ndarray) -> np.ndarray:
        # Each window carries the last samples of the one before, and the LSTM state runs on:
        # exactly what faster-whisper's batch call computes, whatever the frame size.
        previous = np.concatenate([self._context[None], windows[:-1, -_VAD_CONTEXT:]])
        batch = np.concatenate([previous, windows], axis=1)
        out, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = windows[-1, -_VAD_CONTEXT:].copy()
        return np.asarray(out).reshape(-1)

    def _step(self, probability: float) -> list[SpeechTurn]:
        here = self.position
        if not self.in_speech:
            if probability >= self.threshold:
                self.in_speech = True
                self._speech_start = here
                self.segment_start = max(here - self.pad, self._previous_end, 0)
                self._silence_start, self._last_pause = None, None
                return [SpeechTurn("start", here / SAMPLE_RATE)]
            return []
        if probability >= self.threshold and self._silence_start is not None:
            if here - self._silence_start >= self.min_cut_pause:
                self._last_pause = (self._silence_start, here)
            self._silence_start = None
        elif probability < self.neg_threshold and self._silence_start is None:
            self._silence_start = here
        if self._silence_start is not None and here + _VAD_WINDOW - self._silence_start >= (
            self.endpoint
        ):
            return self._close(self._silence_start, here + _VAD_WINDOW)
        if here + _VAD_WINDOW - self.segment_start >= self.max_len:
            return self._cut(here + _VAD_WINDOW)
        return []

    def _close(self, speech_end: int, available: int) -> list[SpeechTurn]:
        self.in_speech = False
        self._silence_start = None
        if speech_end - self._speech_start < self.min_speech:
            return [SpeechTurn("dropped", speech_end / SAMPLE_RATE)]
        end = min(speech_end + self.pad, available)
        span = SpeechSpan(self.segment_start, end)
        self._previous_end = end
        return [SpeechTurn("end", speech_end / SAMPLE_RATE, span)]

    def _cut(self, available: int) -> list[SpeechTurn]:
        """Split over-long speech at its last pause (or, failing one, here); speech goes on."""
        if self._last_pause is not None:
            cut = (self._last_pause[0] + self._last_pause[1]) // 2
        else:
            cut = available
        span = SpeechSpan(self.segment_start, cut)
        self._previous_end = cut
        self.segment_start = self._speech_start = cut
        self._last_pause = None
        return [SpeechTurn("end", cut / SAMPLE_RATE, span)]
