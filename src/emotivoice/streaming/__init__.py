"""Live analysis of an audio stream.

The modules, in the order audio flows through them: :mod:`~emotivoice.streaming.decoder` (bytes
of any size → 16 kHz samples), :mod:`~emotivoice.streaming.endpointer` (Silero VAD → utterance
turns), :mod:`~emotivoice.streaming.analyzer` (partial text, final segments through the batch
pipeline) and :mod:`~emotivoice.streaming.events` (what a client receives).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ErrorEvent",
    "PartialEvent",
    "SavedEvent",
    "SegmentEvent",
    "StatsEvent",
    "StreamEvent",
    "StreamOptions",
    "StreamingAnalyzer",
    "VadEvent",
    "WakeEvent",
]

# Loaded on first use: importing the package loads no model code.
_LAZY = {name: "emotivoice.streaming.events" for name in __all__ if name.endswith("Event")}
_LAZY |= {"StreamOptions": "emotivoice.streaming.analyzer"}
_LAZY |= {"StreamingAnalyzer": "emotivoice.streaming.analyzer"}

if TYPE_CHECKING:
    from emotivoice.streaming.analyzer import StreamingAnalyzer, StreamOptions
    from emotivoice.streaming.events import (
        ErrorEvent,
        PartialEvent,
        SavedEvent,
        SegmentEvent,
        StatsEvent,
        StreamEvent,
        VadEvent,
        WakeEvent,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emotivoice.streaming' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
