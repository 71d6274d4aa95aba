"""Hearing the user: the optional wake stage, then the live analysis of ``/api/v1/stream``.

:class:`StreamListener` drives the engine's own
:class:`~emotivoice.streaming.analyzer.StreamingAnalyzer` (Silero VAD endpointing, incremental
Whisper, the emotion head and prosody per final segment) in a worker thread: the assistant
hears exactly what the live WebSocket analysis hears. :class:`WakeWordStage` wraps the wake-word
studio's detector (the shipped ``hey_jarvis`` model by default).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from emotivoice.assistant.turns import Utterance
from emotivoice.audio import SAMPLE_RATE, to_pcm16
from emotivoice.streaming.analyzer import StreamingAnalyzer, StreamOptions
from emotivoice.streaming.events import SegmentEvent, StreamEvent, VadEvent
from emotivoice.wakeword.detector import Detection, WakeWordDetector, load_model

if TYPE_CHECKING:
    from emotivoice.pipeline import Analyzer

__all__ = ["Heard", "Listener", "StreamListener", "WakeStage", "WakeWordStage"]


@dataclass(frozen=True)
class Heard:
    """What the listener heard in newly fed audio.

    Attributes:
        kind: ``speech_start`` (the user began to speak) or ``utterance`` (an utterance ended
            and was analysed).
        time: stream seconds of the speech onset, or of the end of speech (before the pause).
        utterance: the analysed utterance (``utterance`` only).
    """

    kind: str
    time: float
    utterance: Utterance | None = None


@runtime_checkable
class Listener(Protocol):
    """Live speech in, utterances out; one conversation's state."""

    async def feed(self, samples: np.ndarray) -> list[Heard]:
        """Feed 16 kHz mono float samples; returns what they completed."""
        ...

    async def finish(self) -> list[Heard]:
        """End of input: the open utterance, if any."""
        ...


class StreamListener:
    """The engine's live analysis as the assistant's ears.

    Args:
        analyzer: the loaded models (shared read-only; the live service's own Analyzer works).
        options: stream settings; partial text is off by default (the assistant waits for the
            final segment, and partial passes would take CPU from it).
        on_event: called (in the event loop) with every event of the live analysis as it
            comes (``vad``, ``partial``, ``segment``, ``wake``): a front door shows them.
    """

    def __init__(
        self,
        analyzer: Analyzer,
        options: StreamOptions | None = None,
        on_event: Callable[[StreamEvent], None] | None = None,
    ) -> None:
        options = options or StreamOptions(partials=False, keep_recording=False)
        # the assistant's sources give 16 kHz mono samples; they are sent as 16-bit PCM
        options = dataclasses.replace(
            options, encoding="pcm_s16le", sample_rate=SAMPLE_RATE, channels=1
        )
        self._stream = StreamingAnalyzer(analyzer, options)
        self._on_event = on_event

    async def feed(self, samples: np.ndarray) -> list[Heard]:
        events = await asyncio.to_thread(self._stream.feed, to_pcm16(samples).tobytes())
        return self._tell(events)

    async def finish(self) -> list[Heard]:
        return self._tell(await asyncio.to_thread(self._stream.finish))

    def _tell(self, events: list[StreamEvent]) -> list[Heard]:
        if self._on_event is not None:
            for event in events:
                self._on_event(event)
        return _heard(events)


def _heard(events: list[StreamEvent]) -> list[Heard]:
    out: list[Heard] = []
    for event in events:
        if isinstance(event, VadEvent) and event.state == "start":
            out.append(Heard("speech_start", event.time))
        elif isinstance(event, SegmentEvent) and event.segment.text.strip():
            utterance = Utterance.from_segment(event.segment)
            out.append(Heard("utterance", event.speech_end, utterance))
    return out


@runtime_checkable
class WakeStage(Protocol):
    """Gates the listener: audio reaches it only after the wake phrase."""

    phrase: str

    def feed(self, samples: np.ndarray) -> Detection | None:
        """Feed 16 kHz mono samples; the detection they complete, if any."""
        ...


class WakeWordStage:
    """The wake-word studio's detector as the assistant's wake stage.

    Args:
        model: a shipped model name or an ONNX file of the studio (default ``hey_jarvis``).
        threshold: detection threshold (default: the model's own).
    """

    def __init__(self, model: str = "hey_jarvis", threshold: float | None = None) -> None:
        self._detector: WakeWordDetector = load_model(model).detector(threshold)
        self.phrase = self._detector.model.phrase

    def feed(self, samples: np.ndarray) -> Detection | None:
        found = self._detector.feed(samples)
        return found[0] if found else None
