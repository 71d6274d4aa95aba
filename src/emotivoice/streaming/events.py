"""The events of a live analysis, in the order a client sees them: ``vad``, ``partial``,
``segment``, ``stats``, ``error``, ``saved`` (their JSON form is the WebSocket protocol's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from emotivoice.errors import EmotiVoiceError
from emotivoice.results import Segment

__all__ = [
    "ErrorEvent",
    "PartialEvent",
    "SavedEvent",
    "SegmentEvent",
    "StatsEvent",
    "StreamEvent",
    "VadEvent",
    "WakeEvent",
]


class _Event:
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready event: ``{"type": ..., **fields}``."""
        return {"type": self.type, **asdict(self)}  # type: ignore[call-overload]


@dataclass(frozen=True)
class VadEvent(_Event):
    """Speech started or ended (``state`` ``start``/``end``) at ``time`` seconds of the stream."""

    type: ClassVar[str] = "vad"
    state: str
    time: float


@dataclass(frozen=True)
class PartialEvent(_Event):
    """Provisional text of the utterance being spoken (replaced by its ``segment``).

    Attributes:
        segment_id: the id the final segment of this utterance will have.
        start: utterance start (s); ``end``: audio heard so far (s).
        stable: words two consecutive hypotheses agreed on (LocalAgreement-2); they do not change
            in later partials of this utterance.
        unstable: the rest of the latest hypothesis.
    """

    type: ClassVar[str] = "partial"
    segment_id: int
    start: float
    end: float
    stable: str
    unstable: str

    @property
    def text(self) -> str:
        """Stable and unstable text together."""
        return f"{self.stable} {self.unstable}".strip()

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready event, ``text`` included."""
        return {**super().to_dict(), "text": self.text}


@dataclass(frozen=True)
class SegmentEvent(_Event):
    """A final segment, exactly as batch analysis makes one.

    Attributes:
        segment: text, words, times, emotions and features.
        speech_end: where the VAD heard speech end (s), before the trailing pad.
        compute_s: seconds the models took for this segment.
        speculative: computed during the pause, before it was long enough to end the utterance.
    """

    type: ClassVar[str] = "segment"
    segment: Segment
    speech_end: float
    compute_s: float
    speculative: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The segment's fields at the top level, then the event's own three."""
        return {
            "type": self.type,
            **asdict(self.segment),
            "speech_end": self.speech_end,
            "compute_s": self.compute_s,
            "speculative": self.speculative,
        }


@dataclass(frozen=True)
class StatsEvent(_Event):
    """Progress figures of the stream.

    Attributes:
        audio_s: audio received and decoded (s); ``speech_s``: of it in final segments.
        segments, partials: events sent so far.
        compute_s: model time spent on this stream; ``rtf`` its ratio to ``audio_s``.
        speculations_discarded: speculative final passes thrown away because speech resumed.
        backlog_s: audio received but not yet analysed (set by the server).
        throttled: the server is slowing the sender down (it sends faster than analysed).
    """

    type: ClassVar[str] = "stats"
    audio_s: float
    speech_s: float
    segments: int
    partials: int
    compute_s: float
    rtf: float
    speculations_discarded: int = 0
    backlog_s: float = 0.0
    throttled: bool = False


@dataclass(frozen=True)
class ErrorEvent(_Event):
    """Something went wrong; ``code`` is the stable error code."""

    type: ClassVar[str] = "error"
    code: str
    message: str

    @classmethod
    def from_error(cls, error: EmotiVoiceError) -> ErrorEvent:
        """The event of an EmotiVoice error."""
        return cls(code=error.code, message=error.message)


@dataclass(frozen=True)
class SavedEvent(_Event):
    """The whole recording was stored as upload ``upload_id`` (``duration`` seconds), named
    ``filename`` (``stream-YYYYMMDD-HHMMSS.wav``) in the upload list."""

    type: ClassVar[str] = "saved"
    upload_id: str
    duration: float
    filename: str = ""


@dataclass(frozen=True)
class WakeEvent(_Event):
    """The wake phrase was heard (a stream started with a ``wake_word``).

    Attributes:
        time: the stream time (s) of the 80 ms hop that completed the phrase.
        score: the wake-word model's probability.
        phrase: the phrase.
    """

    type: ClassVar[str] = "wake"
    time: float
    score: float
    phrase: str


StreamEvent = (
    VadEvent | PartialEvent | SegmentEvent | StatsEvent | ErrorEvent | SavedEvent | WakeEvent
)
