"""Who said it: speaker diarization and stereo call channels.

:func:`find_speakers` is the one entry point the pipeline uses: it splits a stereo call
recording by channel, or tells voices apart with the shipped GE2E speaker encoder
(:mod:`~emotivoice.diarization.core`), or runs ``pyannote.audio`` when asked to.
"""

from __future__ import annotations

import logging

from emotivoice.audio import Audio
from emotivoice.diarization.channels import channels_differ, diarize_channels
from emotivoice.diarization.core import (
    DEFAULT_THRESHOLD,
    ChannelMode,
    Diarization,
    DiarizationOptions,
    SpeakerTurn,
    diarize,
    merge_turns,
    speaker_name,
)
from emotivoice.errors import InvalidConfigError
from emotivoice.segmentation import VadOptions, speech_regions

__all__ = [
    "DEFAULT_THRESHOLD",
    "ChannelMode",
    "Diarization",
    "DiarizationOptions",
    "SpeakerTurn",
    "channels_differ",
    "diarize",
    "diarize_channels",
    "find_speakers",
    "merge_turns",
    "speaker_name",
]

logger = logging.getLogger(__name__)


def find_speakers(audio: Audio, vad: VadOptions, options: DiarizationOptions) -> Diarization:
    """The speaker turns of ``audio``: by channel for a stereo call, else by voice.

    Raises:
        InvalidConfigError: ``channels="split"`` on a recording with one channel (or decoded
            without its channels).
        MissingExtraError: the ``pyannote`` backend without ``pyannote.audio`` installed.
        ModelNotFoundError: the ``pyannote`` backend cannot load its pipeline (offline).
    """
    if options.channels == "split":
        if audio.channels is None:
            raise InvalidConfigError(
                f"{audio.info.name}: channels='split' needs a recording with two or more "
                f"channels; this one has {audio.info.channels}. Use channels='auto' or 'mix'."
            )
        return diarize_channels(audio.channels, vad)
    if (
        options.channels == "auto"
        and audio.channels is not None
        and channels_differ(audio.channels)
    ):
        logger.info(
            "%s: the channels carry different talkers; one speaker per channel", audio.info.name
        )
        return diarize_channels(audio.channels, vad)
    if options.backend == "pyannote":
        from emotivoice.diarization.hub import diarize_with_pyannote

        return diarize_with_pyannote(audio.samples, options)
    return diarize(audio.samples, speech_regions(audio.samples, vad), options)
