"""EmotiVoice: what was said, how it was said, and why the model decided so.

Typical use::

    import emotivoice

    analysis = emotivoice.analyze("call.mp3", language="en")
    print(analysis.text)

Heavy modules (models, codecs) load on first use, not at import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from emotivoice._version import __version__

__all__ = [
    "Analysis",
    "AnalyzeOptions",
    "Analyzer",
    "DiarizationOptions",
    "Segment",
    "SpeakerSummary",
    "Word",
    "__version__",
    "analyze",
    "available_models",
    "explain",
    "load_audio",
]

_LAZY = {
    "Analysis": "emotivoice.results",
    "Segment": "emotivoice.results",
    "Word": "emotivoice.results",
    "SpeakerSummary": "emotivoice.results",
    "DiarizationOptions": "emotivoice.diarization",
    "AnalyzeOptions": "emotivoice.pipeline",
    "Analyzer": "emotivoice.pipeline",
    "analyze": "emotivoice.pipeline",
    "available_models": "emotivoice.models.registry",
    "load_audio": "emotivoice.audio",
}

if TYPE_CHECKING:
    from emotivoice.audio import load_audio
    from emotivoice.diarization import DiarizationOptions
    from emotivoice.models.registry import available_models
    from emotivoice.pipeline import AnalyzeOptions, Analyzer, analyze
    from emotivoice.results import Analysis, Segment, SpeakerSummary, Word


def __getattr__(name: str) -> Any:
    if name == "explain":  # a callable subpackage: emotivoice.explain(source, segment=...)
        return importlib.import_module("emotivoice.explain")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'emotivoice' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
