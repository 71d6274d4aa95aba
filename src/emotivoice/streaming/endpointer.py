"""Voice activity endpointing of a live stream.

:class:`SpeechEndpointer` runs the same Silero VAD model as batch segmentation on fixed 32 ms
windows - so its decisions depend only on the audio, never on how it was cut into frames - and
reports where utterances start and end (:class:`SpeechTurn`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.segmentation import SpeechSpan

if TYPE_CHECKING:
    from emotivoice.segmentation import VadOptions

__all__ = ["SpeechEndpointer", "SpeechTurn"]

_VAD_WINDOW = 512  # samples per Silero window (32 ms at 16 kHz)
_VAD_CONTEXT = 64  # samples of the previous window Silero sees in front of each window
_VAD_STATE_SHAPE = (1, 1, 128)
_NEG_THRESHOLD_GAP = 0.15  # Silero's default hysteresis: silence is below threshold - 0.15
_MIN_CUT_PAUSE_MS = 98  # a pause this long is a place to split over-long speech (as Silero)


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
    utterance (``endpoint_silence_ms``) is shorter, because live results should not wait, and
    the pad after speech may be shorter (``trailing_pad_ms``, default: the VAD's pad), so that
    an utterance's span is known sooner.
    """

    def __init__(
        self, vad: VadOptions, endpoint_silence_ms: int, trailing_pad_ms: int | None = None
    ) -> None:
        from faster_whisper.vad import get_vad_model

        self._session = get_vad_model().session  # shared, stateless ONNX session
        self.threshold = vad.threshold
        self.neg_threshold = max(vad.threshold - _NEG_THRESHOLD_GAP, 0.01)
        self.pad = vad.speech_pad_ms * SAMPLE_RATE // 1000
        if trailing_pad_ms is not None:
            self.trailing_pad = min(trailing_pad_ms * SAMPLE_RATE // 1000, self.pad)
        else:
            self.trailing_pad = self.pad
        self.min_speech = vad.min_speech_duration_ms * SAMPLE_RATE // 1000
        # the trailing pad must have arrived before an utterance can end
        self.endpoint = max(endpoint_silence_ms * SAMPLE_RATE // 1000, self.trailing_pad)
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
        end = silence + self.trailing_pad
        return SpeechSpan(self.segment_start, end) if self.position >= end else None

    def end_pause(self) -> list[SpeechTurn]:
        """End the open utterance at the current pause now, without waiting for the endpoint
        (its span is :meth:`span_if_ended`'s); nothing when that span is not known yet."""
        if self.span_if_ended() is None or self._silence_start is None:
            return []
        return self._close(self._silence_start, self.position)

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
        end = min(speech_end + self.trailing_pad, available)
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
