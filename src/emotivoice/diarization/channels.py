"""Stereo call recordings: one speaker per channel.

Call-centre systems record the agent on one channel and the customer on the other. Analysing
each channel on its own gives exact speakers (no voice clustering), keeps overlapping speech
apart, and transcribes each voice without the other's crosstalk.
"""

from __future__ import annotations

import logging

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.diarization.core import Diarization, SpeakerTurn, speaker_name
from emotivoice.segmentation import VadOptions, speech_regions

__all__ = ["channels_differ", "diarize_channels"]

logger = logging.getLogger(__name__)

_FRAME = SAMPLE_RATE // 20  # 50 ms energy frames
_ACTIVE_DB = 35.0  # frames within this of the loudest frame count as active
_DOMINANT_DB = 6.0  # one channel this much louder than the other: that channel's talker
_MAX_CORRELATION = 0.5  # channels this correlated carry the same sound (mono, a room)
_MIN_DOMINANT_SHARE = 0.3


def channels_differ(channels: np.ndarray) -> bool:
    """Whether two channels clearly carry different talkers (a stereo call recording).

    True when the channels are nearly uncorrelated sample by sample and, in at least 30 % of
    the active 50 ms frames, one channel is 6 dB or more louder than the other. A mono
    recording stored as stereo, or a room recorded with two microphones, is neither.
    """
    if channels.ndim != 2 or len(channels) != 2 or channels.shape[1] < _FRAME:
        return False
    left, right = channels.astype(np.float64)
    if not (left.std() > 0 and right.std() > 0):
        return False
    correlation = float(np.corrcoef(left, right)[0, 1])
    n = channels.shape[1] // _FRAME
    frames = channels[:, : n * _FRAME].reshape(2, n, _FRAME).astype(np.float64)
    energy = 10 * np.log10(np.mean(frames**2, axis=2) + 1e-10)
    active = energy.max(axis=0) > energy.max() - _ACTIVE_DB
    if not active.any():
        return False
    dominant = float((np.abs(energy[0] - energy[1])[active] > _DOMINANT_DB).mean())
    logger.debug("Channels: correlation %.2f, one dominant in %.0f %%", correlation, dominant * 100)
    return abs(correlation) < _MAX_CORRELATION and dominant >= _MIN_DOMINANT_SHARE


def diarize_channels(channels: np.ndarray, vad: VadOptions) -> Diarization:
    """Each channel's speech (its own voice activity detection) as the turns of one speaker.

    Speakers are named in channel order: ``SPEAKER_1`` is the first (left) channel.
    """
    turns = [
        SpeakerTurn(span, speaker_name(c), channel=c)
        for c, samples in enumerate(channels)
        for span in speech_regions(np.ascontiguousarray(samples), vad)
    ]
    turns.sort(key=lambda t: (t.span.start_sample, t.channel or 0))
    speakers = tuple(speaker_name(c) for c in range(len(channels)))
    return Diarization(turns=tuple(turns), speakers=speakers, method="channels")
