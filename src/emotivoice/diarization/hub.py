"""``pyannote.audio``'s diarization pipeline, for users with a network and a Hugging Face token.

Its models download from the Hugging Face hub on first use (and need accepting their terms), so
this backend never works offline; the default ``ge2e`` backend needs nothing from the network.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.diarization.core import Diarization, DiarizationOptions, SpeakerTurn, speaker_name
from emotivoice.errors import ModelNotFoundError
from emotivoice.extras import import_extra
from emotivoice.segmentation import SpeechSpan

__all__ = ["PYANNOTE_PIPELINE", "diarize_with_pyannote"]

logger = logging.getLogger(__name__)

PYANNOTE_PIPELINE = "pyannote/speaker-diarization-3.1"


def _load(name: str) -> Any:
    audio = import_extra("pyannote.audio", "pyannote", "The pyannote diarization backend")
    advice = (
        "It downloads from the Hugging Face hub: it needs a network, HF_TOKEN set and the "
        "model's terms accepted. Offline, use the default backend (ge2e)."
    )
    try:
        pipeline = audio.Pipeline.from_pretrained(name, token=os.environ.get("HF_TOKEN"))
    except Exception as error:  # the hub client raises many kinds when offline
        raise ModelNotFoundError(f"pyannote could not load {name} ({error}). {advice}") from None
    if pipeline is None:
        raise ModelNotFoundError(f"pyannote could not load {name}. {advice}")
    return pipeline


def diarize_with_pyannote(
    samples: np.ndarray, options: DiarizationOptions, pipeline: str = PYANNOTE_PIPELINE
) -> Diarization:
    """Speaker turns of 16 kHz mono ``samples`` from ``pyannote.audio``'s hub pipeline.

    Raises:
        MissingExtraError: ``pyannote.audio`` is not installed.
        ModelNotFoundError: the pipeline cannot be loaded (offline, no token).
    """
    model = _load(pipeline)
    import torch

    counts: dict[str, int] = (
        {"num_speakers": options.speakers}
        if options.speakers is not None
        else {"min_speakers": options.min_speakers, "max_speakers": options.max_speakers}
    )
    output = model(
        {"waveform": torch.from_numpy(samples[None]), "sample_rate": SAMPLE_RATE}, **counts
    )
    # pyannote.audio 4 returns an object with an overlap-free view; 3.x an Annotation.
    annotation = getattr(output, "exclusive_speaker_diarization", output)
    names: dict[str, str] = {}
    turns = []
    for segment, _, label in annotation.itertracks(yield_label=True):
        name = names.setdefault(label, speaker_name(len(names)))
        span = SpeechSpan(round(segment.start * SAMPLE_RATE), round(segment.end * SAMPLE_RATE))
        turns.append(SpeakerTurn(span, name))
    return Diarization(turns=tuple(turns), speakers=tuple(names.values()), method="pyannote")
