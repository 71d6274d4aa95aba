"""Voice activity detection and splitting speech into segments.

Uses the Silero VAD model that faster-whisper ships (ONNX, no download). Long speech is split at
the last pause before ``max_segment_s`` so that every segment fits one Whisper window and the
encoder runs exactly once per segment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import InvalidConfigError

__all__ = [
    "MAX_WHISPER_WINDOW_S",
    "SpeechSpan",
    "VadOptions",
    "detect_speech",
    "merge_spans",
    "speech_regions",
]

logger = logging.getLogger(__name__)

MAX_WHISPER_WINDOW_S = 30.0  # Whisper's encoder sees at most 30 s at once


@dataclass(frozen=True)
class VadOptions:
    """Options of voice activity detection and segmentation.

    Attributes:
        threshold: Silero speech probability above which a 32 ms window counts as speech.
        min_speech_duration_ms: speech stretches shorter than this are dropped.
        min_silence_duration_ms: a pause must last this long to end a segment.
        speech_pad_ms: padding added to both sides of each segment (keeps word onsets/offsets).
        max_segment_s: longer speech is split at a pause (or, failing one, cut) into segments
            of at most this length; at most 30 s (one Whisper window).
        merge_gap_s: consecutive speech separated by a pause shorter than this is joined into
            one segment while it stays within ``max_segment_s`` (0 disables). Whisper
            transcribes short isolated phrases poorly and runs its encoder on a full 30 s window
            per segment, so joining gives it context and saves encoder passes.
    """

    threshold: float = 0.5
    min_speech_duration_ms: int = 250
    min_silence_duration_ms: int = 500
    speech_pad_ms: int = 200
    max_segment_s: float = 15.0
    merge_gap_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise InvalidConfigError("VAD threshold must be between 0 and 1.")
        if not 1.0 <= self.max_segment_s <= MAX_WHISPER_WINDOW_S:
            raise InvalidConfigError(
                f"max_segment_s must be between 1 and {MAX_WHISPER_WINDOW_S:.0f} seconds."
            )
        if min(self.min_speech_duration_ms, self.min_silence_duration_ms, self.speech_pad_ms) < 0:
            raise InvalidConfigError("VAD durations must not be negative.")
        if self.merge_gap_s < 0:
            raise InvalidConfigError("merge_gap_s must not be negative.")


@dataclass(frozen=True)
class SpeechSpan:
    """A stretch of speech, in samples of the 16 kHz signal."""

    start_sample: int
    end_sample: int

    @property
    def start(self) -> float:
        """Start time in seconds."""
        return self.start_sample / SAMPLE_RATE

    @property
    def end(self) -> float:
        """End time in seconds."""
        return self.end_sample / SAMPLE_RATE


def detect_speech(samples: np.ndarray, options: VadOptions | None = None) -> list[SpeechSpan]:
    """Find speech in 16 kHz mono ``samples`` with Silero VAD and join it into segments.

    Returns:
        Non-overlapping segments in time order (:func:`speech_regions` joined by
        :func:`merge_spans`); an empty list for silence.
    """
    opts = options or VadOptions()
    spans = speech_regions(samples, opts)
    merged = merge_spans(spans, opts.max_segment_s, opts.merge_gap_s)
    logger.debug("VAD found %d speech spans, %d segments after merging", len(spans), len(merged))
    return merged


def speech_regions(samples: np.ndarray, options: VadOptions | None = None) -> list[SpeechSpan]:
    """The stretches of speech Silero VAD finds between pauses, before any joining.

    Returns:
        Non-overlapping spans in time order, none longer than ``max_segment_s``.
    """
    from faster_whisper.vad import VadOptions as SileroOptions
    from faster_whisper.vad import get_speech_timestamps

    opts = options or VadOptions()
    if samples.size == 0:
        return []
    chunks = get_speech_timestamps(
        samples,
        SileroOptions(
            threshold=opts.threshold,
            min_speech_duration_ms=opts.min_speech_duration_ms,
            max_speech_duration_s=opts.max_segment_s,
            min_silence_duration_ms=opts.min_silence_duration_ms,
            speech_pad_ms=opts.speech_pad_ms,
        ),
        sampling_rate=SAMPLE_RATE,
    )
    return [SpeechSpan(int(c["start"]), int(c["end"])) for c in chunks if c["end"] > c["start"]]


def merge_spans(
    spans: list[SpeechSpan], max_segment_s: float, max_gap_s: float
) -> list[SpeechSpan]:
    """Join neighbouring spans separated by less than ``max_gap_s`` up to ``max_segment_s``."""
    max_len = int(max_segment_s * SAMPLE_RATE)
    max_gap = int(max_gap_s * SAMPLE_RATE)
    merged: list[SpeechSpan] = []
    for span in spans:
        last = merged[-1] if merged else None
        if (
            last is not None
            and span.start_sample - last.end_sample < max_gap
            and span.end_sample - last.start_sample <= max_len
        ):
            merged[-1] = SpeechSpan(last.start_sample, span.end_sample)
        else:
            merged.append(span)
    return merged
