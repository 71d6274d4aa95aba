"""What marks an ONNX file as an EmotiVoice wake-word model: a ``metadata_props`` record under
:data:`METADATA_KEY` with the phrase, the threshold and the front end's constants. Shared by
the exporter and the detector (which must not import the training code the exporter needs)."""

from __future__ import annotations

from emotivoice.audio import SAMPLE_RATE
from emotivoice.wakeword.features import FRAME_HOP, FRAME_LENGTH, HOP_FRAMES, N_MELS, WINDOW_FRAMES

__all__ = ["FORMAT_VERSION", "METADATA_KEY", "front_end"]

METADATA_KEY = "emotivoice.wakeword"
FORMAT_VERSION = 1


def front_end() -> dict[str, int]:
    """The feature constants a model was trained with (checked when it is loaded)."""
    return {
        "sample_rate": SAMPLE_RATE,
        "frame_length": FRAME_LENGTH,
        "frame_hop": FRAME_HOP,
        "n_mels": N_MELS,
        "window_frames": WINDOW_FRAMES,
        "hop_frames": HOP_FRAMES,
    }
